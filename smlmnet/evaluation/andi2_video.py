"""AnDi 2 video task (2D): the full chain movie → localize → link → per-track trajectory
analysis, learned chain beside classical chain, over several seeds.

Data per seed (smlmnet's part): for each AnDi 2 phenomenological model of
:mod:`smlmnet.simulate.andi2` (single state, multi-state, immobile traps, dimerization,
confinement), ``movies_per_model`` experiments of ``particles`` particles and ``n_frames``
frames in a reflecting box of ``box_factor`` × the field of view (the challenge: 50 particles,
1.8 × 128 px, 200 frames), the field of view centred in the box, rendered by smlmnet's
``andi2_video`` preset (PSF, photons, background, Poisson camera; stroboscopic, 100 nm px,
100 ms frames: :func:`render_positions`). Truth: the per-frame α, K (px²/frame^α) and state.
External part (``data_root``): movies rendered by andi-datasets' own video generator from its own
AnDi 2 trajectories (``benchmarks/external/make_andi2_videos.py``), same layout and scoring;
skipped when the folder is absent.

True tracks: every maximal run of consecutive frames a particle spends inside the field of
view, kept when it has ≥ ``min_track_points`` frames (a particle leaving and re-entering gives
two tracks; the label at a run's first frame describes no observed step and is ignored, as in
:mod:`.andi2`).

Chains (``chains``): localizer (``transfer.make_localizer`` specs: ``mle``, ``auto``,
``decode:<model>``; a classical fit uses the renderer's PSF σ), linker (``lap``, ``nn`` or
``transformer``, the shipped learned linker) and trajectory method (a shipped per-step
trajectory model such as ``trajnet_andi2``, or ``classical``: binary-segmentation changepoints,
MSD log–log α, CVE K, thresholded states, as ``benchmark=andi2_trajectory``), run as
``smlmnet analyze`` runs them (:func:`smlmnet.pipeline.analyze_movie`). Linked tracks with
≥ ``min_track_points`` points are analyzed; gaps (≤ ``max_gap`` frames) are filled by linear
interpolation before the trajectory method. Thresholds (classical LR/k_immobile/α_confined,
learned changepoint threshold) are those of ``benchmark=andi2_trajectory``
(:func:`.andi2.tune_thresholds`, tuned at ``tuning.seed`` on smlmnet's trajectories, never on
a reporting seed). Reference rows ``<method> on true tracks``: the trajectory method alone on
the true positions of the same tracks plus Gaussian noise ``oracle_noise_px`` (what the chain
would score with perfect localization and linking).

Matching rule (the challenge gave participants the identity of its "VIP" particles; here
particles are matched to linked tracks instead): localizations of linked tracks are paired to
true positions per frame (greedy closest first within ``match_tolerance_nm``,
:func:`smlmnet.metrics.localization.match_per_frame`); particles and linked tracks are paired
one to one (Hungarian) maximizing the number of paired frames, repeated on the particles'
unrecovered true tracks and the unused linked tracks (fragments); a true track is recovered by
its particle's linked track when they share ≥ ``min_overlap`` of its frames (a linked track
can thus recover several true tracks of one particle that leaves and re-enters the view). The
linked track's segments are mapped frame by frame onto the true track's frames (frames the
linked track does not cover take its nearest segment) and give the predicted changepoints, α,
K and states of that true track.

Scores: the project's AnDi 2 scorer
(:func:`smlmnet.metrics.diffusion.andi2_single_trajectory_scores`) over all true tracks of a
seed, an unrecovered true track counting as a missing prediction (the scorer's AnDi 2
penalty: α error 2, K error 1e5, state 0, changepoints unmatched), and over the recovered ones
only; recovered = paired true tracks / true tracks. CI: mean ± t(0.975, n−1)·sd/√n over seeds.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from scipy.optimize import linear_sum_assignment

from smlmnet.data import contracts as C
from smlmnet.data.contracts import Movie
from smlmnet.evaluation import andi2 as A2
from smlmnet.evaluation.andi1 import ci
from smlmnet.evaluation.report import write_report
from smlmnet.metrics.diffusion import andi2_single_trajectory_scores
from smlmnet.metrics.localization import match_per_frame
from smlmnet.simulate import andi2, load_config
from smlmnet.simulate.background import background_image
from smlmnet.simulate.camera import camera_adu
from smlmnet.simulate.movie import render_expected_photons
from smlmnet.simulate.photophysics import PhotophysicsStream

logger = logging.getLogger(__name__)

LABELS = ("alpha", "K", "state")
SCOPES = ("all true tracks", "recovered tracks")
ROW_COLUMNS = ["traj_idx", "alphas", "Ds", "states", "changepoints"]


# ---------------------------------------------------------------- data
def render_positions(sim_cfg, positions_px: np.ndarray, seed: int) -> Movie:
    """A movie of emitters at ``positions_px`` ``(N, T, 2)`` (x, y in px, centre of pixel 0 at
    0.5; anywhere, those outside the field of view are not seen) with the photometry, PSF,
    background and camera of a simulation config (e.g. the ``andi2_video`` preset);
    stroboscopic (one position per frame). Independent streams spawned from ``seed``."""
    rng_photo, rng_bg, rng_cam = (np.random.default_rng(s)
                                  for s in np.random.SeedSequence(seed).spawn(3))
    N, T, _ = positions_px.shape
    shape = tuple(sim_cfg.fov.shape_px)
    a = float(sim_cfg.fov.pixel_size_nm)
    _, _, photons = PhotophysicsStream(rng_photo, sim_cfg.photophysics, N, [0, T]).chunk(0)
    signal = render_expected_photons(positions_px[:, :, None, :], photons, shape,
                                     sim_cfg.psf.sigma / a)
    bg = background_image(rng_bg, sim_cfg.background, shape)
    frames, _ = camera_adu(rng_cam, signal + bg[None], sim_cfg.camera)
    camera = {k: getattr(sim_cfg.camera, k) for k in (
        "model", "qe", "baseline_adu", "e_per_adu", "read_noise_e", "em_gain", "spurious_charge")}
    return Movie(frames, a, float(sim_cfg.frame_time_s), 0.0, camera)


def truth_rows(positions_px, alpha, K, state, shape_hw, pixel_nm: float) -> pd.DataFrame:
    """Per-frame truth of the particles inside the field of view: ``frame``, ``emitter``,
    ``x [nm]``, ``y [nm]``, ``alpha``, ``K`` (px²/frame^α), ``state``."""
    H, W = shape_hw
    x, y = positions_px[..., 0], positions_px[..., 1]
    pi, fi = np.nonzero((x >= 0) & (x < W) & (y >= 0) & (y < H))
    return pd.DataFrame({C.FRAME: fi.astype(np.int64), "emitter": pi.astype(np.int64),
                         C.X_NM: x[pi, fi] * pixel_nm, C.Y_NM: y[pi, fi] * pixel_nm,
                         "alpha": alpha[pi, fi], "K": K[pi, fi], "state": state[pi, fi]})


def true_tracks(truth: pd.DataFrame, min_points: int) -> pd.DataFrame:
    """``truth`` rows with a ``track_id`` per run of consecutive in-view frames of an emitter,
    runs shorter than ``min_points`` dropped."""
    t = truth.sort_values(["emitter", C.FRAME], kind="stable").reset_index(drop=True)
    new = (t["emitter"].diff() != 0) | (t[C.FRAME].diff() != 1)
    t[C.TRACK_ID] = np.cumsum(new.to_numpy()) - 1
    size = t.groupby(C.TRACK_ID)[C.FRAME].transform("size")
    t = t[size >= min_points]
    t[C.TRACK_ID] = pd.factorize(t[C.TRACK_ID])[0]
    return t.reset_index(drop=True)


def simulated_cases(seed: int, cfg, sim_cfg) -> list[dict]:
    """The movies of one seed: ``{"model", "movie", "truth", "psf_sigma_nm"}`` per experiment
    (truth in the layout of :func:`truth_rows`)."""
    rng = np.random.default_rng(int(seed))
    H, W = sim_cfg.fov.shape_px
    T = int(sim_cfg.n_frames)
    L = float(cfg.box_factor) * max(H, W)
    out = []
    for model in cfg.models:
        for k in range(int(cfg.movies_per_model)):
            sim = andi2.simulate(rng, str(model), int(cfg.particles), T, L=L)
            pos = sim["positions"] - np.array([(L - W) / 2, (L - H) / 2])
            movie = render_positions(sim_cfg, pos, int(rng.integers(2**31)))
            truth = truth_rows(pos, sim["alpha"], sim["K"], sim["state"], (H, W),
                               float(sim_cfg.fov.pixel_size_nm))
            out.append({"model": str(model), "name": f"{model}_{k}", "movie": movie,
                        "truth": truth, "psf_sigma_nm": float(sim_cfg.psf.sigma)})
    return out


def external_cases(folder: Path) -> list[dict]:
    """Movies of ``benchmarks/external/make_andi2_videos.py`` in one seed folder:
    ``<model>_<k>/{movie.tif, truth.csv, render.json}``."""
    from smlmnet.io.tiff import read_movie_tiff

    out = []
    for d in sorted(p for p in folder.iterdir() if (p / "movie.tif").is_file()):
        info = json.loads((d / "render.json").read_text())
        a = float(info["pixel_size_nm"])
        movie = read_movie_tiff(d / "movie.tif", a, float(info["frame_time_s"]))
        movie.camera = {"model": "poisson"}
        truth = pd.read_csv(d / "truth.csv")
        out.append({"model": str(info["model"]), "name": d.name, "movie": movie,
                    "truth": truth, "psf_sigma_nm": float(info["psf_sigma_nm"])})
    return out


# ---------------------------------------------------------------- chains
def make_linker(name: str, cfg):
    from smlmnet.link import LAPLinker, NearestNeighborLinker

    if name == "transformer":
        from smlmnet.models.registry import load

        return load(str(cfg.get("linker_model", "linker_transformer")))
    cls = {"lap": LAPLinker, "nn": NearestNeighborLinker}[name]
    return cls(search_radius_nm=float(cfg.search_radius_nm), max_gap_frames=int(cfg.max_gap))


def run_chain(case: dict, chain, cfg, linkers: dict) -> tuple[pd.DataFrame, dict]:
    """Localize and link one movie as ``smlmnet analyze`` does; returns the tracks and timings."""
    from smlmnet.evaluation.transfer import make_localizer
    from smlmnet.pipeline import analyze_movie

    loc_cfg = OmegaConf.create({"threshold": float(cfg.threshold), "psf": {
        "calibrate": False, "sigma_nm": {"default": case["psf_sigma_nm"]}}})
    loc, _, _ = make_localizer(str(chain.localizer), loc_cfg, "default", case["movie"])
    t0 = time.perf_counter()
    res = analyze_movie(case["movie"], loc, linkers[str(chain.linker)],
                        min_track_length=int(cfg.min_track_points), blur_R=0.0,
                        methods=("cve",))
    return res.tracks, {"seconds": time.perf_counter() - t0,
                        "localizations": int(len(res.localizations))}


def segment_predictions(positions: list[np.ndarray], method: str, ests: dict,
                        tuned: dict) -> pd.DataFrame:
    """AnDi 2 label lists (:mod:`.andi2` layout) of px tracks on a full frame grid."""
    if not positions:
        return pd.DataFrame(columns=ROW_COLUMNS)
    tracks = {"positions": positions}
    if method == "classical":
        return A2.classical_predictions(tracks, **tuned)
    return A2.learned_predictions(ests[method], tracks)


def linked_positions(tracks: pd.DataFrame, pixel_nm: float, min_points: int):
    """(track ids, first frames, px positions on the full frame grid, gaps interpolated)."""
    ids, first, pos = [], [], []
    for tid, g in tracks.groupby(C.TRACK_ID, sort=True):
        if len(g) < min_points:
            continue
        g = g.sort_values(C.FRAME)
        f = g[C.FRAME].to_numpy()
        full = np.arange(f[0], f[-1] + 1)
        pos.append(np.column_stack([np.interp(full, f, g[C.X_NM].to_numpy() / pixel_nm),
                                    np.interp(full, f, g[C.Y_NM].to_numpy() / pixel_nm)]))
        ids.append(tid)
        first.append(int(f[0]))
    return ids, first, pos


def match_tracks(truth: pd.DataFrame, est: pd.DataFrame, tolerance_nm: float,
                 min_overlap: float) -> dict:
    """{true track id: linked track id} (the module docstring's matching rule): particles
    (``emitter``) are paired one to one with linked tracks by the Hungarian algorithm maximizing
    the frames they share, again on the particles' unrecovered tracks and the unused linked
    tracks while that recovers more; a true track is recovered by its particle's linked track
    when they share ≥ ``min_overlap`` of its frames."""
    if len(truth) == 0 or len(est) == 0:
        return {}
    truth, est = truth.reset_index(drop=True), est.reset_index(drop=True)
    pairs = match_per_frame(truth, est, tolerance_nm)
    if len(pairs) == 0:
        return {}
    counts = pd.DataFrame({
        "t": truth.loc[pairs["true_index"], C.TRACK_ID].to_numpy(),
        "e": est.loc[pairs["est_index"], C.TRACK_ID].to_numpy()}).value_counts().rename("n")
    counts = counts.reset_index()
    emitter = truth.groupby(C.TRACK_ID)["emitter"].first()
    need = min_overlap * truth.groupby(C.TRACK_ID).size()
    counts["emitter"] = emitter.loc[counts["t"]].to_numpy()
    counts["ok"] = counts["n"].to_numpy() >= need.loc[counts["t"]].to_numpy()
    out = {}
    while True:
        left = counts[~counts["t"].isin(out.keys()) & ~counts["e"].isin(out.values())]
        gain = left.groupby(["emitter", "e"])["n"].sum()
        if gain.empty:
            return out
        p_ids, p_inv = np.unique(gain.index.get_level_values(0), return_inverse=True)
        e_ids, e_inv = np.unique(gain.index.get_level_values(1), return_inverse=True)
        g = np.zeros((len(p_ids), len(e_ids)))
        g[p_inv, e_inv] = gain.to_numpy()
        rows, cols = linear_sum_assignment(-g)
        chosen = set(zip(p_ids[rows], e_ids[cols]))
        pick = np.array([(p, e) in chosen for p, e in zip(left["emitter"], left["e"])], bool)
        hit = left[left["ok"].to_numpy() & pick]
        if hit.empty:
            return out
        out.update({int(t): e for t, e in zip(hit["t"], hit["e"])})


def mapped_row(pred: dict, f0: int, n: int, t0: int, m: int, idx: int) -> dict:
    """A linked track's segments (label lists on its own ``n``-frame grid from frame ``f0``)
    as label lists on a true track's ``m`` frames from ``t0`` (nearest segment outside)."""
    seg = np.searchsorted(np.asarray(pred["changepoints"][:-1], int), np.arange(n), "right")
    s = seg[np.clip(np.arange(t0, t0 + m) - f0, 0, n - 1)]
    change = np.flatnonzero(np.diff(s) != 0) + 1
    ids = s[np.r_[0, change].astype(int)]
    return {"traj_idx": idx, "alphas": [pred["alphas"][k] for k in ids],
            "Ds": [pred["Ds"][k] for k in ids], "states": [pred["states"][k] for k in ids],
            "changepoints": [int(c) for c in change] + [m]}


def truth_label_rows(truth: pd.DataFrame, offset: int) -> tuple[pd.DataFrame, list]:
    """AnDi 2 truth label lists of every true track (``traj_idx`` = track id + offset) and the
    tracks' (first frame, length)."""
    rows, spans = [], []
    for tid, g in truth.groupby(C.TRACK_ID, sort=True):
        g = g.sort_values(C.FRAME)
        lab = andi2.segment_labels(*(g[k].to_numpy()[None] for k in LABELS), start=1)[0]
        rows.append({"traj_idx": int(tid) + offset, **lab})
        spans.append((int(g[C.FRAME].iloc[0]), len(g)))
    return pd.DataFrame(rows, columns=ROW_COLUMNS), spans


def score(truth: pd.DataFrame, pred: pd.DataFrame) -> dict:
    return andi2_single_trajectory_scores(truth, pred) if len(truth) else {
        m: np.nan for m in A2.METRICS}


# ---------------------------------------------------------------- run
def evaluate_cases(cases: list[dict], cfg, ests: dict, tuned: dict, linkers: dict,
                   rng: np.random.Generator) -> tuple[list[dict], list[dict]]:
    """Per case: truth and predicted label rows of every chain (and oracle rows); returns
    (per-case chain rows for scoring, timing rows)."""
    per_case, timing = [], []
    offset = 0
    for case in cases:
        truth = true_tracks(case["truth"], int(cfg.min_track_points))
        a = case["movie"].pixel_size_nm
        t_rows, spans = truth_label_rows(truth, offset)
        preds = {}
        for cname, chain in cfg.chains.items():
            tracks, t = run_chain(case, chain, cfg, linkers)
            ids, first, pos = linked_positions(tracks, a, int(cfg.min_track_points))
            pred = segment_predictions(pos, str(chain.trajectory), ests, tuned)
            est = tracks[tracks[C.TRACK_ID].isin(ids)]
            match = match_tracks(truth, est, float(cfg.match_tolerance_nm),
                                 float(cfg.min_overlap))
            where = {tid: i for i, tid in enumerate(ids)}
            rows = []
            for tid, e in match.items():
                i = where[e]
                rows.append(mapped_row(pred.iloc[i], first[i], len(pos[i]), *spans[tid],
                                       int(tid) + offset))
            preds[cname] = pd.DataFrame(rows, columns=ROW_COLUMNS)
            timing.append({"case": case["name"], "chain": cname, **t,
                           "linked tracks": len(ids), "true tracks": len(spans),
                           "recovered": len(rows)})
        if cfg.get("oracle", True):
            tpos = [g.sort_values(C.FRAME)[[C.X_NM, C.Y_NM]].to_numpy() / a
                    for _, g in truth.groupby(C.TRACK_ID, sort=True)]
            tpos = [p + rng.normal(0, float(cfg.oracle_noise_px), p.shape) for p in tpos]
            for method in sorted({str(c.trajectory) for c in cfg.chains.values()}):
                p = segment_predictions(tpos, method, ests, tuned)
                if len(p):
                    p["traj_idx"] = t_rows["traj_idx"].to_numpy()
                preds[f"{method} on true tracks"] = p
        per_case.append({"model": case["model"], "truth": t_rows, "preds": preds})
        offset += len(spans)
        logger.info("%s: %d true tracks; %s", case["name"], len(spans),
                    {k: len(v) for k, v in preds.items()})
    return per_case, timing


def seed_scores(per_case: list[dict], seed, data: str) -> list[dict]:
    """Scores of every chain over the tracks of one seed (and per model)."""
    out = []
    groups = [("all models", per_case)] + [
        (m, [c for c in per_case if c["model"] == m])
        for m in dict.fromkeys(c["model"] for c in per_case)]
    for model, cases in groups:
        truth = pd.concat([c["truth"] for c in cases], ignore_index=True)
        for chain in cases[0]["preds"]:
            pred = pd.concat([c["preds"][chain] for c in cases], ignore_index=True)
            found = set(pred["traj_idx"]) if len(pred) else set()
            rec = truth[truth["traj_idx"].isin(found)]
            oracle = chain.endswith(" on true tracks")
            for scope, t in zip(SCOPES, (truth, rec)):
                if oracle and scope != SCOPES[0]:
                    continue
                out.append({"seed": int(seed), "data": data, "models": model, "chain": chain,
                            "scope": scope, "true tracks": len(truth),
                            "recovered": len(rec) / max(len(truth), 1), **score(t, pred)})
    return out


def summarize(seeds: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (data, models, chain, scope), g in seeds.groupby(
            ["data", "models", "chain", "scope"], sort=False):
        row = {"data": data, "models": models, "chain": chain, "scope": scope,
               "seeds": len(g), "true tracks/seed": f"{g['true tracks'].mean():.0f}"}
        mean, half = ci(g["recovered"])
        row["recovered"] = f"{mean:.3f} ± {half:.2g}"
        for m in A2.METRICS:
            mean, half = ci(g[m])
            row[A2.METRIC_NAMES[m]] = f"{mean:.4g} ± {half:.2g}"
        rows.append(row)
    return pd.DataFrame(rows)


def paired(seeds: pd.DataFrame, a: str = "learned", b: str = "classical") -> pd.DataFrame:
    """Chain ``a`` vs chain ``b`` per data, scope and metric: means and on how many seeds ``a``
    is better (all models pooled)."""
    rows = []
    g0 = seeds[seeds["models"] == "all models"]
    for (data, scope), g in g0.groupby(["data", "scope"], sort=False):
        x, y = (g[g["chain"] == c].set_index("seed") for c in (a, b))
        if x.empty or y.empty:
            continue
        for m in ("recovered", *A2.METRICS):
            lower = A2.LOWER_IS_BETTER.get(m, False)
            better = (x[m] < y[m]) if lower else (x[m] > y[m])
            rows.append({"data": data, "scope": scope,
                         "metric": A2.METRIC_NAMES.get(m, m), f"{a} mean": x[m].mean(),
                         f"{b} mean": y[m].mean(),
                         f"{a} better on seeds": f"{int(better.sum())}/{len(x)}"})
    return pd.DataFrame(rows)


def run(cfg, out_dir) -> pd.DataFrame:
    import torch

    from smlmnet.models.registry import load

    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    methods = {str(c.trajectory) for c in cfg.chains.values()} - {"classical"}
    ests = {m: load(m) for m in sorted(methods)}
    tuned, learned_thresholds = A2.tune_thresholds(OmegaConf.create({
        "classical": cfg.get("classical"), "tuning_seed": cfg.tuning.seed,
        "tuning_experiments": cfg.tuning.experiments, "T": cfg.tuning.T,
        "particles": cfg.tuning.particles,
        "tune_learned_threshold": cfg.get("tune_learned_threshold", True)}), ests)
    linkers = {str(c.linker): make_linker(str(c.linker), cfg) for c in cfg.chains.values()}
    sim_cfg = load_config(str(cfg.simulation.preset), list(cfg.simulation.overrides or []))
    data_root = Path(str(cfg.data_root)) if cfg.get("data_root") else None
    if data_root is not None and not data_root.is_dir():
        logger.warning("no external data at %s: the andi-datasets part is skipped", data_root)
        data_root = None
    per_seed, timing = [], []
    for seed in cfg.seeds:
        sources = {"smlmnet": lambda s=seed: simulated_cases(s, cfg, sim_cfg)} if cfg.get(
            "simulated", True) else {}
        if data_root is not None and (data_root / f"seed{seed}").is_dir():
            sources["andi-datasets"] = lambda s=seed: external_cases(data_root / f"seed{s}")
        elif data_root is not None:
            logger.warning("%s/seed%s missing: external movies skipped", data_root, seed)
        for data, make in sources.items():
            per_case, t = evaluate_cases(make(), cfg, ests, tuned, linkers,
                                         np.random.default_rng(int(seed) + 10**6))
            per_seed += seed_scores(per_case, seed, data)
            timing += [{"seed": int(seed), "data": data, **r} for r in t]
            logger.info("seed %s %s done", seed, data)
    if not per_seed:
        raise FileNotFoundError("nothing to score: simulated=false and no external movies under "
                                f"data_root={cfg.get('data_root')!r}")
    seeds = pd.DataFrame(per_seed)
    summary = summarize(seeds)
    table = summary[summary["models"] == "all models"].drop(columns="models")
    tim = pd.DataFrame(timing)
    chain_time = tim.groupby(["data", "chain"], sort=False).agg(
        movies=("case", "size"), **{"s/movie (localize+link)": ("seconds", "mean")},
        **{"localizations/movie": ("localizations", "mean")},
        **{"linked tracks/movie": ("linked tracks", "mean")},
        **{"true tracks/movie": ("true tracks", "mean")}).reset_index()
    extra = {"per model (all true tracks)": summary[(summary["models"] != "all models") & (
                 summary["scope"] == SCOPES[0])],
             "chains: cost and counts": chain_time, "per seed": seeds}
    if {"learned", "classical"} <= set(cfg.chains):
        extra = {"learned vs classical chain, per seed": paired(seeds), **extra}
    shas = {m: str((getattr(e, "info", {}) or {}).get("weights_sha256", ""))[:12]
            for m, e in ests.items()}
    chains = {k: dict(v) for k, v in OmegaConf.to_container(cfg.chains).items()}
    H, W = sim_cfg.fov.shape_px
    notes = [
        "AnDi 2 video task in 2D, full chain. smlmnet data per seed"
        + ("" if cfg.get("simulated", True) else " (not run: simulated=false)")
        + f": models {list(cfg.models)}, {cfg.movies_per_model} movie(s) each: "
        f"{cfg.particles} particles in a reflecting box of {cfg.box_factor} × the field of "
        f"view, {sim_cfg.n_frames} frames of {H}×{W} px "
        f"rendered with the `{cfg.simulation.preset}` preset (smlmnet.simulate.andi2 "
        "trajectories, challenge parameters; stroboscopic). "
        + ("andi-datasets data: movies from andi-datasets' video generator "
           f"(benchmarks/external/make_andi2_videos.py) under {data_root}. "
           if data_root is not None else "andi-datasets data: not given (data_root). ")
        + f"Seeds {list(cfg.seeds)}; ± = 95 % t-interval over seeds.",
        f"Chains: {chains}; trajectory models (weights sha256) {shas}; linker search radius "
        f"{cfg.search_radius_nm} nm, max gap {cfg.max_gap} (LAP/NN). Classical thresholds "
        f"{tuned}; learned changepoint thresholds "
        + (f"re-tuned as in andi2_trajectory: {learned_thresholds}" if learned_thresholds
           else "shipped") + ".",
        f"True tracks: in-view runs of ≥ {cfg.min_track_points} frames; linked tracks with "
        f"≥ {cfg.min_track_points} points analyzed (gaps linearly interpolated). Matching: "
        f"per-frame pairing within {cfg.match_tolerance_nm} nm; particles paired one to one "
        "with linked tracks (Hungarian, maximizing shared frames; repeated on what is left); a "
        f"true track is recovered when its particle's linked track covers ≥ {cfg.min_overlap:g}"
        " of its frames; the linked track's segments are mapped onto the true track's "
        "frames. 'all true tracks': unrecovered tracks count as missing predictions (AnDi 2 "
        "penalty); 'recovered tracks': paired ones only. '<method> on true tracks': the "
        f"trajectory method on the true positions + {cfg.oracle_noise_px} px Gaussian noise "
        "(no localization or linking).",
        "Scores: smlmnet.metrics.diffusion.andi2_single_trajectory_scores (changepoints paired "
        "with a 10-frame gate, segments by Jaccard, α MAE, K MSLE with K in px²/frame^α, micro "
        "state F1)."]
    write_report(out_dir, "andi2_video", "AnDi 2 video (2D): movie → localize → link → "
                 "trajectory analysis, learned vs classical chain", table, notes,
                 extra_tables=extra, config=cfg)
    return table
