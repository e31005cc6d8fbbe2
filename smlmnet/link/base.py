"""Linkers share one interface: ``Linker.link(localizations) -> tracks``.

The input is a localization table (``frame``, ``x [nm]``, ``y [nm]``, ...); the output is a
copy with an integer ``track_id`` column (every localization belongs to one track; a track may
skip frames where the emitter was missed or dark).
"""

from __future__ import annotations

import abc

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from smlmnet.data import contracts as C
from smlmnet.link.assignment import solve_sparse_assignment


def check_localizations(locs: pd.DataFrame) -> None:
    missing = [c for c in (C.FRAME, C.X_NM, C.Y_NM) if c not in locs.columns]
    if missing:
        raise ValueError(f"localization table lacks column(s) {missing}")
    xy = locs[[C.X_NM, C.Y_NM]].to_numpy(float)
    if not np.isfinite(xy).all():
        raise ValueError("localization table has NaN or infinite positions")
    if (locs[C.FRAME].to_numpy() < 0).any():
        raise ValueError("frames must be 0-based non-negative integers")


def candidate_pairs(frames_a, xy_a, frames_b, xy_b, lag, radius):
    """All (a, b) with frame_b − frame_a == lag and distance ≤ radius; returns (ia, ib, d²)."""
    if len(frames_a) == 0 or len(frames_b) == 0:
        return (np.zeros(0, np.int64),) * 2 + (np.zeros(0),)
    gap = 4.0 * radius + 1.0
    pa = np.column_stack([xy_a, frames_a * gap])
    pb = np.column_stack([xy_b, (frames_b - lag) * gap])
    m = cKDTree(pa).sparse_distance_matrix(cKDTree(pb), radius, output_type="coo_matrix")
    return m.row.astype(np.int64), m.col.astype(np.int64), m.data**2


class Linker(abc.ABC):
    """Links localizations into tracks."""

    name = "linker"

    @abc.abstractmethod
    def link(self, locs: pd.DataFrame) -> pd.DataFrame:
        """Copy of ``locs`` (sorted by frame) with a ``track_id`` column."""


class FrameToFrameLinker(Linker):
    """Frame-to-frame assignment, then gap closing over up to ``max_gap_frames`` missing
    frames (u-track / TrackMate scheme).

    Args:
        search_radius_nm: largest displacement between consecutive frames.
        max_gap_frames: largest number of missing frames bridged by gap closing (0 = none).
        gap_radius_scaling: ``"none"`` (same radius across a gap, as trackpy's memory and
            laptrack) or ``"brownian"`` (radius × √(frames spanned), cost d²/frames spanned).
        greedy: nearest-neighbour (cheapest first) instead of the optimal assignment.
        alternative_factor: the no-link cost is ``alternative_factor × search_radius²``
            (> 1: every link within the radius beats leaving both ends unlinked, as
            TrackMate's 1.05 × maximal cost).
    """

    def __init__(self, search_radius_nm: float = 500.0, max_gap_frames: int = 2,
                 gap_radius_scaling: str = "none", greedy: bool = False,
                 alternative_factor: float = 1.05) -> None:
        if not search_radius_nm > 0:
            raise ValueError(f"search_radius_nm must be > 0; got {search_radius_nm}")
        if max_gap_frames < 0:
            raise ValueError(f"max_gap_frames must be >= 0; got {max_gap_frames}")
        if gap_radius_scaling not in ("none", "brownian"):
            raise ValueError("gap_radius_scaling must be 'none' or 'brownian'")
        self.search_radius_nm = float(search_radius_nm)
        self.max_gap_frames = int(max_gap_frames)
        self.gap_radius_scaling = gap_radius_scaling
        self.greedy = greedy
        self.alternative_factor = float(alternative_factor)
        self.name = "nearest_neighbour" if greedy else "lap"

    def link(self, locs: pd.DataFrame) -> pd.DataFrame:
        check_localizations(locs)
        out = locs.sort_values(C.FRAME, kind="stable").reset_index(drop=True)
        n = len(out)
        if n == 0:
            out[C.TRACK_ID] = pd.Series(dtype="int64")
            return out
        frames = out[C.FRAME].to_numpy(np.int64)
        xy = out[[C.X_NM, C.Y_NM]].to_numpy(float)
        r = self.search_radius_nm
        alt = self.alternative_factor * r**2
        # 1) frame to frame
        ia, ib, c = candidate_pairs(frames, xy, frames, xy, 1, r)
        src, dst = solve_sparse_assignment(ia, ib, c, n, n, alt, self.greedy)
        successor = np.full(n, -1)
        successor[src] = dst
        has_pred = np.zeros(n, bool)
        has_pred[dst] = True
        # 2) gap closing between segment ends (no successor) and starts (no predecessor)
        if self.max_gap_frames > 0:
            ends = np.flatnonzero(successor < 0)
            starts = np.flatnonzero(~has_pred)
            gi, gj, gc = [], [], []
            for lag in range(2, self.max_gap_frames + 2):
                scale = np.sqrt(lag) if self.gap_radius_scaling == "brownian" else 1.0
                a, b, d2 = candidate_pairs(frames[ends], xy[ends], frames[starts], xy[starts],
                                           lag, r * scale)
                gi.append(a)
                gj.append(b)
                gc.append(d2 / lag if self.gap_radius_scaling == "brownian" else d2)
            a, b = solve_sparse_assignment(np.concatenate(gi), np.concatenate(gj),
                                           np.concatenate(gc), len(ends), len(starts), alt,
                                           self.greedy)
            src = np.concatenate([src, ends[a]])
            dst = np.concatenate([dst, starts[b]])
        # 3) track ids = connected components of the chosen links
        graph = coo_matrix((np.ones(src.size), (src, dst)), shape=(n, n))
        _, label = connected_components(graph, directed=False)
        # number tracks in order of their first localization
        first = np.full(label.max() + 1, n)
        np.minimum.at(first, label, np.arange(n))
        rank = np.empty_like(first)
        rank[np.argsort(first, kind="stable")] = np.arange(first.size)
        out[C.TRACK_ID] = rank[label].astype(np.int64)
        return out


class LAPLinker(FrameToFrameLinker):
    """Optimal (LAP) frame-to-frame linking with gap closing, u-track/TrackMate style."""

    def __init__(self, search_radius_nm: float = 500.0, max_gap_frames: int = 2,
                 gap_radius_scaling: str = "none", alternative_factor: float = 1.05) -> None:
        super().__init__(search_radius_nm, max_gap_frames, gap_radius_scaling, greedy=False,
                         alternative_factor=alternative_factor)


class NearestNeighborLinker(FrameToFrameLinker):
    """Greedy nearest-neighbour linking (closest pairs first), with optional gap closing."""

    def __init__(self, search_radius_nm: float = 500.0, max_gap_frames: int = 0,
                 gap_radius_scaling: str = "none") -> None:
        super().__init__(search_radius_nm, max_gap_frames, gap_radius_scaling, greedy=True)
