"""Neighbour lists of a window's localizations, built the same way in training and inference.

Attention and candidate edges are sparse: token ``i`` sees itself, its ``k_same`` nearest
neighbours in its own frame, its ``k_near`` nearest in each frame at most ``max_gap`` frames
away (both directions: the candidate edges) and its ``k_far`` nearest in the other frames of
the window, all within ``cutoff_nm``. The cost of a window is therefore linear in its number of
localizations, whatever the density.

Each column of the table belongs to one frame offset δ and lists the nearest tokens of frame
``f + δ`` only, so the table of a long run of frames restricted to one window's tokens (see
:func:`restrict_neighbours`) is that window's table: inference builds one table per block of
overlapping windows instead of one per window.
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
        frame: ``(n,)`` integer frames: offsets in ``[0, window)`` for one window, or any
            span of frames (tokens more than ``window − 1`` frames apart are never
            neighbours; restrict the table to a window with :func:`restrict_neighbours`).
        xy: ``(n, 2)`` positions, nm.
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
    deltas = np.arange(-(window - 1), window)
    k_of = np.where(deltas == 0, k_same, np.where(np.abs(deltas) <= max_gap, k_near, k_far))
    col_of = 1 + np.r_[0, np.cumsum(k_of)[:-1]]           # first column of each δ
    kq_near = int(max(k_same + 1, k_near))
    order = np.argsort(frame, kind="stable")
    sorted_frame = frame[order]
    present, first = np.unique(sorted_frame, return_index=True)
    last = np.r_[first[1:], n]
    G, R = max_gap, window - 1

    def rows_between(lo, hi):                             # tokens of frames lo … hi
        a, b = np.searchsorted(sorted_frame, [lo, hi + 1])
        return order[a:b]

    for g, a, b in zip(present, first, last):
        # per target frame g, two queries: the tokens of frames within max_gap (k_same + 1
        # or k_near nearest) and the other frames within window − 1 (k_far nearest); token i
        # (frame f) keeps its k(δ) nearest, δ = g − f (ties at exactly equal distances may be
        # ordered differently than by a query of k(δ) alone)
        tgt = order[a:b]
        tree = cKDTree(xy[tgt])
        far = np.concatenate([rows_between(g - R, g - G - 1), rows_between(g + G + 1, g + R)])
        for src, kq in ((rows_between(g - G, g + G), kq_near), (far, k_far)):
            if not src.size or kq < 1:
                continue
            d, idx = tree.query(xy[src], k=kq, distance_upper_bound=cutoff_nm)
            d, idx = d.reshape(src.size, kq), idx.reshape(src.size, kq)
            found = np.where(np.isfinite(d), tgt[np.minimum(idx, tgt.size - 1)], -1)
            delta = g - frame[src]
            same = delta == 0
            if same.any():                                # drop the token itself
                fs = found[same]
                fs = np.where(fs == src[same][:, None], -1, fs)
                srt = np.argsort(fs < 0, axis=1, kind="stable")
                found[same] = np.take_along_axis(fs, srt, 1)
            di = delta + window - 1
            kk, c0 = k_of[di], col_of[di]
            for j in range(int(kk.max())):
                use = kk > j
                out[src[use], c0[use] + j] = found[use, j]
    return out


def restrict_neighbours(table: np.ndarray, rows: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """The table of the tokens ``rows`` alone: ``table[rows]`` with indices renumbered to
    positions in ``rows`` and neighbours outside ``rows`` set to −1.

    ``table`` is a :func:`window_neighbours` table over a run of frames; when ``rows`` are
    all tokens of one window, the result equals that window's own table. ``scratch`` is an
    int64 array of ``len(table)`` filled with −1 (returned to −1 afterwards, so it can be
    reused).
    """
    scratch[rows] = np.arange(rows.size)
    t = table[rows]
    out = np.where(t >= 0, scratch[t], -1)
    scratch[rows] = -1
    return out
