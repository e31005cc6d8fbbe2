"""SMLM challenge 2016 localization metrics (Sage et al., Nat Methods 2019).

Per frame, true and estimated emitters are paired greedily, closest pair first, within a
lateral tolerance (250 nm); Jaccard JI = TP/(TP+FP+FN) in %, RMSE over the matched pairs, and
efficiency E = 100 − √((100 − JI)² + α²·RMSE²) with α = 1 nm⁻¹ (lateral).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from smlmnet.data import contracts as C


def mortensen_precision_nm(photons, background, psf_sigma_nm: float, pixel_nm: float,
                           excess_noise: float = 1.0, estimator: str = "mle"):
    """Per-axis localization precision limit (Mortensen et al., Nat Methods 2010), nm.

    ``photons`` N and ``background`` b (photons/px) may be arrays (detected photons).
    MLE: Var = (s_a²/N)(1 + 4τ + √(2τ/(1+4τ))), τ = 2π s_a² b/(N a²), s_a² = s² + a²/12;
    least squares: Var = (s_a²/N)(16/9 + 8π s_a² b/(N a²)). ``excess_noise`` multiplies the
    variance (2 for an EMCCD).
    """
    N = np.asarray(photons, float)
    b = np.asarray(background, float)
    sa2 = psf_sigma_nm**2 + pixel_nm**2 / 12
    tau = 2 * np.pi * sa2 * b / (N * pixel_nm**2)
    if estimator == "mle":
        var = sa2 / N * (1 + 4 * tau + np.sqrt(2 * tau / (1 + 4 * tau)))
    else:
        var = sa2 / N * (16 / 9 + 4 * tau)
    return np.sqrt(excess_noise * var)


def match_per_frame(true: pd.DataFrame, est: pd.DataFrame, tolerance_nm: float = 250.0,
                    x_col: str = C.X_NM, y_col: str = C.Y_NM) -> pd.DataFrame:
    """Greedy closest-first pairing within each frame.

    Returns:
        DataFrame with columns ``true_index``, ``est_index`` (row labels of the inputs),
        ``dx [nm]``, ``dy [nm]`` (estimated − true) and ``distance [nm]``.
    """
    cols = ["true_index", "est_index", "dx [nm]", "dy [nm]", "distance [nm]"]
    if len(true) == 0 or len(est) == 0:
        return pd.DataFrame(columns=cols)
    # separate frames by a gap far larger than the tolerance so pairs never cross frames
    gap = 10.0 * (tolerance_nm + 1.0) + 1e9
    pt = np.column_stack([true[x_col], true[y_col], true[C.FRAME] * gap])
    pe = np.column_stack([est[x_col], est[y_col], est[C.FRAME] * gap])
    dist = cKDTree(pt).sparse_distance_matrix(cKDTree(pe), tolerance_nm, output_type="coo_matrix")
    order = np.argsort(dist.data, kind="stable")
    rows, cols_, d = dist.row[order], dist.col[order], dist.data[order]
    used_t = np.zeros(len(true), bool)
    used_e = np.zeros(len(est), bool)
    keep = []
    for k in range(len(d)):
        i, j = rows[k], cols_[k]
        if not used_t[i] and not used_e[j]:
            used_t[i] = used_e[j] = True
            keep.append(k)
    keep = np.asarray(keep, dtype=np.int64)
    ti, ei = rows[keep], cols_[keep]
    return pd.DataFrame({
        "true_index": true.index.to_numpy()[ti], "est_index": est.index.to_numpy()[ei],
        "dx [nm]": pe[ei, 0] - pt[ti, 0], "dy [nm]": pe[ei, 1] - pt[ti, 1],
        "distance [nm]": d[keep]})


def smlm_metrics(true: pd.DataFrame, est: pd.DataFrame, tolerance_nm: float = 250.0,
                 alpha_per_nm: float = 1.0) -> dict[str, float]:
    """Jaccard (%), lateral RMSE (nm), efficiency (%), recall/precision and counts."""
    pairs = match_per_frame(true, est, tolerance_nm)
    tp = len(pairs)
    fp, fn = len(est) - tp, len(true) - tp
    jaccard = 100.0 * tp / max(tp + fp + fn, 1)
    rmse = float(np.sqrt(np.mean(pairs["distance [nm]"] ** 2))) if tp else float("nan")
    eff = 100.0 - np.sqrt((100.0 - jaccard) ** 2 + alpha_per_nm**2 * (rmse if tp else 0) ** 2)
    return {"jaccard [%]": jaccard, "rmse_lateral [nm]": rmse, "efficiency [%]": float(eff),
            "recall": tp / max(tp + fn, 1), "precision": tp / max(tp + fp, 1),
            "rmse_x [nm]": float(np.sqrt(np.mean(pairs["dx [nm]"] ** 2))) if tp else np.nan,
            "rmse_y [nm]": float(np.sqrt(np.mean(pairs["dy [nm]"] ** 2))) if tp else np.nan,
            "bias_x [nm]": float(pairs["dx [nm]"].mean()) if tp else np.nan,
            "bias_y [nm]": float(pairs["dy [nm]"].mean()) if tp else np.nan,
            "tp": tp, "fp": fp, "fn": fn}
