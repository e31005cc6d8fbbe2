"""Linking benchmarks: PTC scores on simulated sptPALM movies at several densities (all
linkers on the same localizations), a density × D grid over seeds with blinking (LAP tuned
per cell on a separate seed, the learned linkers with their shipped thresholds), and link time
on ~10⁵ localizations."""

from __future__ import annotations

import copy
import logging
import time

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import OmegaConf

from smlmnet.data import contracts as C
from smlmnet.evaluation.report import write_report
from smlmnet.localize import SpotFitLocalizer
from smlmnet.metrics.tracking import tracking_metrics
from smlmnet.simulate import load_config, simulate

logger = logging.getLogger(__name__)


def _linkers(cfg):
    out = {}
    for name, spec in (cfg.methods or {}).items():
        if spec is None:
            continue
        try:
            linker = instantiate(spec)
            if spec.get("_target_", "").startswith("smlmnet.peers"):
                linker.link(pd.DataFrame({C.FRAME: [0, 1], C.X_NM: [0.0, 1.0],
                                          C.Y_NM: [0.0, 0.0]}))  # import check
            out[name] = linker
        except ImportError as err:
            logger.warning("skipping %s: %s", name, err)
    return out


def synthetic_localizations(rng, n_locs, n_frames, track_frames, D_nm2_per_frame, field_nm,
                            loc_nm, detect_prob):
    """sptPALM-like stream: Brownian particles that appear at random frames and live
    ``track_frames`` frames, detected with probability ``detect_prob`` (gaps), positions with
    Gaussian localization error. About ``n_locs`` rows."""
    n_part = int(np.ceil(n_locs / (track_frames * detect_prob)))
    start = rng.integers(-track_frames + 1, n_frames, n_part)
    steps = rng.normal(0, np.sqrt(2 * D_nm2_per_frame), (n_part, track_frames, 2))
    pos = rng.uniform(0, field_nm, (n_part, 1, 2)) + np.cumsum(steps, axis=1)
    frame = start[:, None] + np.arange(track_frames)[None, :]
    keep = (rng.random((n_part, track_frames)) < detect_prob) & (frame >= 0) & (
        frame < n_frames)
    pid, k = np.nonzero(keep)
    xy = pos[pid, k] + rng.normal(0, loc_nm, (pid.size, 2))
    return pd.DataFrame({C.FRAME: frame[pid, k], C.X_NM: xy[:, 0], C.Y_NM: xy[:, 1],
                         C.TRACK_ID: pid})


def _ci95(values) -> tuple[float, float]:
    """Mean and half-width of the 95 % t confidence interval."""
    from scipy.stats import t as student_t

    v = np.asarray(values, float)
    if v.size < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), float(student_t.ppf(0.975, v.size - 1) * v.std(ddof=1)
                                  / np.sqrt(v.size))


def grid_table(g, density: float, D: float, seed: int, motion: str = "brownian"):
    """The grid's localization table of one cell and seed (Brownian D in µm²/s, ``density``
    on-emitters/µm² per frame, blinking, missed detections, false positives, localization
    noise; :func:`smlmnet.link.transformer.targets.simulate_table`). ``motion`` other than
    ``"brownian"`` names a motion mixture under ``grid.motions`` (e.g. the switching
    preset's two-state model) and ``D`` is then only a label."""
    from smlmnet.link.transformer.targets import simulate_table

    fixed = dict(g.fixed)
    tag = int(round(D * 1000)) if motion == "brownian" else 10**7 + sum(map(ord, motion))
    rng = np.random.default_rng([int(seed), int(round(density * 1000)), tag])
    motions = ([{"model": "brownian", "D_um2_s": float(D)}] if motion == "brownian"
               else OmegaConf.to_container(g.motions[motion], resolve=True))
    return simulate_table(rng, int(g.n_frames), float(g.side_um),
                          density * float(fixed["detection_probability"]),
                          motions=motions, fixed=fixed)


