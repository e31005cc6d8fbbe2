"""α from pixels vs α from tracks: the ``pixel_anomalous`` benchmark.

For every cell of the grid α × exposure/frame × track length and every seed, the same
simulated fractional-Brownian molecules (:class:`~smlmnet.diffusion.mivit.targets.
TubeletSimulator`, exact fGn on the motion sub-steps, one fixed microscope) are given to the
pixel networks with an α head (their tubelets) and to the track-based estimators of α (the
same frames' noisy localizations): the MSD log-log fit (AnDi's classical baseline) and the
learned trajectory network. Reported per cell: MAE of α (the AnDi 1 task-1 metric; a failed
estimate counts as the maximum error 2) as the mean over seeds with a 95 % t-interval, the
ratio of the pixel network to the best track-based method, and the RMSE of ln K of the pixel
network and the trajectory network (K: MSD = 4·K·τ^α).
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pandas as pd

from smlmnet.data import contracts as C
from smlmnet.diffusion.estimators import ESTIMATORS
from smlmnet.diffusion.mivit.targets import TubeletSimulator
from smlmnet.evaluation.pixel_diffusion import (
    _first_frames,
    _log_error,
    _tracks_table,
    mean_pm,
    speed_table,
)
from smlmnet.evaluation.report import write_report
from smlmnet.metrics.diffusion import mae_alpha

logger = logging.getLogger(__name__)

KEYS = ["alpha", "exposure/frame", "length"]


def _ln_k_rmse(k_est, k_true, clip) -> float:
    return float(np.sqrt(np.mean(_log_error(k_est, k_true, clip) ** 2)))


def score_track_methods(traj, tracks: pd.DataFrame, n: int, alpha: float, K: float,
                        dt: float, max_lag: int, clip) -> dict:
    """α MAE of the MSD log-log fit and of the trajectory network ``traj`` (None: left out),
    and the network's RMSE of ln K, on ``n`` tracks (``track_id`` 0..n−1, nm); a track a
    method returns nothing for counts as a failed estimate."""
    truth = np.full(n, alpha)
    msd = ESTIMATORS["msd_loglog"](max_lag=max_lag).estimate(tracks, dt)
    row = {"msd_loglog alpha MAE": mae_alpha(
        truth, msd.set_index(C.TRACK_ID).reindex(range(n))[C.ALPHA].to_numpy(float))}
    if traj is not None:
        pred = traj.predict(tracks, frame_time_s=dt).set_index(C.TRACK_ID).reindex(range(n))
        row["trajnet alpha MAE"] = mae_alpha(truth, pred[C.ALPHA].to_numpy(float))
        row["trajnet lnK RMSE"] = _ln_k_rmse(pred["K [um^2/s^alpha]"].to_numpy(float), K, clip)
    return row


def score_cell(nets: dict, traj, sample: dict, alpha: float, K: float, a: float, dt: float,
               max_lag: int, clip) -> dict:
    """MAE of α (and RMSE of ln K where the method gives K) of every method on one cell."""
    row = {}
    for label, est in nets.items():
        out = est.predict_tubelets(_first_frames(sample, est.frames))
        row[f"{label} alpha MAE"] = mae_alpha(np.full(len(out["alpha"]), alpha), out["alpha"])
        # K [µm²/s^α] = K_px·a²/Δt^α̂ with the network's own α̂
        k_hat = np.exp(out["log_d"]) * (a / 1000.0) ** 2 / dt ** out["alpha"]
        row[f"{label} lnK RMSE"] = _ln_k_rmse(k_hat, K, clip)
    tracks = _tracks_table(sample["loc_px"], sample["length"], a)
    row.update(score_track_methods(traj, tracks, len(sample["length"]), alpha, K, dt, max_lag,
                                   clip))
    return row


def summarize(per_seed: pd.DataFrame, pixel: list[str], track: list[str]) -> pd.DataFrame:
    """Mean ± 95 % t half-width over seeds per cell (and over all cells: 'all'), the best
    pixel network / best track method ratio of the α MAE."""
    rows = []
    groups = list(per_seed.groupby(KEYS, sort=True))
    groups.append((("all", "all", "all"), per_seed.groupby("seed").mean(numeric_only=True)))
    cols = [f"{m} alpha MAE" for m in pixel + track] + \
        [c for c in per_seed.columns if c.endswith("lnK RMSE")]
    for cell, g in groups:
        row = dict(zip(KEYS, cell))
        for c in cols:
            row[c] = mean_pm(g[c])
        best_pix = min(pixel, key=lambda m: g[f"{m} alpha MAE"].mean())
        best_trk = min(track, key=lambda m: g[f"{m} alpha MAE"].mean())
        row["best track"] = best_trk
        row["ratio"] = round(float(g[f"{best_pix} alpha MAE"].mean() /
                                   g[f"{best_trk} alpha MAE"].mean()), 3)
        rows.append(row)
    return pd.DataFrame(rows)


def run(cfg, out_dir) -> pd.DataFrame:
    import torch

    from smlmnet.models.registry import load

    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    nets = {}
    for label, name in dict(cfg.models).items():
        est = load(name)
        if not est.net.config().get("alpha_head"):
            raise ValueError(f"pixel_anomalous: model {name!r} has no α head")
        est.batch_size = int(cfg.get("batch_size") or est.batch_size)
        nets[label] = est
    traj = load(cfg.trajectory_model) if cfg.get("trajectory_model") else None
    T = max([int(cfg.frames)] + [int(n.frames) for n in nets.values()])
    sim = TubeletSimulator(frames=T, size=int(cfg.size), substeps=int(cfg.substeps),
                           min_length=1)
    micro = dict(cfg.microscope)
    a, dt = float(micro["pixel_size_nm"]), float(micro["frame_time_s"])
    D1 = float(cfg.D_um2_s)   # MSD at a lag of one frame = 4·D1·Δt, whatever α
    clip = tuple(float(v) for v in cfg.clip_K)
    per_seed = []
    for seed, (alpha, f, L) in itertools.product(
            cfg.seeds, itertools.product(cfg.alpha, cfg.exposure_fraction, cfg.lengths)):
        rng = np.random.default_rng([int(seed), int(round(alpha * 100)), int(round(f * 100)),
                                     int(L), 7])
        K = D1 * dt ** (1.0 - alpha)   # µm²/s^α: MSD(τ) = 4Kτ^α
        s = sim.sample(rng, int(cfg.n_per_cell), D_um2_s=D1, alpha=alpha,
                       exposure_fraction=f, length=L, **micro)
        row = {"seed": int(seed), "alpha": alpha, "exposure/frame": f, "length": L}
        row.update(score_cell(nets, traj, s, alpha, K, a, dt, int(cfg.max_lag), clip))
        per_seed.append(row)
    per_seed = pd.DataFrame(per_seed)
    track = ["msd_loglog"] + (["trajnet"] if traj is not None else [])
    table = summarize(per_seed, list(nets), track)
    speed = speed_table(cfg, nets, sim, micro, T, D_um2_s=D1, alpha=1.0)
    micro_txt = ", ".join(f"{k} = {v}" for k, v in micro.items())
    notes = [
        f"Fractional Brownian motion with MSD = 4Kτ^α and K = {D1:g}·Δt^(1−α) µm²/s^α (the "
        "same mean step over one frame for every α), exact fGn on "
        f"{cfg.substeps} motion sub-steps per frame; microscope (fixed): {micro_txt}; "
        f"{cfg.size}×{cfg.size} px patches. Exposure/frame 0 = stroboscopic (no blur), 1 = "
        "continuous.",
        f"{cfg.n_per_cell} molecules per cell and seed, seeds {list(cfg.seeds)} (never used "
        "in training). MAE of α per seed (a failed estimate counts as 2, AnDi's rule); the "
        "table gives the mean over seeds ± the half-width of a 95 % t-interval; 'all' pools "
        "the cells per seed.",
        f"Track-based: the MSD log-log fit over lags 1..min({cfg.max_lag}, N/2) and "
        f"{cfg.get('trajectory_model')} (learned, AnDi 1 model) on the same frames' noisy "
        "localizations. ratio = best pixel network's α MAE / best track-based method's.",
        f"lnK RMSE: RMSE of ln K (K clipped to {list(clip)} µm²/s^α) of the pixel networks "
        "and of the trajectory network.",
        f"Speed: {cfg.get('speed_tubelets', 2048)} molecules of {T} frames (continuous "
        "exposure), median of "
        f"{cfg.get('speed_repeats', 3)} timed repeats after a warm-up, torch threads "
        f"{torch.get_num_threads()}, batch {cfg.batch_size} tubelets (the network with its α "
        "head: D and α in one pass); MSD and CVE: tracks/s of the same molecules in the same "
        "run ('speed / msd' is robust to other load on the machine).",
    ]
    write_report(out_dir, "pixel_anomalous", "Anomalous exponent α from pixels (MiViT) vs "
                 "from tracks", table, notes, extra_tables={"Speed": speed}, config=cfg)
    per_seed.to_csv(f"{out_dir}/pixel_anomalous_per_seed.csv", index=False)
    return table
