"""AnDi 2 single-trajectory tasks (2D): learned trajectory networks beside classical baselines
on the same tracks, over several seeds, on smlmnet's AnDi 2 generator and on andi-datasets'
official one; and a distribution check of the two generators on the same parameters.

Data per seed: for each of the five models, ``experiments`` experiments of 50 particles and
``T`` frames with localization noise σ = 0.12 px (the challenge's settings,
:mod:`smlmnet.simulate.andi2`), and the official files ``seed<k>.npz`` written by
``benchmarks/external/make_andi2_trajectories.py`` (same settings, andi-datasets' generator).
Short tracks: from every track a random window of ``short_lengths`` points (labels cut alike).

Convention: the label at frame t describes displacement t−1 → t; frame 0's label is not
observed, so changepoints are frames c ≥ 2 where the label changes and each segment's labels are
read from its frames ≥ 1 (truth and predictions alike). A network changepoint at step j is
frame j + 1.

Methods: the learned models (per-step α, ln K, state and changepoint probability; segments by
peak picking and medians, :meth:`~smlmnet.diffusion.trajnet.infer.TrajectoryEstimator.segments`)
and a classical pipeline a practitioner would run: changepoints by binary segmentation of the
step-size likelihood ratio (:func:`smlmnet.diffusion.changepoint.binary_segmentation`), per
segment α from the MSD log–log fit and K from the CVE estimator
(:mod:`smlmnet.diffusion.estimators`), state by thresholds (immobile if K < k_immobile,
confined if α < α_confined, directed if α ≥ 1.9, else free). The classical thresholds (LR,
k_immobile, α_confined) are tuned on smlmnet's generator at ``tuning_seed``, never on the
reporting seeds. Scores: the project's AnDi 2 scorer
(:func:`smlmnet.metrics.diffusion.andi2_single_trajectory_scores`). CI: mean ± t(0.975, n−1)·sd/√n
over the seeds.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from smlmnet.data import contracts as C
from smlmnet.diffusion.changepoint import binary_segmentation
from smlmnet.diffusion.estimators import CVE, D_COL, LogLogMSD
from smlmnet.evaluation.andi1 import ci
from smlmnet.evaluation.report import write_report
from smlmnet.metrics.diffusion import andi2_single_trajectory_scores
from smlmnet.simulate import andi2

logger = logging.getLogger(__name__)

METRICS = ("alpha_mae", "K_msle", "state_f1", "cp_rmse", "cp_jaccard")
METRIC_NAMES = {"alpha_mae": "α MAE", "K_msle": "K MSLE", "state_f1": "state F1",
                "cp_rmse": "changepoint RMSE (frames)", "cp_jaccard": "changepoint JSC"}
LOWER_IS_BETTER = {"alpha_mae": True, "K_msle": True, "state_f1": False, "cp_rmse": True,
                   "cp_jaccard": False}
CP_THRESHOLDS = (10.0, 20.0, 30.0, 40.0, 60.0, 80.0)
K_IMMOBILE = (0.005, 0.01, 0.02, 0.05)          # px²/frame
ALPHA_CONFINED = (0.0, 0.3, 0.5, 0.7)           # 0: never confined
STATE_IMMOBILE = (0.5, 0.3, 0.4, 0.6, 0.7, 0.8)  # learned: mean p_immobile of a segment
STATE_CONFINED = (1.01, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1)  # mean p_confined; 1.01: never


def simulated_set(rng: np.random.Generator, experiments: int, T: int,
                  sigma: float = andi2.SIGMA_NOISE, n: int = andi2.N_EXPERIMENT) -> dict:
    """Per model, ``experiments`` experiments of ``n`` particles: noisy ``positions``
    ``(N, T, 2)`` px and per-frame ``alpha``, ``K``, ``state`` ``(N, T)``."""
    out = {}
    for m in andi2.MODELS:
        parts = [andi2.andi2_batch(rng, n, T, [m], (sigma, sigma)) for _ in range(experiments)]
        out[m] = {k: np.concatenate([p[k] for p in parts]) for k in ("positions", "alpha", "K",
                                                                     "state")}
    return out


def official_set(path: Path) -> dict:
    """The arrays of ``benchmarks/external/make_andi2_trajectories.py`` in the layout of
    :func:`simulated_set`."""
    d = np.load(path)
    return {m: {"positions": d[f"m{k}_xy"], "alpha": d[f"m{k}_alpha"], "K": d[f"m{k}_D"],
                "state": d[f"m{k}_state"].astype(int)}
            for k, m in enumerate(andi2.MODELS, start=1)}


def short_windows(rng: np.random.Generator, data: dict, lengths: tuple[int, int]) -> dict:
    """One random window of U{lengths} points from every track (labels cut alike); returns a
    flat dict of lists (tracks of unequal length)."""
    out = {"positions": [], "alpha": [], "K": [], "state": [], "model": []}
    for m, d in data.items():
        T = d["positions"].shape[1]
        for i in range(len(d["positions"])):
            n = int(rng.integers(lengths[0], lengths[1] + 1))
            a = int(rng.integers(0, T - n + 1))
            for k in ("positions", "alpha", "K", "state"):
                out[k].append(d[k][i, a:a + n])
            out["model"].append(m)
    return out


def flatten(data: dict) -> dict:
    out = {"positions": [], "alpha": [], "K": [], "state": [], "model": []}
    for m, d in data.items():
        for k in ("positions", "alpha", "K", "state"):
            out[k] += list(d[k])
        out["model"] += [m] * len(d["positions"])
    return out


def truth_table(tracks: dict) -> pd.DataFrame:
    """AnDi 2 label lists per track (frames ≥ 1, see the module docstring)."""
    rows = []
    for i, (a, k, s) in enumerate(zip(tracks["alpha"], tracks["K"], tracks["state"])):
        lab = andi2.segment_labels(a[None], k[None], s[None], start=1)[0]
        rows.append({"traj_idx": i, **lab})
    return pd.DataFrame(rows)


def _pred_row(i: int, T: int, cps_steps: list[int], segs: list[dict]) -> dict:
    return {"traj_idx": i, "alphas": [s["alpha"] for s in segs], "Ds": [s["K"] for s in segs],
            "states": [s["state"] for s in segs],
            "changepoints": [c + 1 for c in cps_steps] + [T]}


def learned_predictions(est, tracks: dict, res: dict | None = None) -> pd.DataFrame:
    """Segments of every track from a trajectory network with per-step outputs (``res``: the
    network's :meth:`predict_arrays` result on these tracks, computed when not given)."""
    if res is None:
        res = est.predict_arrays([np.diff(p, axis=0) for p in tracks["positions"]])
    rows = []
    for i, p in enumerate(tracks["positions"]):
        cps, segs = est.segments(res, i)
        for s in segs:
            s["state"] = s.get("state", andi2.STATES.index("free"))
        rows.append(_pred_row(i, len(p), cps, segs))
    return pd.DataFrame(rows)


def classical_segment(xy: np.ndarray, k_immobile: float, alpha_confined: float,
                      max_lag: int = 10) -> dict:
    """α (MSD log–log), K (CVE, px²/frame) and a thresholded state of one segment's positions
    ``(n, 2)`` px; α 1 / K from the mean squared step when a fit is impossible."""
    frames = np.arange(len(xy))
    a = LogLogMSD(max_lag).estimate_track(frames, xy, 1.0, 0.0)[C.ALPHA] if len(xy) >= 3 \
        else np.nan
    k = CVE().estimate_track(frames, xy, 1.0, 0.0)[D_COL] if len(xy) >= 3 else np.nan
    if not np.isfinite(a):
        a = 1.0
    if not np.isfinite(k):
        k = float(np.mean(np.sum(np.diff(xy, axis=0) ** 2, 1)) / 4) if len(xy) > 1 else 0.0
    a, k = float(np.clip(a, 0.0, 1.999)), max(float(k), 0.0)
    if k < k_immobile:
        return {"alpha": 0.0, "K": 0.0, "state": andi2.STATES.index("immobile")}
    state = ("directed" if a >= andi2.ALPHA_DIRECTED else
             "confined" if a < alpha_confined else "free")
    return {"alpha": a, "K": k, "state": andi2.STATES.index(state)}


def classical_predictions(tracks: dict, cp_threshold: float, k_immobile: float,
                          alpha_confined: float, cps: list | None = None) -> pd.DataFrame:
    rows = []
    for i, p in enumerate(tracks["positions"]):
        c = cps[i] if cps is not None else binary_segmentation(np.diff(p, axis=0),
                                                              cp_threshold)
        bounds = [0] + list(c) + [len(p) - 1]
        segs = [classical_segment(p[a:b + 1], k_immobile, alpha_confined)
                for a, b in zip(bounds[:-1], bounds[1:])]
        rows.append(_pred_row(i, len(p), list(c), segs))
    return pd.DataFrame(rows)


def tune_classical(tracks: dict, truth: pd.DataFrame) -> dict:
    """LR threshold (best changepoint JSC), then k_immobile and α_confined (best state F1)."""
    disp = [np.diff(p, axis=0) for p in tracks["positions"]]
    best = None
    for th in CP_THRESHOLDS:
        cps = [binary_segmentation(d, th) for d in disp]
        pred = classical_predictions(tracks, th, K_IMMOBILE[0], 0.0, cps)
        jsc = andi2_single_trajectory_scores(truth, pred)["cp_jaccard"]
        if best is None or jsc > best[0]:
            best = (jsc, th, cps)
    _, th, cps = best
    scan = {}
    for k in K_IMMOBILE:
        for a in ALPHA_CONFINED:
            pred = classical_predictions(tracks, th, k, a, cps)
            scan[(k, a)] = andi2_single_trajectory_scores(truth, pred)["state_f1"]
    k, a = max(scan, key=scan.get)
    return {"cp_threshold": th, "k_immobile": k, "alpha_confined": a}


def tune_learned_thresholds(est, tracks: dict, truth: pd.DataFrame) -> dict:
    """Thresholds of a learned model on the tuning tracks (the same tuning data as the classical
    thresholds), in the classical order: the changepoint threshold with the best JSC, then the
    segment-state thresholds (:func:`smlmnet.diffusion.trajnet.infer.segment_state`) with the
    best state F1. Sets ``est.cp_threshold`` and ``est.state_thresholds`` and returns
    ``{"changepoint": .., "state": .., "JSC scan": .., "state F1 scan": ..}``. Ties keep the
    earlier grid point; the state grid starts at the argmax-like rule (immobile ≥ 0.5, never
    confined)."""
    from smlmnet.diffusion.trajnet.export import CP_THRESHOLDS as LEARNED_THRESHOLDS

    res = est.predict_arrays([np.diff(p, axis=0) for p in tracks["positions"]])
    jsc = {}
    for th in LEARNED_THRESHOLDS:
        est.cp_threshold = th
        jsc[th] = andi2_single_trajectory_scores(truth, learned_predictions(est, tracks, res))[
            "cp_jaccard"]
    est.cp_threshold = max(jsc, key=jsc.get)
    out = {"changepoint": est.cp_threshold, "JSC scan": jsc}
    if res.get("step_state") is None:      # no state head: nothing more to tune
        return out
    f1 = {}
    for t_conf in STATE_CONFINED:
        for t_imm in STATE_IMMOBILE:
            est.state_thresholds = {"immobile": t_imm, "confined": t_conf}
            f1[(t_imm, t_conf)] = andi2_single_trajectory_scores(
                truth, learned_predictions(est, tracks, res))["state_f1"]
    t_imm, t_conf = max(f1, key=f1.get)
    est.state_thresholds = {"immobile": t_imm, "confined": t_conf}
    out.update({"state": dict(est.state_thresholds),
                "state F1 scan": {f"{a}/{b}": round(v, 4) for (a, b), v in f1.items()}})
    return out


def _loglog_alpha(positions: np.ndarray, max_lag: int = 10) -> np.ndarray:
    """Per-track MSD log–log α of equal-length tracks ``(N, T, 2)`` (time-averaged MSD)."""
    lags = np.arange(1, max_lag + 1)
    msd = np.stack([np.mean(np.sum((positions[:, lag:] - positions[:, :-lag]) ** 2, -1), 1)
                    for lag in lags], 1)
    x = np.log(lags) - np.log(lags).mean()
    y = np.log(np.maximum(msd, 1e-300))
    return (y - y.mean(1, keepdims=True)) @ x / (x @ x)


def generator_comparison(official_dir: Path, seeds, rng: np.random.Generator) -> pd.DataFrame:
    """Official vs smlmnet trajectories simulated with the same experiment parameters (read
    from each ``seed<k>.json``): per model, step-length and per-track MSD-exponent
    distributions (mean, quantiles, two-sample KS statistic), share of immobile/confined
    frames and changepoints per track."""
    rows = []
    per_model = {m: {"off": [], "sml": []} for m in andi2.MODELS}
    for seed in seeds:
        meta = json.loads((official_dir / f"seed{seed}.json").read_text())
        off = official_set(official_dir / f"seed{seed}.npz")
        for m in andi2.MODELS:
            per_model[m]["off"].append(off[m])
            sims = []
            for dic in meta["experiments"][m]:
                p = params_from_andi_datasets(m, dic)
                s = andi2.simulate(rng, m, int(dic["N"]), int(dic["T"]), p, L=float(dic["L"]))
                s["positions"] = andi2.add_noise(rng, s["positions"], meta["sigma_noise"])
                sims.append(s)
            per_model[m]["sml"].append({k: np.concatenate([s[k] for s in sims])
                                        for k in ("positions", "alpha", "K", "state")})
    for m, d in per_model.items():
        stat = {}
        for src in ("off", "sml"):
            x = {k: np.concatenate([v[k] for v in d[src]]) for k in ("positions", "K", "state",
                                                                     "alpha")}
            steps = np.linalg.norm(np.diff(x["positions"], axis=1), axis=-1).ravel()
            a = _loglog_alpha(x["positions"])
            cps = andi2.changepoints(x["alpha"][:, 1:], x["K"][:, 1:], x["state"][:, 1:])
            stat[src] = {"steps": steps, "alpha": a,
                         "immobile": float(np.mean(x["state"] == 0)),
                         "confined": float(np.mean(x["state"] == 1)),
                         "cps": float(np.mean([len(c) for c in cps])), "n": len(a)}
        for q, key in (("step length (px)", "steps"), ("MSD log-log α per track", "alpha")):
            o, s = stat["off"][key], stat["sml"][key]
            rows.append({"model": m, "quantity": q, "official mean": o.mean(),
                         "smlmnet mean": s.mean(), "official q10/q50/q90":
                         "/".join(f"{v:.3g}" for v in np.quantile(o, [.1, .5, .9])),
                         "smlmnet q10/q50/q90":
                         "/".join(f"{v:.3g}" for v in np.quantile(s, [.1, .5, .9])),
                         "KS statistic": stats.ks_2samp(o, s).statistic,
                         "tracks (official/smlmnet)": f"{stat['off']['n']}/{stat['sml']['n']}"})
        for q in ("immobile", "confined", "cps"):
            rows.append({"model": m, "quantity": {"immobile": "immobile frame share",
                                                  "confined": "confined frame share",
                                                  "cps": "changepoints per track"}[q],
                         "official mean": stat["off"][q], "smlmnet mean": stat["sml"][q],
                         "official q10/q50/q90": "", "smlmnet q10/q50/q90": "",
                         "KS statistic": np.nan,
                         "tracks (official/smlmnet)": f"{stat['off']['n']}/{stat['sml']['n']}"})
    return pd.DataFrame(rows)


def params_from_andi_datasets(model: str, dic: dict) -> dict:
    """smlmnet's experiment parameters from an andi-datasets ``_get_dic_andi2`` dictionary."""
    p = {"alphas": np.asarray(dic["alphas"], float).reshape(-1, 2),
         "Ks": np.asarray(dic["Ds"], float).reshape(-1, 2)}
    if model == "multi_state":
        p["M"] = np.asarray(dic["M"], float)
    if model in ("immobile_traps", "dimerization"):
        p.update(r=float(dic["r"]), Pb=float(dic["Pb"]), Pu=float(dic["Pu"]))
    if model == "immobile_traps":
        p["n_traps"] = int(dic["Nt"])
    if model == "confinement":
        p.update(r=float(dic["r"]), n_compartments=int(dic["Nc"]), trans=float(dic["trans"]))
    return p


def tune_thresholds(cfg, ests: dict) -> tuple[dict, dict]:
    """Classical thresholds (``cfg.classical`` when given, else tuned on smlmnet's generator at
    ``cfg.tuning_seed``: ``cfg.tuning_experiments`` experiments of ``cfg.particles`` particles
    and ``cfg.T`` frames) and, with ``cfg.tune_learned_threshold``, each learned model's
    changepoint and state thresholds on the same tracks (:func:`tune_learned_thresholds`, set
    on the estimators). Returns (classical thresholds, {model: {shipped, tuned, scans}})."""
    learned_thresholds = {}
    if cfg.get("classical"):
        return {k: float(v) for k, v in cfg.classical.items()}, learned_thresholds
    n = int(cfg.get("particles", andi2.N_EXPERIMENT))
    tune_rng = np.random.default_rng(int(cfg.tuning_seed))
    tune_tracks = flatten(simulated_set(tune_rng, int(cfg.tuning_experiments), int(cfg.T), n=n))
    tune_truth = truth_table(tune_tracks)
    tuned = tune_classical(tune_tracks, tune_truth)
    logger.info("classical thresholds tuned on seed %s: %s", cfg.tuning_seed, tuned)
    if cfg.get("tune_learned_threshold", True):
        for name, e in ests.items():
            shipped = {"changepoint": e.cp_threshold, "state": e.state_thresholds}
            learned_thresholds[name] = {"shipped": shipped,
                                        **tune_learned_thresholds(e, tune_tracks, tune_truth)}
    return tuned, learned_thresholds


def run(cfg, out_dir) -> pd.DataFrame:
    from smlmnet.models.registry import load

    ests = {m: load(m) for m in cfg.models}
    n = int(cfg.get("particles", andi2.N_EXPERIMENT))
    tuned, learned_thresholds = tune_thresholds(cfg, ests)
    official_dir = Path(str(cfg.official_dir)) if cfg.get("official_dir") else None
    per_seed = []
    for seed in cfg.seeds:
        rng = np.random.default_rng(int(seed))
        sources = {"smlmnet": simulated_set(rng, int(cfg.experiments), int(cfg.T), n=n)}
        if official_dir is not None and (official_dir / f"seed{seed}.npz").is_file():
            sources["official"] = official_set(official_dir / f"seed{seed}.npz")
        elif official_dir is not None:
            logger.warning("%s/seed%s.npz missing: official tracks skipped", official_dir, seed)
        for src, data in sources.items():
            for subset, tracks in ((f"T = {cfg.T}", flatten(data)),
                                   ("≤ 20 points", short_windows(rng, data,
                                                                 tuple(cfg.short_lengths)))):
                truth = truth_table(tracks)
                preds = {name: learned_predictions(e, tracks) for name, e in ests.items()}
                preds["classical"] = classical_predictions(tracks, **tuned)
                for method, pred in preds.items():
                    sc = andi2_single_trajectory_scores(truth, pred)
                    per_seed.append({"seed": int(seed), "data": src, "tracks": subset,
                                     "n": len(truth), "method": method, **sc})
                logger.info("seed %s %s %s done", seed, src, subset)
    seeds = pd.DataFrame(per_seed)
    rows = []
    for (src, subset, method), g in seeds.groupby(["data", "tracks", "method"], sort=False):
        row = {"data": src, "tracks": subset, "method": method, "seeds": len(g),
               "tracks/seed": int(g["n"].iloc[0])}
        for m in METRICS:
            mean, half = ci(g[m])
            row[METRIC_NAMES[m]] = f"{mean:.4g} ± {half:.2g}"
        rows.append(row)
    table = pd.DataFrame(rows)
    verdict = []
    for (src, subset), g in seeds.groupby(["data", "tracks"], sort=False):
        for name in ests:
            wins = []
            for m in METRICS:
                a = g[g.method == name].set_index("seed")[m]
                b = g[g.method == "classical"].set_index("seed")[m]
                better = (a < b) if LOWER_IS_BETTER[m] else (a > b)
                gain = (b - a) if LOWER_IS_BETTER[m] else (a - b)   # > 0: learned better
                g_mean, g_half = ci(gain)
                wins.append({"data": src, "tracks": subset, "learned": name,
                             "metric": METRIC_NAMES[m], "learned mean": a.mean(),
                             "classical mean": b.mean(),
                             "learned gain (paired, 95 % CI)": f"{g_mean:.3g} ± {g_half:.2g}",
                             "gain CI excludes 0": bool(g_mean - g_half > 0),
                             "learned better on seeds": f"{int(better.sum())}/{len(a)}"})
            verdict += wins
    extra = {"learned vs classical per metric": pd.DataFrame(verdict),
             "per seed": seeds}
    if official_dir is not None and cfg.get("compare_generators", True):
        seeds_ok = [s for s in cfg.seeds if (official_dir / f"seed{s}.json").is_file()]
        if seeds_ok:
            extra["generator check: official vs smlmnet on the same parameters"] = (
                generator_comparison(official_dir, seeds_ok,
                                     np.random.default_rng(int(cfg.tuning_seed) + 1)))
    shas = {m: str((getattr(e, "info", {}) or {}).get("weights_sha256", ""))[:12]
            for m, e in ests.items()}
    notes = [
        f"AnDi 2 single-trajectory tasks in 2D. Per seed and data source: 5 models × "
        f"{cfg.experiments} experiments × {n} particles of T = {cfg.T} frames (smlmnet's "
        "generator, smlmnet.simulate.andi2, challenge parameters, σ = 0.12 px), and the "
        "official andi-datasets tracks of the same seed number (benchmarks/external/"
        "make_andi2_trajectories.py: `_get_dic_andi2` parameters, `models_phenom`, σ = 0.12 px, "
        "no field-of-view cut). '≤ 20 points': one window of "
        f"{cfg.short_lengths[0]}–{cfg.short_lengths[1]} points from every track. "
        f"Seeds {list(cfg.seeds)}; ± = 95 % t-interval over seeds.",
        f"Learned models (weights sha256): {shas}. Classical: binary-segmentation likelihood "
        "ratio changepoints, MSD log–log α (lags ≤ 10, ≤ n/2), CVE K, states by thresholds; "
        + ("thresholds given in the config" if cfg.get("classical") else
         f"thresholds tuned on smlmnet's generator, seed {cfg.tuning_seed}") + f": {tuned}.",
        "Learned thresholds: " + (
            "changepoint (best JSC) and segment state (best state F1: immobile if the mean "
            "p_immobile ≥ t_i, confined if the mean p_confined ≥ t_c, else free/directed) "
            "re-tuned on the same tuning tracks as the classical ones: "
            f"{learned_thresholds}" if learned_thresholds else "the shipped ones") + ".",
        "Scores: smlmnet.metrics.diffusion.andi2_single_trajectory_scores (AnDi 2 rules: "
        "Hungarian changepoint pairing with a 10-frame gate, segments paired by Jaccard, α MAE, "
        "K MSLE = mean (ln(1+K) − ln(1+K̂))² with K in px²/frame^α, micro state F1).",
        "Convention: changepoint frames c ≥ 2 (frame 0's label is unobserved); predictions at "
        "frame (network step) + 1.",
        "Learned gain: classical − learned for the lower-is-better metrics (α MAE, K MSLE, "
        "changepoint RMSE), learned − classical otherwise; per seed on the same tracks, then "
        "mean ± 95 % t-interval over the seeds (> 0: the learned model is better)."]
    write_report(out_dir, "andi2_trajectory", "AnDi 2 single trajectories (2D): learned vs "
                 "classical", table, notes, extra_tables=extra, config=cfg)
    return table
