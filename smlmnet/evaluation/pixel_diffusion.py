"""D from pixels vs D from tracks: the ``pixel_diffusion`` benchmark.

For every cell of the grid D × exposure/frame × track length and every seed, the same
simulated molecules (:class:`smlmnet.diffusion.mivit.targets.TubeletSimulator` with one fixed
microscope) are given to the pixel networks (their tubelets) and to the track-based
estimators (the same frames' noisy localizations, with the exact blur coefficient R): MSD
fit, CVE, MLE, the learned trajectory network (K of the AnDi model, = D for Brownian motion)
and the trajectory Cramér–Rao bound. Reported: RMSE of ln D per cell (mean over seeds and a
95 % t-interval over the per-seed RMSEs), the ratio of the best pixel network to the best
track-based method, and speed (:func:`throughput`: tubelets/s of each network and tracks/s
of MSD and CVE on one pool of molecules, in the same run, with the torch threads set by the
config).
"""

from __future__ import annotations

import itertools
import logging
import time

import numpy as np
import pandas as pd
from scipy import stats

from smlmnet.data import contracts as C
from smlmnet.diffusion.estimators import ESTIMATORS, MLE, crlb_relative_std_D
from smlmnet.diffusion.mivit.targets import TubeletSimulator, log_d_px_to_um2_s
from smlmnet.evaluation.report import write_report

logger = logging.getLogger(__name__)

TRACK_METHODS = ("msd", "cve", "mle", "mle_sigma_known")


def _tracks_table(loc_px: np.ndarray, length: np.ndarray, pixel_size_nm: float):
    """Track table (nm) of the first ``length[i]`` localizations of each tubelet."""
    n, T, _ = loc_px.shape
    keep = np.arange(T)[None, :] < length[:, None]
    tid, fr = np.nonzero(keep)
    return pd.DataFrame({C.TRACK_ID: tid, C.FRAME: fr,
                         C.X_NM: loc_px[tid, fr, 0] * pixel_size_nm,
                         C.Y_NM: loc_px[tid, fr, 1] * pixel_size_nm})


def _log_error(d_est, d_true, clip):
    d = np.clip(np.nan_to_num(np.asarray(d_est, float), nan=clip[0]), *clip)
    return np.log(d) - np.log(d_true)


def score_tracks(tracks: pd.DataFrame, D: float, dt: float, R: float, clip, n_mle: int,
                 sigma_nm: float, traj=None, timing: dict | None = None) -> dict:
    """RMSE of ln D of the track-based rows on one cell's tracks (``track_id`` 0.. in nm):
    MSD, CVE, MLE (σ free) and MLE with σ = ``sigma_nm`` (on the tracks with id < ``n_mle``),
    their share of invalid estimates, and the trajectory network ``traj`` when given.
    ``timing`` (method → [seconds, items]) is updated in place."""
    timing = timing if timing is not None else {}
    row = {}
    for m in TRACK_METHODS:
        t0 = time.perf_counter()
        sub = tracks if not m.startswith("mle") else tracks[tracks[C.TRACK_ID] < n_mle]
        est = MLE(sigma_nm) if m == "mle_sigma_known" else ESTIMATORS[m]()
        d = est.estimate(sub, dt, R)[C.D_UM2_S].to_numpy()
        t = timing.setdefault(m, [0.0, 0])
        t[0] += time.perf_counter() - t0
        t[1] += len(d)
        row[m] = float(np.sqrt(np.mean(_log_error(d, D, clip) ** 2)))
        row[f"{m} invalid"] = float(np.mean(~(np.nan_to_num(d, nan=-1.0) > 0)))
    if traj is not None:
        t0 = time.perf_counter()
        k = traj.predict(tracks, frame_time_s=dt)["K [um^2/s^alpha]"].to_numpy()
        t = timing.setdefault("trajnet", [0.0, 0])
        t[0] += time.perf_counter() - t0
        t[1] += len(k)
        row["trajnet"] = float(np.sqrt(np.mean(_log_error(k, D, clip) ** 2)))
    return row


