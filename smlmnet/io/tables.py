"""Localization and track tables in the formats users already have.

- ThunderSTORM CSV: ``"id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]",
  "offset [photon]","bkgstd [photon]","chi2","uncertainty_xy [nm]"`` with 1-based frames.
  Positions are written in smlmnet's convention (nm from the image corner, centre of pixel 0
  at half a pixel); pass ``pixel_center_offset_nm`` if your software differs.
- trackpy: ``frame``, ``particle``, ``x``, ``y`` in array-index pixels (centre of pixel 0 at 0).

Writers are atomic and never overwrite an existing file unless asked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from smlmnet.data import contracts as C
from smlmnet.io.atomic import atomic_write_path

THUNDERSTORM_COLUMNS = ["id", "frame", "x [nm]", "y [nm]", "sigma [nm]", "intensity [photon]",
                        "offset [photon]", "bkgstd [photon]", "chi2", "uncertainty_xy [nm]"]


def write_csv(table: pd.DataFrame, path: str | Path, overwrite: bool = False) -> Path:
    with atomic_write_path(path, overwrite=overwrite) as tmp:
        table.to_csv(tmp, index=False)
    return Path(path)


def to_thunderstorm(locs: pd.DataFrame, pixel_center_offset_nm: float = 0.0) -> pd.DataFrame:
    """smlmnet localization table → ThunderSTORM columns (1-based frames)."""
    def col(name, default=np.nan):
        return locs[name].to_numpy() if name in locs else np.full(len(locs), default)

    return pd.DataFrame({
        "id": np.arange(1, len(locs) + 1),
        "frame": locs[C.FRAME].to_numpy() + 1,
        "x [nm]": locs[C.X_NM].to_numpy() + pixel_center_offset_nm,
        "y [nm]": locs[C.Y_NM].to_numpy() + pixel_center_offset_nm,
        "sigma [nm]": col("sigma [nm]"),
        "intensity [photon]": col(C.PHOTONS),
        "offset [photon]": col("bg [photon/px]"),
        "bkgstd [photon]": col("bkgstd [photon]"),
        "chi2": col("chi2"),
        "uncertainty_xy [nm]": col("uncertainty_xy [nm]"),
    })


def read_thunderstorm_csv(path: str | Path, pixel_center_offset_nm: float = 0.0) -> pd.DataFrame:
    """ThunderSTORM CSV → smlmnet localization table (0-based frames)."""
    raw = pd.read_csv(path)
    raw.columns = [c.strip().strip('"') for c in raw.columns]
    if "uncertainty [nm]" in raw and "uncertainty_xy [nm]" not in raw:
        raw = raw.rename(columns={"uncertainty [nm]": "uncertainty_xy [nm]"})
    missing = [c for c in ("frame", "x [nm]", "y [nm]") if c not in raw]
    if missing:
        raise ValueError(f"{str(path)!r} is not a ThunderSTORM table: missing {missing}")
    out = pd.DataFrame({C.FRAME: raw["frame"].astype(np.int64) - 1,
                        C.X_NM: raw["x [nm]"] - pixel_center_offset_nm,
                        C.Y_NM: raw["y [nm]"] - pixel_center_offset_nm})
    mapping = {"intensity [photon]": C.PHOTONS, "offset [photon]": "bg [photon/px]",
               "sigma [nm]": "sigma [nm]", "bkgstd [photon]": "bkgstd [photon]",
               "chi2": "chi2", "uncertainty_xy [nm]": "uncertainty_xy [nm]"}
    for src, dst in mapping.items():
        if src in raw:
            out[dst] = raw[src].to_numpy()
    return out


def to_trackpy(tracks: pd.DataFrame, pixel_size_nm: float) -> pd.DataFrame:
    """smlmnet track table → trackpy columns (pixels, centre of pixel 0 at 0)."""
    from smlmnet.data.contracts import nm_to_pixel_index

    return pd.DataFrame({C.FRAME: tracks[C.FRAME].to_numpy(),
                         "particle": tracks[C.TRACK_ID].to_numpy(),
                         "x": nm_to_pixel_index(tracks[C.X_NM], pixel_size_nm),
                         "y": nm_to_pixel_index(tracks[C.Y_NM], pixel_size_nm)})


TRACK_FORMATS = ("smlmnet", "trackpy", "trackmate")
_LENGTH_TO_NM = {"nm": 1.0, "um": 1000.0, "µm": 1000.0, "micron": 1000.0}


def read_tracks_csv(path: str | Path, pixel_size_nm: float | None = None,
                    length_unit: str | None = None) -> tuple[pd.DataFrame, str]:
    """A tracks CSV from smlmnet, trackpy or TrackMate → smlmnet's track table
    (``track_id``, ``frame``, ``x [nm]``, ``y [nm]``) and the format detected.

    - smlmnet: ``track_id``, ``frame``, ``x [nm]``, ``y [nm]`` (taken as they are);
    - trackpy: ``particle``, ``frame``, ``x``, ``y`` in pixels (centre of pixel 0 at 0):
      needs ``pixel_size_nm``;
    - TrackMate spot table: ``TRACK_ID``, ``FRAME``, ``POSITION_X``, ``POSITION_Y`` in the
      image's calibrated unit (``length_unit``: ``nm``, ``um`` or ``px``; default ``um``,
      TrackMate's usual calibration; ``px`` needs ``pixel_size_nm``). The extra header rows
      that TrackMate writes below the column names (labels, units) are skipped, as are spots
      without a track.
    """
    raw = pd.read_csv(path)
    cols = set(raw.columns)
    if {C.TRACK_ID, C.FRAME, C.X_NM, C.Y_NM} <= cols:
        out = raw[[C.TRACK_ID, C.FRAME, C.X_NM, C.Y_NM]].copy()
        fmt = "smlmnet"
    elif {"particle", "frame", "x", "y"} <= cols:
        if not pixel_size_nm:
            raise ValueError(f"{path}: a trackpy table (x, y in pixels) needs the pixel size "
                             "(--pixel-size-nm)")
        out = pd.DataFrame({C.TRACK_ID: raw["particle"], C.FRAME: raw["frame"],
                            C.X_NM: (raw["x"].astype(float) + C.PIXEL_CENTER_OFFSET_PX)
                            * pixel_size_nm,
                            C.Y_NM: (raw["y"].astype(float) + C.PIXEL_CENTER_OFFSET_PX)
                            * pixel_size_nm})
        fmt = "trackpy"
    elif {"TRACK_ID", "FRAME", "POSITION_X", "POSITION_Y"} <= cols:
        t = raw[["TRACK_ID", "FRAME", "POSITION_X", "POSITION_Y"]].apply(
            pd.to_numeric, errors="coerce").dropna()
        unit = (length_unit or "um").lower()
        if unit == "px":
            if not pixel_size_nm:
                raise ValueError(f"{path}: TrackMate positions in pixels need --pixel-size-nm")
            factor, offset = float(pixel_size_nm), 0.0
        elif unit in _LENGTH_TO_NM:
            factor, offset = _LENGTH_TO_NM[unit], 0.0
        else:
            raise ValueError(f"unknown length unit {length_unit!r}; use nm, um or px")
        out = pd.DataFrame({C.TRACK_ID: t["TRACK_ID"], C.FRAME: t["FRAME"],
                            C.X_NM: t["POSITION_X"] * factor + offset,
                            C.Y_NM: t["POSITION_Y"] * factor + offset})
        fmt = "trackmate"
    else:
        raise ValueError(f"{path}: not a tracks table smlmnet knows ({', '.join(TRACK_FORMATS)}"
                         f"); its columns are {sorted(cols)}")
    out[C.TRACK_ID] = out[C.TRACK_ID].astype(np.int64)
    out[C.FRAME] = out[C.FRAME].astype(np.int64)
    return out.reset_index(drop=True), fmt
