"""Mean squared displacement of trajectories with missing frames.

Positions are in any unit (the result is in that unit squared); lags are in frames. A
displacement over lag n uses only pairs of frames that are exactly n apart, so gaps (blinking,
missed detections) never bias the curve.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smlmnet.data import contracts as C


def _dense(frames: np.ndarray, xy: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames, dtype=np.int64)
    if frames.size and np.unique(frames).size != frames.size:
        raise ValueError("a track has two positions in the same frame")
    length = int(frames.max() - frames.min() + 1) if frames.size else 0
    dense = np.full((length, xy.shape[1]), np.nan)
    dense[frames - frames.min()] = xy
    return dense


def time_averaged_msd(frames: np.ndarray, xy: np.ndarray, max_lag: int) -> tuple[np.ndarray,
                                                                                 np.ndarray]:
    """Time-averaged MSD of one track.

    Args:
        frames: ``(n,)`` 0-based frame numbers (any order, no duplicates).
        xy: ``(n, d)`` positions.
        max_lag: largest lag in frames.
    Returns:
        ``(msd, n_pairs)``, each ``(max_lag,)`` for lags 1..max_lag; ``msd`` is NaN where no
        pair exists. ``msd`` sums the squared displacement over the d dimensions.
    """
    xy = np.asarray(xy, dtype=float)
    dense = _dense(frames, xy)
    msd = np.full(max_lag, np.nan)
    n_pairs = np.zeros(max_lag, dtype=np.int64)
    for lag in range(1, min(max_lag, len(dense) - 1) + 1):
        d2 = np.sum((dense[lag:] - dense[:-lag]) ** 2, axis=1)
        ok = np.isfinite(d2)
        n_pairs[lag - 1] = ok.sum()
        if n_pairs[lag - 1]:
            msd[lag - 1] = d2[ok].mean()
    return msd, n_pairs


def track_msds(table: pd.DataFrame, max_lag: int, x_col: str = C.X_NM, y_col: str = C.Y_NM,
               track_col: str = C.TRACK_ID) -> pd.DataFrame:
    """Time-averaged MSD of every track in a table: columns ``track_col``, ``lag``,
    ``msd`` (unit of x/y squared), ``n_pairs``."""
    rows = []
    for tid, g in table.groupby(track_col, sort=True):
        msd, n = time_averaged_msd(g[C.FRAME].to_numpy(), g[[x_col, y_col]].to_numpy(), max_lag)
        rows.append(pd.DataFrame({track_col: tid, "lag": np.arange(1, max_lag + 1), "msd": msd,
                                  "n_pairs": n}))
    if not rows:
        return pd.DataFrame(columns=[track_col, "lag", "msd", "n_pairs"])
    return pd.concat(rows, ignore_index=True)


def ensemble_msd(positions: np.ndarray, max_lag: int) -> np.ndarray:
    """Ensemble- and time-averaged MSD of equally long trajectories.

    Args:
        positions: ``(N, T, d)`` array.
    Returns:
        ``(max_lag,)`` MSD for lags 1..max_lag (summed over dimensions).
    """
    positions = np.asarray(positions, dtype=float)
    return np.array([
        np.mean(np.sum((positions[:, lag:] - positions[:, :-lag]) ** 2, axis=-1))
        for lag in range(1, max_lag + 1)
    ])