def crlb_columns(length: int, sigma2_nm2: float, D: float, dt: float, R: float) -> dict:
    """``CRLB`` and ``CRLB sigma known`` (std of D̂/D) of a track of ``length`` points with
    localization variance ``sigma2_nm2`` per axis (Vestergaard 2014, ε = σ²/(DΔt) − 2R)."""
    eps = sigma2_nm2 * 1e-6 / (D * dt) - 2 * R
    return {col: float(crlb_relative_std_D(max(length - 1, 1), max(eps, 0.0),
                                           sigma_known=known)) if length > 1 else np.inf
            for col, known in (("CRLB", False), ("CRLB sigma known", True))}


def _first_frames(sample: dict, frames: int) -> dict:
    """``sample`` with its per-frame arrays cut to a network's first ``frames`` frames."""
    return {**sample, **{k: sample[k][:, :frames] for k in
                         ("patches", "mask", "features", "loc_px")}}


def throughput(nets: dict, pool: dict, pixel_size_nm: float, dt: float, R: float,
               repeats: int = 3) -> pd.DataFrame:
    """Items/s of every pixel network (tubelets of ``pool``) and of MSD and CVE (the same
    molecules' tracks): median over ``repeats`` timed runs after one warm-up, wall clock and
    process CPU time, and each rate's ratio to MSD's from the same call."""
    tracks = _tracks_table(pool["loc_px"], pool["length"], pixel_size_nm)
    jobs = {label: (lambda est=est: est.predict_tubelets(_first_frames(pool, est.frames)))
            for label, est in nets.items()}
    for m in ("msd", "cve"):
        jobs[m] = lambda m=m: ESTIMATORS[m]().estimate(tracks, dt, R)
    n = len(pool["mask"])
    rows = []
    for label, job in jobs.items():
        job()  # warm-up
        wall, cpu = [], []
        for _ in range(max(int(repeats), 1)):
            t0, c0 = time.perf_counter(), time.process_time()
            job()
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        rows.append({"method": label, "items": n,
                     "unit": "tracks" if label in ("msd", "cve") else "tubelets",
                     "items/s": n / float(np.median(wall)),
                     "items/CPU s": n / float(np.median(cpu))})
    out = pd.DataFrame(rows)
    ref = out.set_index("method").loc["msd"]
    out["speed / msd"] = out["items/s"] / ref["items/s"]
    out["CPU speed / msd"] = out["items/CPU s"] / ref["items/CPU s"]
    return out


def speed_table(cfg, nets: dict, sim: TubeletSimulator, micro: dict, frames: int,
                **fixed) -> pd.DataFrame:
    """:func:`throughput` on one pool of ``cfg.speed_tubelets`` molecules (seed
    ``cfg.speed_seed``; D 1 µm²/s, continuous exposure, all ``frames``, unless ``fixed``
    pins other values), ``cfg.speed_repeats`` timed repeats."""
    rng = np.random.default_rng(int(cfg.get("speed_seed", 0)))
    pool = sim.sample(rng, int(cfg.get("speed_tubelets", 2048)),
                      **{"D_um2_s": 1.0, "exposure_fraction": 1.0, "length": frames, **micro,
                         **fixed})
    return throughput(nets, pool, float(micro["pixel_size_nm"]), float(micro["frame_time_s"]),
                      float(pool["blur_R"][0]), repeats=int(cfg.get("speed_repeats", 3)))


def simulate_cell(sim: TubeletSimulator, rng, n: int, D: float, f: float, length: int,
                  micro: dict) -> dict:
    """``n`` tubelets of one grid cell on the benchmark's fixed microscope."""
    return sim.sample(rng, n, D_um2_s=D, exposure_fraction=f, length=length, **micro)


