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
