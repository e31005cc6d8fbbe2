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
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from smlmnet.data import contracts as C
from smlmnet.diffusion.changepoint import single_changepoint
from smlmnet.diffusion.estimators import LogLogMSD
from smlmnet.evaluation.report import write_report
from smlmnet.metrics.diffusion import changepoint_scores, mae_alpha
from smlmnet.simulate.andi1 import MODELS, andi1_batch, two_segment_batch

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
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    if len(v) < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1)
                                   / np.sqrt(len(v)))


def _changepoint_set(rng, n: int, T: int, noise_levels) -> tuple[list, list]:
    """Half one-changepoint tracks (:func:`two_segment_batch`), half without: positions and
    true changepoint lists."""
    half = n // 2
    t = two_segment_batch(rng, half, T, MODELS, noise_levels)
    s = andi1_batch(rng, n - half, T, MODELS, noise_levels)
    pos = list(t["positions"]) + list(s["positions"])
    true = [[int(c)] for c in t["cp"]] + [[] for _ in range(n - half)]
    return pos, true


def _classical_cps(positions, threshold):
    return [single_changepoint(np.diff(p, axis=0), threshold=threshold) for p in positions]


def run(cfg, out_dir) -> pd.DataFrame:
    from smlmnet.models.registry import load

    models = list(cfg.models)
    ests = {m: load(m) for m in models}
    msd = LogLogMSD(max_lag=cfg.max_lag)
    cp_name = cfg.get("changepoint_model")
    cp_est = None
    if cp_name:
        cp_est = ests.get(cp_name) or load(cp_name)
        # the classical threshold is tuned on its own seed, never on the reporting seeds
        pos, true = _changepoint_set(np.random.default_rng(int(cfg.tuning_seed)), cfg.cp_n,
                                     cfg.cp_length, cfg.noise_levels)
        scan = {th: changepoint_scores(true, _classical_cps(pos, th))[1]
                for th in CLASSICAL_CP_THRESHOLDS}
        cp_threshold = max(scan, key=scan.get)
        logger.info("classical changepoint threshold %s (JSC scan %s)", cp_threshold, scan)
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
            a_msd = msd.estimate(table, 1.0)[C.ALPHA].to_numpy()
            row[f"{name} alpha MAE (MSD log-log)"] = mae_alpha(s["alpha"], a_msd)
            for mname, est in ests.items():
                learned = est.predict(table, frame_time_s=1.0)
                a_net = learned[C.ALPHA].to_numpy()
                pred_model = np.array([est.classes.index(m) for m in learned["model"]])
                row[f"{name} alpha MAE ({mname})"] = mae_alpha(s["alpha"], a_net)
                row[f"{name} model F1 ({mname})"] = float(np.mean(pred_model == s["model"]))
                if name == "mix":
                    pooled.append(pd.DataFrame({
                        "method": mname, "seed": int(seed), "length": s["length"],
                        "model": s["model"], "alpha": s["alpha"],
                        "err_learned": np.abs(a_net - s["alpha"]),
                        "err_msd": np.abs(np.nan_to_num(a_msd, nan=np.inf) - s["alpha"]).clip(
                            max=2.0), "hit": pred_model == s["model"]}))
            if name == "mix":
                row["mix n ≤ 20 points"] = int((s["length"] <= 20).sum())
        official = Path(str(cfg.get("official_dir") or "")) / f"seed{seed}.npz"
        if cfg.get("official_dir") and official.is_file():
            data = np.load(official)
            for k in (1, 2):
                ends = np.cumsum(data[f"t{k}_lengths"])
                trajs = np.split(data[f"t{k}_xy"], ends[:-1])
                label = data[f"t{k}_label"]
                table = _table(trajs)
                if k == 1:
                    a_msd = msd.estimate(table, 1.0)[C.ALPHA].to_numpy()
                    le20 = data["t1_lengths"] <= 20
                    row["official alpha MAE (MSD log-log)"] = mae_alpha(label, a_msd)
                    row["official ≤20 alpha MAE (MSD log-log)"] = (
                        mae_alpha(label[le20], a_msd[le20]) if le20.any() else np.nan)
                    row["official n ≤ 20 points"] = int(le20.sum())
                for mname, est in ests.items():
                    res = est.predict(table, frame_time_s=1.0)
                    if k == 1:
                        a = res[C.ALPHA].to_numpy()
                        row[f"official alpha MAE ({mname})"] = mae_alpha(label, a)
                        row[f"official ≤20 alpha MAE ({mname})"] = (
                            mae_alpha(label[le20], a[le20]) if le20.any() else np.nan)
                    else:
                        pred = np.array([est.classes.index(m) for m in res["model"]])
                        row[f"official model F1 ({mname})"] = float(np.mean(pred == label))
        elif cfg.get("official_dir"):
            logger.warning("%s missing: official trajectories skipped for seed %s", official,
                           seed)
        if cp_est is not None:
            pos, true = _changepoint_set(rng, cfg.cp_n, cfg.cp_length, cfg.noise_levels)
            res = cp_est.predict(_table(pos), frame_time_s=1.0)
            learned_cps = [[int(c) for c in str(v).split(";")] if isinstance(v, str) and v
                           else [] for v in res["changepoints"]]
            for mname, pred in ((cp_name, learned_cps),
                                ("likelihood ratio", _classical_cps(pos, cp_threshold))):
                rmse, jsc = changepoint_scores(true, pred)
                row[f"cp RMSE ({mname})"], row[f"cp JSC ({mname})"] = rmse, jsc
        per_seed.append(row)
        logger.info("seed %s: %s", seed, {k: round(v, 4) for k, v in row.items()})
    seeds = pd.DataFrame(per_seed)
    mix = f"lengths {cfg.min_length}–{cfg.max_length}"
    short = f"lengths {cfg.short_lengths[0]}–{cfg.short_lengths[1]} (≤ 20 points)"
    cp_set = (f"{cfg.cp_length} points, half with one changepoint (model, α and D change), "
              "half without")
    spec = [("task 1: α MAE", mix, "mix alpha MAE"), ("task 1: α MAE", short,
                                                      "short alpha MAE"),
            ("task 2: model micro-F1", mix, "mix model F1"),
            ("task 2: model micro-F1", short, "short model F1"),
            ("task 1: α MAE", "andi-datasets official generator, lengths 10–999",
             "official alpha MAE"),
            ("task 1: α MAE", "andi-datasets official generator, ≤ 20 points",
             "official ≤20 alpha MAE"),
            ("task 2: model micro-F1", "andi-datasets official generator, lengths 10–999",
             "official model F1"),
            ("changepoints: RMSE (frames, true positives)", cp_set, "cp RMSE"),
            ("changepoints: JSC", cp_set, "cp JSC")]
    rows = []
    for task, data, prefix in spec:
        for col in [c for c in seeds.columns if c.startswith(prefix + " (")]:
            m, h = ci(seeds[col])
            rows.append({"task": task, "trajectories": data, "method": col[len(prefix) + 2:-1],
                         "mean": m, "±95%": h,
                         "seeds": int(np.isfinite(seeds[col].to_numpy(float)).sum())})
    table = pd.DataFrame(rows)
    pool = pd.concat(pooled, ignore_index=True)
    extra = {"per seed": seeds}
    for mname in models:
        p = pool[pool["method"] == mname]
        by_model = p.groupby("model").agg(n=("alpha", "size"), alpha_MAE_learned=(
            "err_learned", "mean"), alpha_MAE_msd=("err_msd", "mean"), recall=("hit", "mean"))
        by_model.index = [MODELS[i] for i in by_model.index]
        bins = pd.cut(p["length"], [9, 20, 50, 100, 200, 500, 1000])
        by_length = p.groupby(bins, observed=True).agg(
            n=("alpha", "size"), alpha_MAE_learned=("err_learned", "mean"),
            alpha_MAE_msd=("err_msd", "mean"), model_F1_learned=("hit", "mean"))
        by_length.index = [str(i) for i in by_length.index]
        extra[f"{mname}: per model (pooled over seeds)"] = by_model.reset_index(names="model")
        extra[f"{mname}: per length (pooled over seeds)"] = by_length.reset_index(
            names="length")
    shas = {m: str((getattr(e, "info", {}) or {}).get("weights_sha256", ""))[:12]
            for m, e in ests.items()}
    notes = [f"AnDi 1 tasks 1–2 in 2D on smlmnet's AnDi 1 generator (smlmnet.simulate.andi1): "
             f"per seed {cfg.n_trajectories} trajectories with lengths uniform in "
             f"{cfg.min_length}–{cfg.max_length} and {cfg.n_short} of "
             f"{cfg.short_lengths[0]}–{cfg.short_lengths[1]} points; models ATTM/CTRW/fBM/LW/"
             f"SBM uniform, α on AnDi's grid, noise σ ∈ {list(cfg.noise_levels)} × step std. "
             f"Seeds {list(cfg.seeds)}; ± = 95 % t-interval over seeds.",
             f"Learned models (weights sha256): {shas}. MSD log-log: OLS of log TAMSD vs log "
             f"lag, lags 1..min({cfg.max_lag}, T/2); a failed fit counts as error 2. Task 2 has "
             "no classical baseline here (chance level 0.2)."]
    if cp_est is not None:
        notes.append(
            f"Changepoints: {cfg.cp_n} tracks per seed ({cp_set}); scored with the AnDi 2 "
            "changepoint scorer (Hungarian pairing, 10-frame gate; RMSE over true positives, "
            f"JSC). Learned: `{cp_name}` peak picking at its tuned threshold "
            f"{cp_est.cp_threshold}. Classical: single-changepoint likelihood ratio on squared "
            f"step lengths (smlmnet.diffusion.changepoint), threshold {cp_threshold} tuned for "
            f"JSC on seed {cfg.tuning_seed}.")
    if cfg.get("official_dir"):
        notes.append(
            f"Official rows: andi-datasets' `challenge_theory_dataset(N, tasks=[1, 2], "
            f"dimensions=[2], min_T=10, max_T=1000)` with numpy seeded by each reporting seed, "
            f"written by benchmarks/external/make_andi1_trajectories.py (its own environment) "
            f"into {cfg.official_dir}; task 1 and task 2 are separate sets of its trajectories. "
            "Tracks of ≤ 20 points are ~1 % of its length mix: few per seed (see per seed).")
    else:
        notes.append("andi-datasets' official generator was not used in this run "
                     "(benchmark.official_dir unset).")
    write_report(out_dir, "andi1", "AnDi 1 (2D): learned trajectory models vs classical "
                 "baselines", table, notes, extra_tables=extra, config=cfg)
    return table


CLASSICAL_CP_THRESHOLDS = (5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 60.0, 80.0)
