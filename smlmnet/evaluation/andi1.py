"""AnDi 1 tasks 1 (α, MAE) and 2 (model, micro-F1) in 2D: the learned trajectory network
beside the MSD log–log baseline on the same trajectories, over several seeds.

Each seed draws ``n_trajectories`` trajectories with lengths uniform in
[``min_length``, ``max_length``] (AnDi 1's length mix) plus ``n_short`` trajectories of
``short_lengths`` points (tracks of ≤ 20 points are rare in the mix, so their α error is
measured on a set of their own). Models uniform among the five, α uniform on each model's AnDi
grid, AnDi 1 normalization and noise σ ∈ ``noise_levels`` (:mod:`smlmnet.simulate.andi1`).
The reporting seeds must differ from the training streams (train.py uses item seeds derived
from (seed, epoch, index) with seeds 0, 1, 2; these use ``np.random.default_rng(seed)``).
Confidence intervals: mean ± t(0.975, n−1)·sd/√n over the seeds.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats

from smlmnet.data import contracts as C
from smlmnet.diffusion.estimators import LogLogMSD
from smlmnet.evaluation.report import write_report
from smlmnet.metrics.diffusion import mae_alpha
from smlmnet.simulate.andi1 import MODELS, andi1_batch

logger = logging.getLogger(__name__)


def andi1_test_set(rng: np.random.Generator, n: int, lengths: tuple[int, int],
                   noise_levels) -> dict:
    """``n`` trajectories with lengths uniform in ``lengths`` (inclusive): list of
    ``(T_i, 2)`` positions (AnDi units), ``alpha``, ``model`` (index in :data:`MODELS`)."""
    T = rng.integers(lengths[0], lengths[1] + 1, size=n)
    pos, alpha, model = [], np.empty(n), np.empty(n, int)
    for i, t in enumerate(T):
        b = andi1_batch(rng, 1, int(t), MODELS, noise_levels)
        pos.append(b["positions"][0])
        alpha[i], model[i] = b["alpha"][0], b["model"][0]
    return {"positions": pos, "alpha": alpha, "model": model, "length": T}


def _table(positions: list[np.ndarray]) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({C.TRACK_ID: i, C.FRAME: np.arange(len(p)),
                                    C.X_NM: p[:, 0], C.Y_NM: p[:, 1]})
                      for i, p in enumerate(positions)], ignore_index=True)


def ci(values) -> tuple[float, float]:
    """Mean and half-width of the 95 % t confidence interval over seeds."""
    v = np.asarray(values, float)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1)
                                   / np.sqrt(len(v)))


def run(cfg, out_dir) -> pd.DataFrame:
    from smlmnet.models.registry import load

    est = load(cfg.model)
    msd = LogLogMSD(max_lag=cfg.max_lag)
    per_seed, pooled = [], []
    for seed in cfg.seeds:
        rng = np.random.default_rng(int(seed))
        sets = {"mix": andi1_test_set(rng, cfg.n_trajectories,
                                      (cfg.min_length, cfg.max_length), cfg.noise_levels),
                "short": andi1_test_set(rng, cfg.n_short, tuple(cfg.short_lengths),
                                        cfg.noise_levels)}
        row = {"seed": int(seed)}
        for name, s in sets.items():
            table = _table(s["positions"])
            learned = est.predict(table, frame_time_s=1.0)
            a_net = learned[C.ALPHA].to_numpy()
            pred_model = np.array([est.classes.index(m) for m in learned["model"]])
            a_msd = msd.estimate(table, 1.0)[C.ALPHA].to_numpy()
            row[f"{name} alpha MAE learned"] = mae_alpha(s["alpha"], a_net)
            row[f"{name} alpha MAE msd"] = mae_alpha(s["alpha"], a_msd)
            row[f"{name} model F1 learned"] = float(np.mean(pred_model == s["model"]))
            if name == "mix":
                le20 = s["length"] <= 20
                row["mix n ≤ 20 points"] = int(le20.sum())
                pooled.append(pd.DataFrame({
                    "seed": int(seed), "length": s["length"], "model": s["model"],
                    "alpha": s["alpha"], "err_learned": np.abs(a_net - s["alpha"]),
                    "err_msd": np.abs(np.nan_to_num(a_msd, nan=np.inf) - s["alpha"]).clip(
                        max=2.0), "hit": pred_model == s["model"]}))
        per_seed.append(row)
        logger.info("seed %s: %s", seed, {k: round(v, 4) for k, v in row.items()})
    seeds = pd.DataFrame(per_seed)
    rows = []
    for label, key, learned_col, msd_col in [
            ("task 1: α MAE", f"lengths {cfg.min_length}–{cfg.max_length}",
             "mix alpha MAE learned", "mix alpha MAE msd"),
            ("task 1: α MAE", f"lengths {cfg.short_lengths[0]}–{cfg.short_lengths[1]} "
             "(≤ 20 points)", "short alpha MAE learned", "short alpha MAE msd"),
            ("task 2: model micro-F1", f"lengths {cfg.min_length}–{cfg.max_length}",
             "mix model F1 learned", None),
            ("task 2: model micro-F1", f"lengths {cfg.short_lengths[0]}–"
             f"{cfg.short_lengths[1]} (≤ 20 points)", "short model F1 learned", None)]:
        m, h = ci(seeds[learned_col])
        r = {"task": label, "trajectories": key, "learned": m, "learned ±95%": h}
        if msd_col:
            m2, h2 = ci(seeds[msd_col])
            r.update({"MSD log-log": m2, "MSD ±95%": h2})
        else:
            r.update({"MSD log-log": float("nan"), "MSD ±95%": float("nan")})
        rows.append(r)
    table = pd.DataFrame(rows)
    pool = pd.concat(pooled, ignore_index=True)
    by_model = pool.groupby("model").agg(n=("alpha", "size"), alpha_MAE_learned=(
        "err_learned", "mean"), alpha_MAE_msd=("err_msd", "mean"), F1_recall=("hit", "mean"))
    by_model.index = [MODELS[i] for i in by_model.index]
    bins = pd.cut(pool["length"], [9, 20, 50, 100, 200, 500, 1000])
    by_length = pool.groupby(bins, observed=True).agg(
        n=("alpha", "size"), alpha_MAE_learned=("err_learned", "mean"),
        alpha_MAE_msd=("err_msd", "mean"), model_F1_learned=("hit", "mean"))
    by_length.index = [str(i) for i in by_length.index]
    info = getattr(est, "info", {}) or {}
    notes = [f"AnDi 1 tasks 1–2 in 2D on smlmnet's AnDi 1 generator (smlmnet.simulate.andi1): "
             f"per seed {cfg.n_trajectories} trajectories with lengths uniform in "
             f"{cfg.min_length}–{cfg.max_length} and {cfg.n_short} of "
             f"{cfg.short_lengths[0]}–{cfg.short_lengths[1]} points; models ATTM/CTRW/fBM/LW/"
             f"SBM uniform, α on AnDi's grid, noise σ ∈ {list(cfg.noise_levels)} × step std. "
             f"Seeds {list(cfg.seeds)}; ± = 95 % t-interval over seeds.",
             f"Learned: `{cfg.model}` (weights sha256 "
             f"{str(info.get('weights_sha256', ''))[:12]}). MSD log-log: OLS of log TAMSD vs "
             f"log lag, lags 1..min({cfg.max_lag}, T/2); a failed fit counts as error 2. "
             "Task 2 has no classical baseline here (chance level 0.2).",
             "andi-datasets' official generator was not used in this run (not installed in "
             "this environment); the generators follow the AnDi 1 paper's definitions."]
    write_report(out_dir, "andi1", "AnDi 1 tasks 1–2 (2D): learned vs MSD log-log", table,
                 notes, extra_tables={"per seed": seeds, "per model (pooled over seeds)":
                                      by_model.reset_index(names="model"),
                                      "per length (pooled over seeds)":
                                      by_length.reset_index(names="length")}, config=cfg)
    return table