def load_pixel_estimators(cfg, name: str) -> dict:
    """The pixel estimators of a benchmark config, label → estimator with
    ``predict_tubelets``/``estimate``: the networks of ``cfg.models`` (shipped names or model
    folders; a missing one is left out with a warning) with ``cfg.batch_size``, then the
    classical ones of ``cfg.classical`` (label → constructor arguments with a ``_target_``,
    built with ``hydra.utils.instantiate``). Sets torch's threads to ``cfg.torch_threads``."""
    import torch
    from hydra.utils import instantiate

    from smlmnet.models.registry import load

    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    nets = {}
    for label, model in dict(cfg.models).items():
        try:
            nets[label] = load(model, batch_size=int(cfg.batch_size))
        except (FileNotFoundError, KeyError, ValueError) as err:
            logger.warning("%s: model %s (%s) not available: %s", name, label, model, err)
    for label, spec in dict(cfg.get("classical") or {}).items():
        nets[label] = instantiate(spec)
    return nets


def classical_notes(nets: dict) -> list[str]:
    """One report line per classical pixel estimator (its assumptions)."""
    return [f"{label}: {est.assumptions()}." for label, est in nets.items()
            if hasattr(est, "assumptions")]


def run(cfg, out_dir) -> pd.DataFrame:
    import torch

    from smlmnet.models.registry import load

    nets = load_pixel_estimators(cfg, "pixel_diffusion")
    traj = None
    if cfg.get("trajectory_model"):
        try:
            traj = load(cfg.trajectory_model)
        except (FileNotFoundError, KeyError, ValueError) as err:
            logger.warning("pixel_diffusion: no trajectory model: %s", err)
    T = max([cfg.frames] + [int(n.frames) for n in nets.values()])
    sim = TubeletSimulator(frames=T, size=int(cfg.size), substeps=int(cfg.substeps),
                           min_length=1)
    micro = {k: v for k, v in dict(cfg.microscope).items()}
    a, dt = float(micro["pixel_size_nm"]), float(micro["frame_time_s"])
    clip = tuple(float(v) for v in cfg.clip_D_um2_s)
    methods = list(nets) + list(TRACK_METHODS) + (["trajnet"] if traj is not None else [])
    per_seed = []
    for seed, (D, f, L) in itertools.product(
            cfg.seeds, itertools.product(cfg.D_um2_s, cfg.exposure_fraction, cfg.lengths)):
        rng = np.random.default_rng([int(seed), int(round(D * 1e4)), int(round(f * 100)),
                                     int(L)])
        s = simulate_cell(sim, rng, int(cfg.n_per_cell), float(D), float(f), int(L), micro)
        row = {"seed": int(seed), "D [um^2/s]": D, "exposure/frame": f, "length": L}
        for label, est in nets.items():
            out = est.predict_tubelets(_first_frames(s, est.frames))
            err = _log_error(log_d_px_to_um2_s(out["log_d"], dt, a), D, clip)
            row[label] = float(np.sqrt(np.mean(err**2)))
        tracks = _tracks_table(s["loc_px"], s["length"], a)
        R = float(s["blur_R"][0])
        n_mle = int(cfg.get("mle_per_cell") or cfg.n_per_cell)
        sigma_nm = float(np.mean(s["sigma_loc_px"])) * a
        row.update(score_tracks(tracks, D, dt, R, clip, n_mle, sigma_nm, traj))
        row.update(crlb_columns(L, float(np.mean(s["sigma_loc_px"] ** 2)) * a**2, D, dt, R))
        per_seed.append(row)
    per_seed = pd.DataFrame(per_seed)
    table = summarize(per_seed, list(nets), [m for m in methods if m not in nets],
                      ratio_of="mivit" if "mivit" in nets else None)
    speed = speed_table(cfg, nets, sim, micro, T)
    micro_txt = ", ".join(f"{k} = {v}" for k, v in micro.items())
    notes = [
        f"Microscope (fixed): {micro_txt}; {cfg.size}×{cfg.size} px patches, {cfg.substeps} "
        "motion sub-steps per frame (exposure/frame 0 = stroboscopic: one sub-step, R = 0; "
        "1 = continuous, R = 1/6). Track-based methods get the same frames' noisy "
        "localizations and the exact R; MLE estimates σ jointly, mle_sigma_known is given the "
        "true localization error (the cell's mean σ_loc).",
        f"{cfg.n_per_cell} molecules per cell and seed, seeds {list(cfg.seeds)}. RMSE of ln D "
        "per seed; the table gives the mean over seeds and the half-width of a 95 % "
        f"t-interval (±). Estimates are clipped to {list(clip)} µm²/s before the log "
        "(non-positive MSD/CVE estimates of short tracks count at the lower bound).",
        f"MLE and mle_sigma_known (Nelder–Mead per track, the slowest) run on the first "
        f"{cfg.get('mle_per_cell') or cfg.n_per_cell} molecules of each cell and seed.",
        "CRLB: Cramér–Rao bound on std(D̂)/D of the track (Vestergaard 2014; ε = σ²/(DΔt) "
        "− 2R), σ estimated jointly (CRLB) or known (CRLB sigma known), ≈ the std of ln D to "
        "first order; asymptotic, for unbiased estimators: a network with a prior over D and "
        "that reads σ_loc from the photon count is neither, so '< CRLB' alone does not prove "
        "that the blur added information — compare with 'CRLB sigma known' and with the "
        "stroboscopic rows (exposure/frame 0: no blur at all).",
        "ratio = best pixel method / best track-based method (MSD, CVE, MLE, trajnet); "
        "goal ≤ 0.8; mivit / best track = MiViT's own ratio.",
        *classical_notes(nets),
        f"Speed: a separate pass on {cfg.get('speed_tubelets', 2048)} molecules of "
        f"{T} frames (D 1 µm²/s, continuous exposure), median of "
        f"{cfg.get('speed_repeats', 3)} timed repeats after a warm-up; torch threads "
        f"{torch.get_num_threads()}, batch {cfg.batch_size} tubelets, including "
        "normalization (wall clock and this process's CPU time); MSD and CVE: tracks/s of "
        "the estimate() call on the same molecules' tracks, in the same run. 'speed / msd' "
        "is the ratio to the MSD fit measured here, robust to other load on the machine.",
    ]
    write_report(out_dir, "pixel_diffusion", "Diffusion from pixels (MiViT) vs from tracks",
                 table, notes, extra_tables={"Speed": speed}, config=cfg)
    per_seed.to_csv(f"{out_dir}/pixel_diffusion_per_seed.csv", index=False)
    return table


