"""Errors of diffusion estimates, and the AnDi 2 single-trajectory scores.

- :func:`relative_error_D`: per-track (D̂ − D)/D summarised as bias, std and RMS.
- :func:`mae_alpha`: mean absolute error of α (AnDi 1 task 1 / AnDi 2).
- :func:`msle_K`: mean squared log error mean((ln(1+K) − ln(1+K̂))²) (AnDi 2).
- :func:`andi2_single_trajectory_scores`: changepoints paired by the Hungarian algorithm with a
  10-frame threshold (RMSE over true positives, Jaccard), segments paired by their Jaccard
  overlap, then α MAE, K MSLE and state F1 (micro) over the paired segments, with AnDi 2's
  rules for missing or invalid predictions (Muñoz-Gil et al., Nat Commun 2025).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

# bounds used by the AnDi 2 scorer (andi_datasets.models_phenom bounds and error caps)
ANDI2_D_BOUNDS = (1e-12, 1e6)
ANDI2_ALPHA_BOUNDS = (0.0, 1.999)
ANDI2_ALPHA_MAX_ERROR = 2.0
ANDI2_D_MAX_ERROR = 1e5
ANDI2_STATE_FILL = 0
ANDI2_CP_THRESHOLD = 10


def relative_error_D(true_D, est_D) -> dict[str, float]:
    """Bias, std and RMS of (D̂ − D)/D over tracks with finite estimates (and the share lost)."""
    true_D, est_D = np.asarray(true_D, float), np.asarray(est_D, float)
    ok = np.isfinite(est_D) & np.isfinite(true_D) & (true_D > 0)
    rel = (est_D[ok] - true_D[ok]) / true_D[ok]
    return {"rel_bias_D": float(rel.mean()) if ok.any() else np.nan,
            "rel_std_D": float(rel.std()) if ok.any() else np.nan,
            "rel_rmse_D": float(np.sqrt(np.mean(rel**2))) if ok.any() else np.nan,
            "failed_fraction": float(1 - ok.mean()) if len(ok) else np.nan}


def mae_alpha(true_alpha, est_alpha) -> float:
    """Mean absolute error of α; a missing (NaN) estimate counts as the AnDi maximum error 2."""
    true_alpha, est_alpha = np.asarray(true_alpha, float), np.asarray(est_alpha, float)
    err = np.abs(true_alpha - est_alpha)
    return float(np.mean(np.where(np.isfinite(err), err, ANDI2_ALPHA_MAX_ERROR)))


def msle_K(true_K, est_K, floor: float = ANDI2_D_BOUNDS[0]) -> float:
    """Mean squared log error mean((ln(1+K) − ln(1+K̂))²), values clipped below at ``floor``."""
    t = np.maximum(np.asarray(true_K, float), floor)
    e = np.maximum(np.asarray(est_K, float), floor)
    return float(np.mean((np.log1p(t) - np.log1p(e)) ** 2))


def _f1_micro(true, pred) -> float:
    # micro-averaged F1 over single-label multiclass = accuracy
    true, pred = np.asarray(true, int), np.asarray(pred, int)
    return float(np.mean(true == pred)) if len(true) else np.nan


def changepoint_scores(true_cps: list, pred_cps: list,
                       threshold: float = ANDI2_CP_THRESHOLD) -> tuple[float, float]:
    """Ensemble changepoint RMSE (true positives) and Jaccard index.

    ``true_cps``/``pred_cps``: per trajectory, the changepoints without the final frame.
    Pairs are found per trajectory by the Hungarian algorithm on |cp − cp̂|; a pair closer than
    ``threshold`` is a TP, otherwise it counts as one FP and one FN; unpaired ones are FP/FN.
    """
    tp = fp = fn = empty_ok = 0
    sq = []
    n_true = 0
    for gt, pr in zip(true_cps, pred_cps):
        gt, pr = np.asarray(gt, float), np.asarray(pr, float)
        n_true += len(gt)
        rows, cols = linear_sum_assignment(np.abs(gt[:, None] - pr[None, :]))
        d = np.abs(gt[rows] - pr[cols])
        hit = d < threshold
        tp += int(hit.sum())
        fp += int((~hit).sum())
        fn += int((~hit).sum())
        sq.extend((d[hit] ** 2).tolist())
        fp += max(0, len(pr) - len(gt))
        fn += max(0, len(gt) - len(pr))
        if len(rows) == 0 and len(pr) == len(gt):
            empty_ok += 1
    if tp + fp + fn == 0:
        return (0.0, 1.0) if n_true == 0 else (float(threshold), 0.0)
    rmse = float(np.sqrt(np.mean(sq))) if sq else 0.0
    return rmse, (tp + empty_ok) / (tp + empty_ok + fp + fn)


def _segments(cps: np.ndarray, length: int) -> np.ndarray:
    """Binary masks of the segments delimited by changepoints (segment k covers
    (cp_{k-1}, cp_k], the first one also frame 0)."""
    bounds = np.concatenate([[0], cps])
    seg = np.zeros((len(cps) + 1, length))
    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        seg[k, a + 1:b + 1] = 1
    seg[-1, bounds[-1] + 1:] = 1
    seg[0, 0] = 1
    return seg


def _segment_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    n = max(len(a), len(b))
    a = np.pad(a, (0, n - len(a)))
    b = np.pad(b, (0, n - len(b)))
    tp = np.sum((a == 1) & (b == 1))
    union = np.sum((a == 1) | (b == 1))
    return tp / union if union else 0.0


def _pair_segments(gt_cp, pr_cp):
    """Pair ground-truth and predicted segments by maximal Jaccard overlap.

    Changepoint lists include the trajectory length as their last element."""
    gt_cp, pr_cp = [int(c) for c in gt_cp], [int(c) for c in pr_cp]
    seg_gt = _segments(np.asarray(gt_cp[:-1] if len(gt_cp) > 1 else gt_cp, int), gt_cp[-1])
    seg_pr = _segments(np.asarray(pr_cp[:-1] if len(pr_cp) > 1 else pr_cp, int), pr_cp[-1])
    cost = np.array([[1 - _segment_jaccard(g, p) for p in seg_pr] for g in seg_gt])
    return linear_sum_assignment(cost)


def andi2_single_trajectory_scores(true: pd.DataFrame, pred: pd.DataFrame) -> dict[str, float]:
    """AnDi 2 single-trajectory task scores.

    Both tables have one row per trajectory with ``traj_idx`` and list-valued ``alphas``,
    ``Ds``, ``states`` (one value per segment) and ``changepoints`` (segment ends; the last
    one is the trajectory length). Returns ``cp_rmse``, ``cp_jaccard``, ``alpha_mae``,
    ``K_msle`` and ``state_f1``.
    """
    pa, pd_, ps = [], [], []
    ens_true, ens_pred = [], []
    pred_by_idx = {int(r.traj_idx): r for r in pred.itertuples()}
    for row in true.itertuples():
        p = pred_by_idx.get(int(row.traj_idx))
        if p is None or len(p.changepoints) == 0:
            pr = ([10], [0.0], [1.0], [0])
            gt = ([10 + ANDI2_CP_THRESHOLD], [ANDI2_ALPHA_MAX_ERROR], [1 + ANDI2_D_MAX_ERROR],
                  [10])
            ens_pred.append(pr[0])
            ens_true.append(gt[0])
        else:
            pr = (list(p.changepoints), list(p.alphas), list(p.Ds), list(p.states))
            gt = (list(row.changepoints), list(row.alphas), list(row.Ds), list(row.states))
            ens_pred.append(pr[0][:-1])
            ens_true.append(gt[0][:-1])
        no_gt, no_pr = len(gt[0]) == 1, len(pr[0]) == 1
        if no_gt and no_pr:
            pairs = [(0, 0)]
        else:
            rows, cols = _pair_segments(gt[0], pr[0])
            if no_gt:
                pairs = [(0, int(cols[0]))]
            elif no_pr:
                r0 = int(np.flatnonzero(cols == 0)[0])
                pairs = [(int(rows[r0]), 0)]
            else:
                pairs = list(zip(rows.tolist(), cols.tolist()))
        for g, q in pairs:
            pa.append((gt[1][g], pr[1][q]))
            pd_.append((gt[2][g], pr[2][q]))
            ps.append((gt[3][g], pr[3][q]))
    pa, pd_, ps = np.array(pa, float), np.array(pd_, float), np.array(ps, float)
    bad_a = np.isnan(pa[:, 1]) | (pa[:, 1] > 2) | (pa[:, 1] < 0)
    pa[bad_a, 1] = pa[bad_a, 0] + ANDI2_ALPHA_MAX_ERROR
    bad_d = np.isnan(pd_[:, 1])
    pd_ = np.abs(pd_)
    pd_[bad_d, 1] = pd_[bad_d, 0] + ANDI2_D_MAX_ERROR
    bad_s = (ps[:, 1] > 4) | (ps[:, 1] < 0)
    ps[bad_s, 1] = ANDI2_STATE_FILL
    cp_rmse, cp_ji = changepoint_scores(ens_true, ens_pred)
    alpha_err = min(float(np.mean(np.abs(pa[:, 0] - pa[:, 1]))),
                    abs(ANDI2_ALPHA_BOUNDS[1] - ANDI2_ALPHA_BOUNDS[0]))
    k_err = min(msle_K(pd_[:, 0], pd_[:, 1]),
                msle_K([ANDI2_D_BOUNDS[0]], [ANDI2_D_BOUNDS[1]]))
    return {"cp_rmse": cp_rmse, "cp_jaccard": cp_ji, "alpha_mae": alpha_err, "K_msle": k_err,
            "state_f1": _f1_micro(ps[:, 0], ps[:, 1])}
