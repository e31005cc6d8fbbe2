"""Linkers share one interface: ``Linker.link(localizations) -> tracks``.

The input is a localization table (``frame``, ``x [nm]``, ``y [nm]``, ...); the output is a
copy with an integer ``track_id`` column (every localization belongs to one track; a track may
skip frames where the emitter was missed or dark).
"""

from __future__ import annotations

import abc

import numpy as np
import pandas as pd
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


class Linker(abc.ABC):
    """Links localizations into tracks."""

    name = "linker"

    @abc.abstractmethod
    def link(self, locs: pd.DataFrame) -> pd.DataFrame:
        """Copy of ``locs`` (sorted by frame) with a ``track_id`` column."""

    def settings(self) -> dict:
        """The settings this linker used (JSON-ready), recorded with every analysis."""
        return {"linker": self.name}


class FrameToFrameLinker(Linker):
    """Frame-by-frame assignment in which tracks that were missed for up to
    ``max_gap_frames`` frames stay candidates (gap closing inside the assignment, so a
    returning emitter competes with new ones on equal terms).

    Args:
        search_radius_nm: largest displacement between consecutive frames.
        max_gap_frames: largest number of missing frames bridged (0 = none).
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

    def settings(self) -> dict:
        return {"linker": self.name, "search_radius_nm": self.search_radius_nm,
                "max_gap_frames": self.max_gap_frames,
                "gap_radius_scaling": self.gap_radius_scaling,
                "alternative_factor": self.alternative_factor}

    def link(self, locs: pd.DataFrame) -> pd.DataFrame:
        check_localizations(locs)
        out = locs.sort_values(C.FRAME, kind="stable").reset_index(drop=True)
        if len(out) == 0:
            out[C.TRACK_ID] = pd.Series(dtype="int64")
            return out
        frames = out[C.FRAME].to_numpy(np.int64)
        xy = out[[C.X_NM, C.Y_NM]].to_numpy(float)
        out[C.TRACK_ID] = self._link_frames(frames, xy)
        return out

    def _link_frames(self, frames: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """Track label of every localization (inputs sorted by frame)."""
        n = len(frames)
        r = self.search_radius_nm
        G = self.max_gap_frames
        brownian = self.gap_radius_scaling == "brownian"
        r_max = r * (np.sqrt(G + 1) if brownian else 1.0)
        alt = self.alternative_factor * r**2
        labels = np.full(n, -1, np.int64)
        bounds = np.flatnonzero(np.diff(frames)) + 1
        starts = np.concatenate([[0], bounds])
        stops = np.concatenate([bounds, [n]])
        # state of live tracks: id, last frame, last localization
        act_id = np.zeros(0, np.int64)
        act_frame = np.zeros(0, np.int64)
        act_loc = np.zeros(0, np.int64)
        next_id = 0
        for a, b in zip(starts, stops):
            t = frames[a]
            keep = act_frame >= t - 1 - G
            act_id, act_frame, act_loc = act_id[keep], act_frame[keep], act_loc[keep]
            idx = np.arange(a, b)
            assigned = np.zeros(b - a, bool)
            if act_id.size:
                m = cKDTree(xy[act_loc]).sparse_distance_matrix(cKDTree(xy[idx]), r_max,
                                                                output_type="coo_matrix")
                i, j, d2 = m.row, m.col, m.data**2
                lag = (t - act_frame[i]).astype(float)
                if brownian:
                    cost = d2 / lag
                    ok = d2 <= r**2 * lag
                else:
                    cost = d2
                    ok = d2 <= r**2
                si, sj = solve_sparse_assignment(i[ok], j[ok], cost[ok], act_id.size, b - a,
                                                 alt, self.greedy)
                labels[idx[sj]] = act_id[si]
                act_frame[si] = t
                act_loc[si] = idx[sj]
                assigned[sj] = True
            new = idx[~assigned]
            labels[new] = np.arange(next_id, next_id + new.size)
            next_id += new.size
            act_id = np.concatenate([act_id, labels[new]])
            act_frame = np.concatenate([act_frame, np.full(new.size, t)])
            act_loc = np.concatenate([act_loc, new])
        return labels


class LAPLinker(FrameToFrameLinker):
    """Optimal (LAP) frame-to-frame linking with gap closing: in every frame, the assignment
    that minimizes the summed squared displacements plus birth/death costs (u-track/TrackMate
    cost structure), solved exactly on the sparse candidate graph."""

    def __init__(self, search_radius_nm: float = 500.0, max_gap_frames: int = 2,
                 gap_radius_scaling: str = "none", alternative_factor: float = 1.05) -> None:
        super().__init__(search_radius_nm, max_gap_frames, gap_radius_scaling, greedy=False,
                         alternative_factor=alternative_factor)


class NearestNeighborLinker(FrameToFrameLinker):
    """Greedy nearest-neighbour linking (closest pairs first), with optional gap closing."""

    def __init__(self, search_radius_nm: float = 500.0, max_gap_frames: int = 0,
                 gap_radius_scaling: str = "none") -> None:
        super().__init__(search_radius_nm, max_gap_frames, gap_radius_scaling, greedy=True)