def mean_state_D(motions) -> float:
    """Stationary mean D (µm²/s) of a motion mixture whose entries are ``multistate`` models
    (state D ranges' centres weighted by the stationary distribution of the transition
    matrix) or Brownian ones: the D that places a non-Brownian cell on the density × D axis."""
    total, weight = 0.0, 0.0
    for m in motions:
        w = float(m.get("weight", 1.0))
        if m["model"] == "multistate":
            P = np.asarray(m["transition_matrix"], float)
            vals, vecs = np.linalg.eig(P.T)
            pi = np.real(vecs[:, np.argmin(np.abs(vals - 1))])
            pi = pi / pi.sum()
            Ds = [0.5 * (st["D_um2_s"]["low"] + st["D_um2_s"]["high"])
                  if isinstance(st["D_um2_s"], dict) else float(st["D_um2_s"])
                  for st in m["states"]]
            total += w * float(np.dot(pi, Ds))
        else:
            total += w * float(m["D_um2_s"])
        weight += w
    return total / weight


def _score(table, tracks, gate_nm, frame_time_s, D, min_points, max_tracks=30):
    """PTC α, β, JSC_θ of ``tracks`` and, when ``D`` is given, the median relative error of
    the MLE D over at most ``max_tracks`` tracks of ≥ ``min_points`` points (a seeded random
    subset: the MLE costs ~60 ms per track)."""
    m = tracking_metrics(table[table[C.TRACK_ID] >= 0], tracks, gate_nm)
    out = {"alpha": m["alpha"], "beta": m["beta"], "JSC_theta": m["jsc_theta"]}
    if D is not None:
        from smlmnet.diffusion.estimators import MLE

        sizes = tracks.groupby(C.TRACK_ID)[C.FRAME].transform("size")
        long = tracks[sizes >= min_points]
        ids = long[C.TRACK_ID].unique()
        if ids.size > max_tracks:
            keep = np.random.default_rng(0).choice(ids, max_tracks, replace=False)
            long = long[long[C.TRACK_ID].isin(keep)]
        est = MLE().estimate(long, frame_time_s) if len(long) else pd.DataFrame()
        col = "D [um^2/s]"
        if len(est) and col in est:
            d = est[col].to_numpy(float)
            d = d[np.isfinite(d)]
            out["D rel. error"] = float(np.median(np.abs(d - D) / D)) if d.size else np.nan
        else:
            out["D rel. error"] = np.nan
    return out