def mean_pm(v) -> str:
    """``"mean ± half-width"`` of the 95 % Student-t interval over the values ``v`` (seeds),
    3 decimals; one value: the value alone."""
    v = np.asarray(v, float)
    n = len(v)
    if n < 2:
        return f"{v.mean():.3f}"
    return f"{v.mean():.3f} ± {stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / np.sqrt(n):.3f}"


def summarize(per_seed: pd.DataFrame, pixel: list[str], track: list[str],
              ratio_of: str | None = None) -> pd.DataFrame:
    """Mean ± 95 % t half-width over seeds per grid cell, the best-pixel / best-track ratio
    and whether the best pixel network beats the CRLB; ``ratio_of`` (a pixel network) adds
    its own ratio to the best track-based method (``<name> / best track``)."""
    keys = ["D [um^2/s]", "exposure/frame", "length"]
    rows = []
    for cell, g in per_seed.groupby(keys, sort=True):
        row = dict(zip(keys, cell))
        for m in pixel + track:
            row[m] = mean_pm(g[m])
        row["CRLB"] = round(float(g["CRLB"].mean()), 3)
        row["CRLB sigma known"] = round(float(g["CRLB sigma known"].mean()), 3)
        best_pix = min(pixel, key=lambda m: g[m].mean()) if pixel else None
        best_trk = min(track, key=lambda m: g[m].mean())
        if best_pix is not None:
            ratio = g[best_pix].mean() / g[best_trk].mean()
            row["best pixel"] = best_pix
            row["best track"] = best_trk
            row["ratio"] = round(float(ratio), 3)
            if ratio_of in pixel:
                row[f"{ratio_of} / best track"] = round(
                    float(g[ratio_of].mean() / g[best_trk].mean()), 3)
            row["≤ 0.8"] = bool(ratio <= 0.8)
            row["< CRLB"] = bool(g[best_pix].mean() < g["CRLB"].mean())
            row["< CRLB sigma known"] = bool(g[best_pix].mean() < g["CRLB sigma known"].mean())
        rows.append(row)
    return pd.DataFrame(rows)
