"""Neighbour lists of a window's localizations, built the same way in training and inference.

Attention and candidate edges are sparse: token ``i`` sees itself, its ``k_same`` nearest
neighbours in its own frame, its ``k_near`` nearest in each frame at most ``max_gap`` frames
away (both directions: the candidate edges) and its ``k_far`` nearest in the other frames of
the window, all within ``cutoff_nm``. The cost of a window is therefore linear in its number of
localizations, whatever the density.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def neighbour_count(window: int, max_gap: int, k_same: int, k_near: int, k_far: int) -> int:
    """Width ``K`` of the neighbour table (self included)."""
    n_near = 2 * max_gap
    n_far = 2 * (window - 1 - max_gap)
    return 1 + k_same + n_near * k_near + n_far * k_far


def window_neighbours(frame: np.ndarray, xy: np.ndarray, window: int, max_gap: int,
                      cutoff_nm: float, k_same: int = 3, k_near: int = 4,
                      k_far: int = 1) -> np.ndarray:
    """``(n, K)`` int64 neighbour indices (−1: none) of ``n`` tokens.

    Args:
        frame: ``(n,)`` frame offsets in ``[0, window)``. xy: ``(n, 2)`` positions, nm.
        cutoff_nm: neighbours farther than this are never listed.

    Column 0 is the token itself; the remaining columns are grouped by frame offset
    δ = −(W−1) … W−1 (δ = 0: same frame without the token itself).
    """
    n = len(frame)
    K = neighbour_count(window, max_gap, k_same, k_near, k_far)
    out = np.full((n, K), -1, np.int64)
    out[:, 0] = np.arange(n)
    if n == 0:
        return out
    frame = np.asarray(frame, np.int64)
    order = np.argsort(frame, kind="stable")
    present = np.unique(frame)
    rows = {f: order[np.searchsorted(frame[order], f, "left"):
                     np.searchsorted(frame[order], f, "right")] for f in present}
    trees = {f: cKDTree(xy[r]) for f, r in rows.items()}
    col = 1
    for delta in range(-(window - 1), window):
        k = k_same if delta == 0 else (k_near if abs(delta) <= max_gap else k_far)
        kq = k + 1 if delta == 0 else k
        for f in present:
            g = f + delta
            if g not in trees:
                continue
            src = rows[f]
            d, idx = trees[g].query(xy[src], k=kq, distance_upper_bound=cutoff_nm)
            d, idx = d.reshape(len(src), kq), idx.reshape(len(src), kq)
            tgt_rows = rows[g]
            valid = np.isfinite(d)
            found = np.where(valid, tgt_rows[np.minimum(idx, len(tgt_rows) - 1)], -1)
            if delta == 0:  # drop the token itself
                is_self = found == src[:, None]
                keep = np.where(is_self.any(1)[:, None], ~is_self, True)
                found = np.where(keep, found, -1)
                # move −1 of the dropped self to the end, keep k columns
                srt = np.argsort(found < 0, axis=1, kind="stable")
                found = np.take_along_axis(found, srt, 1)[:, :k]
            out[src, col:col + k] = found
        col += k
    return out
