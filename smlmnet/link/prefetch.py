"""Run an iterator one step ahead in a background thread (bounded queue).

Used where numpy/scipy work (neighbour tables: KD-tree queries release the GIL) can overlap
with torch work on the other core of a 2-core machine. Items come out in the same order as
the iterator yields them, so results are identical to the plain loop.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

_END = object()


def prefetch(items: Iterable, depth: int = 2) -> Iterator:
    """Yield ``items`` in order while a daemon thread computes up to ``depth`` ahead
    (``depth`` ≤ 0: no thread, the plain iterator). An exception in the producer is raised
    in the consumer; a consumer that stops early stops the producer at its next item."""
    if depth <= 0:
        yield from items
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce():
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((_END, None))
        except BaseException as err:            # re-raised in the consumer
            q.put((_END, err))

    thread = threading.Thread(target=produce, daemon=True, name="smlmnet-prefetch")
    thread.start()
    try:
        while True:
            item, err = q.get()
            if item is _END:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():                # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                pass
            thread.join(timeout=0.05)
