"""Adapters that run peer packages on smlmnet tables, for side-by-side benchmarks.

Each adapter converts smlmnet's units and coordinates at the boundary (nm ↔ px, centre of
pixel 0 at 0.5 px ↔ 0) and raises ``ImportError`` with the install command when the peer is
missing. Settings are made equivalent to smlmnet's linkers: search range = search radius,
laptrack cutoff = radius², gap_closing_max_frame_count = trackpy memory + 1 = max gap + 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smlmnet.data import contracts as C
from smlmnet.link.base import Linker, check_localizations


def _require(module: str, pip_name: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{module} is not installed: pip install {pip_name}") from err


class _PeerLinker(Linker):
    def __init__(self, search_radius_nm: float = 500.0, max_gap_frames: int = 2) -> None:
        self.search_radius_nm = float(search_radius_nm)
        self.max_gap_frames = int(max_gap_frames)


class TrackpyLinker(_PeerLinker):
    """``trackpy.link`` with ``search_range`` = radius and ``memory`` = max gap (frames)."""

    name = "trackpy"

    def link(self, locs: pd.DataFrame) -> pd.DataFrame:
        tp = _require("trackpy", "trackpy")
        tp.quiet()
        check_localizations(locs)
        out = locs.sort_values(C.FRAME, kind="stable").reset_index(drop=True)
        df = pd.DataFrame({"x": out[C.X_NM].to_numpy(), "y": out[C.Y_NM].to_numpy(),
                           "frame": out[C.FRAME].to_numpy()})
        linked = tp.link(df, search_range=self.search_radius_nm, memory=self.max_gap_frames,
                         link_strategy="auto")
        out[C.TRACK_ID] = linked.loc[out.index, "particle"].to_numpy().astype(np.int64)
        return out


class LaptrackLinker(_PeerLinker):
    """``laptrack.LapTrack`` with cutoff = radius², gap closing over max gap + 1 frames."""

    name = "laptrack"

    def link(self, locs: pd.DataFrame) -> pd.DataFrame:
        laptrack = _require("laptrack", "laptrack")
        check_localizations(locs)
        out = locs.sort_values(C.FRAME, kind="stable").reset_index(drop=True)
        df = pd.DataFrame({"x": out[C.X_NM].to_numpy(), "y": out[C.Y_NM].to_numpy(),
                           "frame": out[C.FRAME].to_numpy(), "row": np.arange(len(out))})
        r2 = self.search_radius_nm**2
        kwargs = dict(cutoff=r2, splitting_cutoff=False, merging_cutoff=False)
        if self.max_gap_frames > 0:
            kwargs.update(gap_closing_cutoff=r2,
                          gap_closing_max_frame_count=self.max_gap_frames + 1)
        else:
            kwargs.update(gap_closing_cutoff=False)
        try:
            lt = laptrack.LapTrack(**kwargs)
        except TypeError:  # older laptrack names
            kwargs["track_cost_cutoff"] = kwargs.pop("cutoff")
            lt = laptrack.LapTrack(**kwargs)
        track_df, _, _ = lt.predict_dataframe(df, ["x", "y"], frame_col="frame",
                                              only_coordinate_cols=False)
        # laptrack returns rows in its graph's order: map them back through our row number;
        # without splits and merges, a tree is one gap-closed track
        track_df = track_df.sort_values("row")
        out[C.TRACK_ID] = track_df["tree_id"].to_numpy().astype(np.int64)
        return out
