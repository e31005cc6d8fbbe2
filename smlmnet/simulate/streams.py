"""Replaying row-major random draws time chunk by time chunk (bounded-memory simulation).

The simulator draws per-particle time series in one call, e.g. ``rng.standard_normal((N, L,
2))``: particle after particle (row-major). A long movie cannot hold these arrays, and it
renders frame chunk by frame chunk, i.e. it needs columns ``[k0, k1)`` of every row. numpy
Generators fill arrays element after element from the bit generator, so a draw of ``n`` equals
consecutive draws of ``n1 + n2`` (checked for ``random``, ``standard_normal``, ``normal``,
scalar-parameter ``gamma`` and array ``poisson``/``gamma`` in ``tests/test_movie.py``), but
most distributions use a variable number of raw draws (rejection sampling), so the position of
element ``(i, k)`` in the stream is unknown until it has been drawn. :class:`RowReplay` makes
one pass over the whole draw, row by row and chunk by chunk, remembering the bit-generator state
at the start of every (row, chunk) and discarding the numbers; :meth:`RowReplay.get` then
regenerates any chunk of all rows from those states. After the constructor the caller's
generator stands exactly where the single big draw would have left it. Each checkpoint costs
~21 bytes (PCG64), against ``chunk length × 8`` bytes of numbers that are not kept.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence

import numpy as np

Draw = Callable[[np.random.Generator, tuple], np.ndarray]
_MASK64 = (1 << 64) - 1


class _StateStore:
    """Compact table of bit-generator states, indexed by (row, chunk)."""

    def __init__(self, bit_generator: np.random.BitGenerator, n_rows: int, n_chunks: int):
        self.kind = type(bit_generator)
        self.pcg = isinstance(bit_generator, np.random.PCG64)
        shape = (n_rows, n_chunks)
        if self.pcg:
            st = bit_generator.state
            self.inc = st["state"]["inc"]
            self.hi = np.empty(shape, np.uint64)
            self.lo = np.empty(shape, np.uint64)
            self.has32 = np.empty(shape, np.uint8)
            self.u32 = np.empty(shape, np.uint32)
        else:  # any other bit generator: keep its state dicts
            self.states = np.empty(shape, dtype=object)

    def save(self, i: int, c: int, bit_generator) -> None:
        st = bit_generator.state
        if self.pcg:
            s = st["state"]["state"]
            self.hi[i, c], self.lo[i, c] = s >> 64, s & _MASK64
            self.has32[i, c], self.u32[i, c] = st["has_uint32"], st["uinteger"]
        else:
            self.states[i, c] = st

    def restore(self, i: int, c: int, bit_generator) -> None:
        if self.pcg:
            bit_generator.state = {
                "bit_generator": "PCG64",
                "state": {"state": (int(self.hi[i, c]) << 64) | int(self.lo[i, c]),
                          "inc": self.inc},
                "has_uint32": int(self.has32[i, c]), "uinteger": int(self.u32[i, c])}
        else:
            bit_generator.state = self.states[i, c]


class RowReplay:
    """A row-major draw ``draw(rng, (n_rows, L))`` served in column chunks.

    Args:
        rng: the generator the draw would be made from; it is advanced past the whole draw.
        n_rows: number of rows (particles).
        bounds: increasing column boundaries ``[0, b1, ..., L]``; chunk ``c`` is
            ``[bounds[c], bounds[c + 1])``.
        draw: ``draw(rng, shape)`` returns an array of ``shape + tail`` (e.g.
            ``lambda r, s: r.standard_normal(s + (2,))``).
        per_row: checkpoint every row even with a single chunk (to regenerate one row at a
            time); otherwise a single chunk is drawn at once and kept (the fast in-memory path).
    """

    def __init__(self, rng: np.random.Generator, n_rows: int, bounds: Sequence[int], draw: Draw,
                 per_row: bool = False):
        self.bounds = [int(b) for b in bounds]
        self.n_rows = n_rows
        self.draw = draw
        self.whole = None
        n_chunks = len(self.bounds) - 1
        if n_chunks == 1 and not per_row:
            self.whole = draw(rng, (n_rows, self.bounds[-1]))
            return
        bitgen = rng.bit_generator
        self.store = _StateStore(bitgen, n_rows, n_chunks)
        self.replay = np.random.Generator(self.store.kind())
        for i in range(n_rows):
            for c in range(n_chunks):
                self.store.save(i, c, bitgen)
                draw(rng, (self.bounds[c + 1] - self.bounds[c],))

    def get(self, c: int, rows: Sequence[int] | None = None) -> np.ndarray:
        """Chunk ``c`` of the draw: ``(n_rows, bounds[c+1] − bounds[c], *tail)``."""
        if self.whole is not None:
            return self.whole if rows is None else self.whole[np.asarray(rows, int)]
        rows = range(self.n_rows) if rows is None else rows
        length = self.bounds[c + 1] - self.bounds[c]
        parts = []
        for i in rows:
            self.store.restore(i, c, self.replay.bit_generator)
            parts.append(self.draw(self.replay, (length,)))
        if not parts:
            return self.draw(self.replay, (0, length))
        return np.stack(parts)


class SpillRows:
    """Rows of float64 written once to an anonymous temporary file, read back by column range.

    Used for series that must be computed whole (fBM by circulant embedding) in a long movie:
    memory holds one row at a time instead of all of them. Reads use ``os.pread``, so the data
    never counts towards the resident memory of the process (no memory map).
    """

    def __init__(self, n_rows: int, row_shape: tuple[int, ...], folder: str | None = None):
        self.n_rows = n_rows
        self.row_shape = tuple(row_shape)
        self.item = int(np.prod(self.row_shape[1:], dtype=np.int64))  # values per column
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * 8
        self.file = tempfile.TemporaryFile(dir=folder, prefix="smlmnet_spill_")
        self.fd = self.file.fileno()

    def write(self, i: int, row: np.ndarray) -> None:
        data = np.ascontiguousarray(row, dtype=np.float64)
        assert data.shape == self.row_shape
        os.pwrite(self.fd, data.tobytes(), i * self.row_bytes)

    def read(self, k0: int, k1: int) -> np.ndarray:
        """Columns ``[k0, k1)`` of every row: ``(n_rows, k1 − k0, *row_shape[1:])``."""
        out = np.empty((self.n_rows, k1 - k0) + self.row_shape[1:])
        nbytes = (k1 - k0) * self.item * 8
        for i in range(self.n_rows):
            buf = os.pread(self.fd, nbytes, i * self.row_bytes + k0 * self.item * 8)
            out[i] = np.frombuffer(buf, np.float64).reshape(out.shape[1:])
        return out

    def close(self) -> None:
        self.file.close()
