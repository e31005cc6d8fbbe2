"""α from pixels vs α from tracks on movies from an external renderer (transfer, no
retraining): the ``pixel_anomalous_external`` benchmark.

``data_root`` holds one folder per movie of fractional Brownian molecules, as
``benchmarks/external/make_andi_pixel_movies.py --alpha ...`` writes them (render.json with
``alpha``, ``D_um2_s``: MSD(Δt) = 4·D·Δt for every α, ``exposure_fraction``, ``seed``). Every
movie goes through the same steps as in ``pixel_diffusion_external``
(:func:`~smlmnet.evaluation.pixel_diffusion_external.analyze_movies`: read as ``smlmnet
analyze`` reads it, calibrated from its own pixels, MLE localizations, paired with the truth as
an ideal linker would). Per track length L the first ``n_per_cell`` isolated molecules are
scored as in ``pixel_anomalous``: MAE of α (AnDi's metric; a missing estimate counts as 2) of
the pixel networks with an α head (``PixelDiffusionEstimator.estimate``, what ``analyze
--pixel-diffusion`` reports as ``pixel alpha``), of the MSD log-log fit and of the trajectory
network on the same tracks; the RMSE of ln K of the pixel network and the trajectory network
(K: MSD = 4·K·τ^α, K = D·Δt^(1−α) µm²/s^α).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from smlmnet.data import contracts as C
from smlmnet.diffusion.mivit.infer import PIXEL_ALPHA, PIXEL_D
from smlmnet.evaluation.pixel_anomalous import KEYS, _ln_k_rmse, score_track_methods, summarize
from smlmnet.evaluation.pixel_diffusion_external import (
    analyze_movies,
    cell_tracks,
    load_estimators,
    pipeline_notes,
    select_movies,
)
from smlmnet.evaluation.report import write_report
from smlmnet.metrics.diffusion import mae_alpha

logger = logging.getLogger(__name__)

NAME = "pixel_anomalous_external"
TITLE = "Anomalous exponent α from pixels (MiViT) vs from tracks on external (AnDi) movies"


def score_tracks_alpha(nets: dict, traj, movie, tracks: pd.DataFrame, n: int,
                       sigma_nm: float, alpha: float, K: float, max_lag: int, clip) -> dict:
    """α MAE (and ln K RMSE) of every method on ``n`` tracks (``track_id`` 0..n−1) of one
    movie; a track a method returns nothing for counts as a failed estimate."""
    dt = movie.frame_time_s
    tracks = tracks[[C.TRACK_ID, C.FRAME, C.X_NM, C.Y_NM]]
    row = {}
    for label, est in nets.items():
        pt, _ = est.estimate(movie, tracks, float(sigma_nm))
        pt = pt.set_index(C.TRACK_ID).reindex(range(n))
        a_hat = pt[PIXEL_ALPHA].to_numpy(float)
        row[f"{label} alpha MAE"] = mae_alpha(np.full(n, alpha), a_hat)
        # K [µm²/s^α] from the one-frame D with the network's own α̂
        row[f"{label} lnK RMSE"] = _ln_k_rmse(pt[PIXEL_D].to_numpy(float) * dt ** (1.0 - a_hat),
                                              K, clip)
    row.update(score_track_methods(traj, tracks, n, alpha, K, dt, max_lag, clip))
    return row


def run(cfg, out_dir) -> pd.DataFrame:
    out_dir = Path(out_dir)
    movies, found = select_movies(cfg, out_dir, NAME, TITLE)
    if not found:
        return movies
    nets, traj = load_estimators(cfg, NAME, need_alpha=True)
    if not nets:
        raise ValueError(f"{NAME}: none of the models {dict(cfg.models)} could be loaded")
    clip = tuple(float(v) for v in cfg.clip_K)
    n_cell, max_lag = int(cfg.n_per_cell), int(cfg.max_lag)
    per_seed, per_movie = [], []
    for item in analyze_movies(movies, cfg):
        mv, movie, truth, tracks = (item[k] for k in ("row", "movie", "truth", "tracks"))
        alpha, f, D = float(mv["alpha"]), float(mv["f"]), float(mv["D"])
        K = D * movie.frame_time_s ** (1.0 - alpha)
        info = mv["info"]
        per_movie.append({**item["summary"], "render MSD(1) ratio": info.get("msd1_ratio"),
                          "render α fit": info.get("alpha_fit")})
        for L in cfg.lengths:
            sub, n = cell_tracks(tracks, truth, int(L), n_cell)
            row = {"seed": int(mv["seed"]), "alpha": alpha, "exposure/frame": f,
                   "length": int(L), "molecules": n}
            if n:
                row.update(score_tracks_alpha(nets, traj, movie, sub, n, item["sigma_nm"],
                                              alpha, K, max_lag, clip))
            per_seed.append(row)
    per_seed = pd.DataFrame(per_seed)
    scored = per_seed[per_seed["molecules"] > 0]
    track = ["msd_loglog"] + (["trajnet"] if traj is not None else [])
    table = summarize(scored, list(nets), track)
    counts = scored.groupby(KEYS, sort=True).agg(seeds=("seed", "nunique"),
                                                molecules=("molecules", "min"))
    table.insert(3, "seeds", list(counts["seeds"]) + [scored["seed"].nunique()])
    table.insert(4, "min molecules", list(counts["molecules"]) + [scored["molecules"].min()])
    notes = pipeline_notes(cfg, movies) + [
        f"Fractional Brownian motion rendered by AnDi (`models_phenom().single_state`, "
        "fGn on the motion time steps) with the same mean step over one frame for every α: "
        f"MSD(Δt) = 4·D·Δt with D = {movies['D'].iloc[0]:g} µm²/s, K = D·Δt^(1−α) µm²/s^α. "
        "The movie table lists the renderer's own check on its unblurred trajectories (MSD at "
        "one frame / 2·D_px per axis, α of a log-log fit over lags 1..frames/2).",
        "Pixel network: α (and D) from tubelets cut around the tracks' localizations by "
        "PixelDiffusionEstimator.estimate (`analyze --pixel-diffusion`: `pixel alpha`), with the "
        "calibrated camera, PSF σ and the exposure fraction. Track-based: the MSD log-log fit "
        f"over lags 1..min({max_lag}, N/2) and {cfg.get('trajectory_model')} on the same "
        "tracks.",
        f"MAE of α per seed (a failed estimate counts as 2, AnDi's rule); mean over seeds ± "
        "the half-width of a 95 % t-interval; 'all' pools the cells per seed. ratio = best "
        "pixel network / best track-based method. lnK RMSE: K clipped to "
        f"{list(clip)} µm²/s^α.",
    ]
    write_report(out_dir, NAME, TITLE, table, notes,
                 extra_tables={"Movies and calibration": pd.DataFrame(per_movie)}, config=cfg)
    per_seed.to_csv(out_dir / f"{NAME}_per_seed.csv", index=False)
    return table