def run_grid(cfg, linkers: dict) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Density × D grid: per cell, the LAP tuned (search radius × max gap, best α) on
    ``grid.tuning_seed`` (nearest neighbour and the peers get the LAP's settings); every
    linker then runs on the same tables of ``grid.seeds`` other seeds. Returns (per-cell
    mean ± 95 % CI table, Δα learned − LAP table, speed table)."""
    from smlmnet.link import LAPLinker, NearestNeighborLinker

    g = cfg.grid
    gate = cfg.gate_px * float(g.pixel_size_nm)
    seeds = [int(g.first_seed) + k for k in range(int(g.seeds))]
    learned = {k: v for k, v in linkers.items() if not isinstance(
        v, (LAPLinker, NearestNeighborLinker)) and not type(v).__module__.startswith(
        "smlmnet.peers")}
    peers = {k: type(v) for k, v in linkers.items() if type(v).__module__.startswith(
        "smlmnet.peers")}
    cells = [(float(rho), float(D), "brownian") for rho in g.densities for D in g.D_um2_s]
    for motion, rhos in (g.get("extra_cells") or {}).items():   # e.g. the switching preset
        D_eff = mean_state_D(OmegaConf.to_container(g.motions[motion], resolve=True))
        cells += [(float(rho), D_eff, motion) for rho in rhos]
    rows, times = [], {}
    for density, D, motion in cells:
        tune = grid_table(g, density, D, int(g.tuning_seed), motion)
        tune_locs = tune.drop(columns=C.TRACK_ID)
        best = None
        for r in g.search_radius_nm:
            for gap in g.max_gap:
                a = tracking_metrics(tune[tune[C.TRACK_ID] >= 0],
                                     LAPLinker(float(r), int(gap)).link(tune_locs),
                                     gate)["alpha"]
                if best is None or a > best[0]:
                    best = (a, float(r), int(gap))
        tuned = {"LAP": best}
        methods = {f"LAP (tuned: {best[1]:g} nm, gap {best[2]})":
                   ("LAP", LAPLinker(best[1], best[2])),
                   f"nearest neighbour (LAP's settings: {best[1]:g} nm, gap {best[2]})":
                   ("nearest neighbour", NearestNeighborLinker(best[1], best[2]))}
        for name, cls in peers.items():  # peers with the LAP's tuned settings
            methods[f"{name} (LAP's settings)"] = (name, cls(tuned["LAP"][1],
                                                             tuned["LAP"][2]))
        for name, linker in learned.items():
            methods[name] = (name, linker)
        for seed in seeds:
            table = grid_table(g, density, D, seed, motion)
            locs = table.drop(columns=C.TRACK_ID)
            for label, (key, linker) in methods.items():
                t0 = time.perf_counter()
                tracks = linker.link(locs)
                el = time.perf_counter() - t0
                n, tt = times.get(key, (0, 0.0))
                times[key] = (n + len(locs), tt + el)
                sc = _score(table, tracks, gate, float(g.frame_time_s),
                            float(D) if g.d_error and motion == "brownian" else None,
                            int(g.min_track_points))
                rows.append({"motion": motion, "on-emitters/µm²": density,
                             "D [µm²/s]": round(D, 4),
                             "density × D": density * D, "linker": key,
                             "settings": label, "seed": seed,
                             "localizations": len(locs), **sc, "time [s]": el})
    raw = pd.DataFrame(rows)
    metrics = [c for c in ("alpha", "beta", "JSC_theta", "D rel. error") if c in raw]
    summary = []
    for (motion, rho, D, key), grp in raw.groupby(
            ["motion", "on-emitters/µm²", "D [µm²/s]", "linker"], sort=False):
        row = {"motion": motion, "on-emitters/µm²": rho, "D [µm²/s]": D, "linker": key,
               "settings": grp["settings"].iloc[0], "seeds": len(grp),
               "localizations/seed": int(grp["localizations"].mean())}
        for m in metrics:
            mean, hw = _ci95(grp[m])
            row[m] = round(mean, 4)
            row[f"{m} ±95%"] = round(hw, 4)
        summary.append(row)
    summary = pd.DataFrame(summary)
    deltas = []
    for name in learned:
        for (motion, rho, D), grp in raw.groupby(["motion", "on-emitters/µm²", "D [µm²/s]"],
                                                 sort=False):
            a = grp[grp["linker"] == name].set_index("seed")["alpha"]
            b = grp[grp["linker"] == "LAP"].set_index("seed")["alpha"]
            diff = (a - b.reindex(a.index)).dropna()
            mean, hw = _ci95(diff)
            deltas.append({"linker": name, "motion": motion, "on-emitters/µm²": rho,
                           "D [µm²/s]": D,
                           "density × D": rho * D, "Δα vs tuned LAP": round(mean, 4),
                           "±95%": round(hw, 4),
                           "goal": "≥ +0.05" if rho * D >= float(g.high_density_x_D)
                           else "≥ −0.01",
                           "met": bool(mean >= (0.05 if rho * D >= float(g.high_density_x_D)
                                                else -0.01))})
    speed = pd.DataFrame([{"linker": k, "localizations": n, "time [s]": round(t, 3),
                           "localizations/s": round(n / t) if t > 0 else np.nan}
                          for k, (n, t) in times.items()])
    return summary, pd.DataFrame(deltas), speed


def _n_workers(linker) -> int:
    """Network batches a linker runs at once (1 for linkers without worker threads)."""
    return linker.n_workers() if hasattr(linker, "n_workers") else 1


def _thread_note(linkers: dict) -> str:
    """torch's thread count and which linkers run network batches in worker threads."""
    import torch

    parts = [f"{k} runs {_n_workers(v)} network batches at once (worker threads)"
             for k, v in linkers.items() if _n_workers(v) > 1]
    return f"torch {torch.get_num_threads()}; " + ("; ".join(parts) or
                                                   "every linker runs in one thread")


def run(cfg, out_dir) -> pd.DataFrame:
    if cfg.get("torch_threads"):
        import torch

        torch.set_num_threads(int(cfg.torch_threads))
    linkers = _linkers(cfg)
    rows = []
    for density in (cfg.densities or []):
        sim = simulate(load_config(cfg.simulation.preset, list(cfg.simulation.overrides) +
                                   [f"particles.density_per_um2={density}"]))
        true = sim.emitters[sim.emitters["on"]]
        locs = SpotFitLocalizer("mle", psf_sigma_nm=sim.config.psf.sigma).localize(sim.movie)
        gate = cfg.gate_px * sim.config.fov.pixel_size_nm
        on_density = len(true) / sim.config.n_frames / np.prod(sim.config.fov_size_um)
        # frame-sorted (the transformer refuses unsorted tables; the same table for all)
        sources = {"localizations": locs.sort_values(C.FRAME, kind="stable"),
                   "true positions": true.drop(columns=C.TRACK_ID).sort_values(
                       C.FRAME, kind="stable")}
        for source, table in sources.items():
            for name, linker in linkers.items():
                t0 = time.perf_counter()
                tracks = linker.link(table)
                el = time.perf_counter() - t0
                m = tracking_metrics(true, tracks, gate)
                rows.append({"emitters/µm² on": round(on_density, 3), "input": source,
                             "linker": name, "alpha": m["alpha"], "beta": m["beta"],
                             "JSC": m["jsc"], "JSC_theta": m["jsc_theta"],
                             "tracks": m["n_est_tracks"], "true tracks": m["n_true_tracks"],
                             "time [s]": el})
    table = pd.DataFrame(rows)
    extra = {}
    grid_notes = []
    if cfg.get("grid") and cfg.grid.get("enabled", True):
        summary, deltas, speed = run_grid(cfg, linkers)
        g = cfg.grid
        extra["Grid: density × D with blinking (mean over seeds, ±95 % t-interval)"] = summary
        if len(deltas):
            extra["Grid: α of the learned linker minus the tuned LAP (paired over seeds)"] = \
                deltas
        extra["Grid: speed over all grid tables (same run, same machine)"] = speed
        grid_notes.append(
            f"Grid: {g.n_frames} frames of a {g.side_um:g} µm field, {g.frame_time_s * 1000:g} "
            f"ms frames, {g.pixel_size_nm:g} nm pixels; Brownian motion (motion 'brownian') and "
            f"the motion mixtures {dict(g.get('extra_cells') or {})} of grid.motions (their "
            "D column is the stationary mean D; no D error there); blinking and missed "
            f"detections and false positives ({dict(g.fixed)}); localization noise from the "
            "photon count (Mortensen); localization tables simulated directly "
            "(smlmnet.link.transformer.targets.simulate_table, no movie rendering), the same "
            f"tables for every linker. Seeds {int(g.first_seed)}–"
            f"{int(g.first_seed) + int(g.seeds) - 1}; the LAP tuned per cell "
            f"(best α over search radius {list(g.search_radius_nm)} nm × max gap "
            f"{list(g.max_gap)}) on seed {g.tuning_seed}, nearest neighbour and peers with the "
            "LAP's settings; the learned linker uses the decoding threshold of its model "
            "folder (fixed, or adaptive per movie; both chosen on tuning data: its card) and "
            "its tracklet gap-closing defaults (chosen on this grid's tuning seed), never "
            "these seeds. D rel. error: median "
            f"|D̂ − D|/D of the MLE over ≤ 30 random tracks of ≥ {g.min_track_points} points. "
            f"'high density × D' (goal +0.05 α) means density × D ≥ {g.high_density_x_D}.")
        if not len(table):
            table = summary
    # scaling: ~1e5 localizations
    rng = np.random.default_rng(cfg.seed)
    big = synthetic_localizations(rng, cfg.scaling.n_locs, cfg.scaling.n_frames,
                                  cfg.scaling.track_frames, cfg.scaling.D_nm2_per_frame,
                                  cfg.scaling.field_nm, cfg.scaling.loc_nm,
                                  cfg.scaling.detect_prob)
    big = big.sort_values(C.FRAME, kind="stable").reset_index(drop=True)
    srows = []
    timed = [(name, linker) for name, linker in linkers.items() if name not in cfg.scaling.skip]
    for name, linker in list(timed):
        if _n_workers(linker) > 1:                     # the same linker, one worker
            one = copy.copy(linker)
            one.workers = 1
            timed.append((f"{name} (1 worker)", one))
    for name, linker in timed:
        t0 = time.perf_counter()
        tracks = linker.link(big.drop(columns=C.TRACK_ID))
        el = time.perf_counter() - t0
        m = tracking_metrics(big, tracks, cfg.gate_px * 100.0)
        srows.append({"linker": name, "localizations": len(big), "time [s]": el,
                      "localizations/s": round(len(big) / el) if el > 0 else np.nan,
                      "alpha": m["alpha"], "JSC_theta": m["jsc_theta"]})
    scaling = pd.DataFrame(srows)
    if len(scaling):
        ref = scaling.loc[scaling["linker"] == "smlmnet LAP", "time [s]"]
        if len(ref):
            scaling["time / smlmnet LAP"] = scaling["time [s]"] / ref.iloc[0]
    if cfg.densities:
        extra = {"Movies": table, **extra}
    extra["Link time on ~10⁵ localizations"] = scaling
    movie_note = [
        f"Movies: '{cfg.simulation.preset}' preset with overrides "
        f"{list(cfg.simulation.overrides)} ({sim.config.n_frames} frames of "
        f"{sim.config.fov.shape_px[0]}×{sim.config.fov.shape_px[1]} px, "
        f"{sim.config.fov.pixel_size_nm:g} nm pixels, {sim.config.camera.model} camera, PSF σ "
        f"{sim.config.psf.sigma:g} nm; blinking, so tracks have gaps), localized "
        "once with smlmnet's MLE; every linker gets the same localizations (and, as a "
        "reference, the true positions). Equivalent settings: search radius "
        f"{cfg.search_radius_nm:g} nm = trackpy search_range, laptrack cutoff = radius², "
        f"gaps of up to {cfg.max_gap} frames (trackpy memory = {cfg.max_gap}, laptrack "
        f"gap_closing_max_frame_count = {cfg.max_gap + 1}). PTC metrics with a "
        f"{cfg.gate_px:g} px gate."] if cfg.densities else []
    notes = grid_notes + movie_note + [
        f"Scaling: {len(big)} synthetic localizations ({cfg.scaling.n_frames} frames, "
        f"Brownian tracks of {cfg.scaling.track_frames} frames appearing at random times, "
        f"{100 * (1 - cfg.scaling.detect_prob):.0f} % missed detections). "
        f"Skipped there: {', '.join(cfg.scaling.skip) or 'none'}. Threads: "
        f"{_thread_note(linkers)}; the classical linkers and the peers "
        "run in one thread. '(1 worker)': the same learned linker with workers=1, same run.",
    ]
    if cfg.get("grid") and cfg.grid.get("enabled", True):
        table = extra.pop("Grid: density × D with blinking (mean over seeds, ±95 % t-interval)")
        title = ("Linking: transformer vs LAP, nearest neighbour, trackpy and laptrack "
                 "(density × D grid with blinking)")
    else:
        title = "Linking: smlmnet vs trackpy and laptrack"
        extra.pop("Movies", None)
    write_report(out_dir, "linking", title, table, notes, extra, config=cfg)
    return table
