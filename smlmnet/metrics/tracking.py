"""Particle Tracking Challenge metrics (Chenouard et al., Nat Methods 2014).

Track distance with gate ε: d(θ, ω) = Σ_t min(‖θ(t) − ω(t)‖, ε), a frame present in only one
of the two costing ε. True tracks X are paired one to one with estimated tracks Y or with
dummy tracks (d(x, ∅) = ε·|x|) so that d(X, Y) is minimal (Hungarian/JV assignment, solved
exactly on the sparse graph of track pairs that come within ε of each other). Then
α = 1 − d(X, Y)/d(X, ∅), β = (d(X, ∅) − d(X, Y)) / (d(X, ∅) + d(Ȳ, ∅)) with Ȳ the unpaired
(spurious) estimated tracks; JSC = TP/(TP + FN + FP) over points (a point of a paired
estimated track within ε of its true track in the same frame is a TP); JSC_θ = paired /
(paired + missed + spurious) over tracks; RMSE over the TP points.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from smlmnet.data import contracts as C
from smlmnet.link.assignment import solve_sparse_assignment


def tracking_metrics(true: pd.DataFrame, est: pd.DataFrame, gate_nm: float,
                     track_col: str = C.TRACK_ID) -> dict[str, float]:
    """PTC scores of estimated tracks ``est`` against ground truth ``true``.

    Both tables need ``frame``, ``x [nm]``, ``y [nm]`` and ``track_col`` (one point per
    track and frame). ``gate_nm`` is ε (the challenge uses 5 px × pixel size).
    """
    eps = float(gate_nm)
    t_ids, t_inv = np.unique(true[track_col].to_numpy(), return_inverse=True)
    e_ids, e_inv = np.unique(est[track_col].to_numpy(), return_inverse=True)
    len_t = np.bincount(t_inv, minlength=len(t_ids)).astype(float)
    len_e = np.bincount(e_inv, minlength=len(e_ids)).astype(float)
    d_x_empty = eps * len_t.sum()
    out = {"alpha": 0.0, "beta": 0.0, "jsc": 0.0, "jsc_theta": 0.0, "rmse [nm]": np.nan,
           "n_true_tracks": len(t_ids), "n_est_tracks": len(e_ids), "paired": 0,
           "missed": len(t_ids), "spurious": len(e_ids)}
    if len(t_ids) == 0:
        return out
    # point pairs in the same frame within ε
    pairs_t = pairs_e = np.zeros(0, np.int64)
    dist = np.zeros(0)
    if len(est):
        gap = 4 * eps + 1
        pt = np.column_stack([true[[C.X_NM, C.Y_NM]].to_numpy(float), true[C.FRAME] * gap])
        pe = np.column_stack([est[[C.X_NM, C.Y_NM]].to_numpy(float), est[C.FRAME] * gap])
        m = cKDTree(pt).sparse_distance_matrix(cKDTree(pe), eps, output_type="coo_matrix")
        pairs_t, pairs_e, dist = m.row, m.col, m.data
    # common frames of each candidate track pair (also those farther apart than ε)
    ti, ej = t_inv[pairs_t], e_inv[pairs_e]
    key = ti.astype(np.int64) * len(e_ids) + ej
    cand, cand_inv = np.unique(key, return_inverse=True)
    close_gain = np.bincount(cand_inv, weights=eps - np.minimum(dist, eps), minlength=cand.size)
    ci, cj = cand // max(len(e_ids), 1), cand % max(len(e_ids), 1)
    frames_t = true[C.FRAME].to_numpy()
    frames_e = est[C.FRAME].to_numpy()
    t_frames = pd.Series(frames_t).groupby(t_inv).apply(lambda s: set(s.to_numpy()))
    e_frames = pd.Series(frames_e).groupby(e_inv).apply(lambda s: set(s.to_numpy()))
    overlap = np.array([len(t_frames[i] & e_frames[j]) for i, j in zip(ci, cj)], float)
    # pairing x_i with y_j instead of a dummy lowers d(X, Y) by S_ij − ε|y_j|
    gain = eps * overlap + close_gain - eps * len_e[cj]
    pi, pj = solve_sparse_assignment(ci, cj, -gain, len(t_ids), len(e_ids), 0.0)
    pair_gain = dict(zip(zip(ci, cj), gain))
    total_gain = sum(pair_gain[(a, b)] for a, b in zip(pi, pj))
    d_xy = d_x_empty - total_gain
    spurious = np.ones(len(e_ids), bool)
    spurious[pj] = False
    d_ybar = eps * len_e[spurious].sum()
    paired_to = np.full(len(t_ids), -1)
    paired_to[pi] = pj
    tp_mask = paired_to[ti] == ej
    tp = int(tp_mask.sum())
    out.update({
        "alpha": 1.0 - d_xy / d_x_empty,
        "beta": (d_x_empty - d_xy) / (d_x_empty + d_ybar),
        "jsc": tp / max(len(true) + len(est) - tp, 1),
        "jsc_theta": len(pi) / max(len(t_ids) + spurious.sum(), 1),
        "rmse [nm]": float(np.sqrt(np.mean(dist[tp_mask] ** 2))) if tp else np.nan,
        "paired": int(len(pi)), "missed": int(len(t_ids) - len(pi)),
        "spurious": int(spurious.sum()),
    })
    return out


def majority_true_track(est: pd.DataFrame, true: pd.DataFrame, tolerance_nm: float,
                        track_col: str = C.TRACK_ID) -> pd.DataFrame:
    """For each estimated track, the true track that most of its localizations match
    (per-frame pairing within ``tolerance_nm``) and the share of them that do.

    Returns columns ``track_id`` (estimated), ``true_track_id``, ``purity``.
    """
    from smlmnet.metrics.localization import match_per_frame

    est = est.reset_index(drop=True)
    true = true.reset_index(drop=True)
    pairs = match_per_frame(true, est, tolerance_nm)
    df = pd.DataFrame({"est_track": est.loc[pairs["est_index"], track_col].to_numpy(),
                       "true_track": true.loc[pairs["true_index"], track_col].to_numpy()})
    counts = df.value_counts().rename("n").reset_index()
    best = counts.sort_values("n", ascending=False).drop_duplicates("est_track")
    sizes = est.groupby(track_col).size()
    return pd.DataFrame({track_col: best["est_track"].to_numpy(),
                         "true_track_id": best["true_track"].to_numpy(),
                         "purity": best["n"].to_numpy() / sizes.loc[best["est_track"]].to_numpy()})
