"""D from pixels vs D from tracks on movies from an external renderer (transfer, no
retraining): the ``pixel_diffusion_external`` benchmark.

``data_root`` holds one folder per movie of the ``pixel_diffusion`` grid (as
``benchmarks/external/make_andi_pixel_movies.py`` writes them): ``movie.tif`` (plain TIFF),
``truth.csv`` (``frame``, ``emitter``, ``x [nm]``, ``y [nm]``, ``D [um^2/s]``, ``isolated``;
smlmnet pixel convention) and ``render.json`` (``D_um2_s``, ``exposure_fraction``, ``seed``,
``pixel_size_nm``, ``frame_time_s``). Per movie, as ``smlmnet analyze`` would see it:

1. the movie is read with the acquisition settings a user types (pixel size, frame time,
   exposure time = exposure/frame × frame time) and calibrated from its own pixels with
   :func:`smlmnet.calibrate.calibrate_movie` (never from the renderer's truth): camera gain
   and offset when the photon transfer identifies them, else ``analyze``'s fallback for a TIFF
   without camera (pixel values are photons); PSF σ from the ``psf_sigma_from`` movie of the
   same seed (``reference``: the slowest, stroboscopic movie, like a bead or fixed-cell
   calibration of the same microscope) or the movie itself (``movie``);
2. localized by the MLE spot fit (``smlmnet analyze --localizer mle`` with that σ and camera);
3. linked by the truth (each localization is paired with the nearest true position of its
   frame within ``tolerance_nm``; the track of a molecule is its paired localizations): the
   tracks an ideal linker would give, so that only D estimation is compared;
4. for each length L, the first ``n_per_cell`` isolated molecules with ≥ 2 localizations in
   frames 0..L−1 are scored: the pixel networks read their tubelets through
   :meth:`~smlmnet.diffusion.mivit.infer.PixelDiffusionEstimator.estimate` (``analyze
   --pixel-diffusion``), the track-based rows and the CRLB are
   :func:`~smlmnet.evaluation.pixel_diffusion.score_tracks` and
   :func:`~smlmnet.evaluation.pixel_diffusion.crlb_columns` of the in-house benchmark.

The table (:func:`~smlmnet.evaluation.pixel_diffusion.summarize`) has the same rows as
``pixel_diffusion`` plus ``mivit / best track``. Without ``data_root`` the benchmark writes a
note that it was skipped.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from smlmnet.data import contracts as C
from smlmnet.data.contracts import Movie
from smlmnet.evaluation.pixel_diffusion import (
    TRACK_METHODS,
    _log_error,
    classical_notes,
    crlb_columns,
    load_pixel_estimators,
    score_tracks,
    summarize,
)
from smlmnet.evaluation.report import write_report
from smlmnet.metrics.localization import match_per_frame

logger = logging.getLogger(__name__)

NAME = "pixel_diffusion_external"


def find_movies(root: Path) -> pd.DataFrame:
    """One row per ``<root>/<movie>/`` with movie.tif, truth.csv and render.json (``alpha``
    1 where render.json has none: Brownian)."""
    rows = []
    for info_path in sorted(Path(root).glob("*/render.json")):
        folder = info_path.parent
        if folder.name.startswith("_") or not (folder / "movie.tif").is_file():
            continue
        info = json.loads(info_path.read_text())
        rows.append({"folder": folder, "D": float(info["D_um2_s"]),
                     "alpha": float(info.get("alpha", 1.0)),
                     "f": float(info["exposure_fraction"]), "seed": int(info["seed"]),
                     "info": info})
    return pd.DataFrame(rows)


def calibrate(movie: Movie, cfg) -> dict:
    """The movie's own calibration (a strict-JSON dict), and the camera ``analyze`` then
    uses: the measured gain and offset when both were identified, else pixel values as
    photons (``analyze``'s default for a TIFF without camera metadata)."""
    from smlmnet.calibrate import calibrate_movie

    cal = calibrate_movie(movie, psf_sigma_nm_hint=float(cfg.get("psf_sigma_hint_nm", 130.0)),
                          max_frames=200, max_frames_spots=100).to_dict()
    if cal.get("e_per_adu") and cal.get("offset_adu") is not None:
        camera = {"model": cal["camera_model"], "e_per_adu": float(cal["e_per_adu"]),
                  "baseline_adu": float(cal["offset_adu"]), "qe": float(cal.get("qe", 1.0))}
        source = "movie (photon transfer)"
    else:
        camera = {"model": "poisson"}
        source = "analyze default (gain/offset not identifiable: counts = photons)"
    return {"calibration": cal, "camera": camera, "camera_source": source}


def read_movie(folder: Path, info: dict, cfg) -> Movie:
    """The movie as ``smlmnet analyze movie.tif --pixel-size-nm A --frame-time-s DT
    --exposure-s E`` (or ``--stroboscopic``) reads it."""
    from smlmnet.io.tiff import read_movie_tiff

    a = float(cfg.get("pixel_size_nm") or info["pixel_size_nm"])
    dt = float(cfg.get("frame_time_s") or info["frame_time_s"])
    exp = float(info["exposure_fraction"]) * dt
    movie = read_movie_tiff(folder / "movie.tif", a, dt, exposure_time_s=exp)
    return Movie(np.asarray(movie.frames), a, dt, exp, {})


def truth_tracks(locs: pd.DataFrame, truth: pd.DataFrame, tolerance_nm: float):
    """Localizations paired with the true molecules (track id = emitter): ``track_id``,
    ``frame``, ``x [nm]``, ``y [nm]``, localization error ``dx [nm]``, ``dy [nm]``."""
    pairs = match_per_frame(truth, locs, tolerance_nm)
    t = truth.loc[pairs["true_index"].to_numpy()]
    e = locs.loc[pairs["est_index"].to_numpy()]
    out = pd.DataFrame({C.TRACK_ID: t["emitter"].to_numpy(), C.FRAME: t[C.FRAME].to_numpy(),
                        C.X_NM: e[C.X_NM].to_numpy(), C.Y_NM: e[C.Y_NM].to_numpy(),
                        "dx [nm]": pairs["dx [nm]"].to_numpy(),
                        "dy [nm]": pairs["dy [nm]"].to_numpy(),
                        "uncertainty_xy [nm]": e["uncertainty_xy [nm]"].to_numpy()
                        if "uncertainty_xy [nm]" in e else np.nan})
    return out.sort_values([C.TRACK_ID, C.FRAME]).reset_index(drop=True)


def _isolated(truth: pd.DataFrame) -> np.ndarray:
    """Rows of isolated molecules (all rows when truth.csv has no ``isolated`` column)."""
    return truth["isolated"].to_numpy() == 1 if "isolated" in truth else \
        np.ones(len(truth), bool)


def cell_tracks(tracks: pd.DataFrame, truth: pd.DataFrame, length: int, n: int):
    """Tracks of the first ``n`` isolated molecules with ≥ 2 localizations in frames
    0..length−1, renumbered 0..n−1 (the order of the emitter ids)."""
    iso = truth.loc[_isolated(truth), "emitter"].unique()
    sub = tracks[(tracks[C.FRAME] < length) & tracks[C.TRACK_ID].isin(iso)]
    counts = sub.groupby(C.TRACK_ID).size()
    keep = np.sort(counts.index[counts >= 2].to_numpy())[:n]
    sub = sub[sub[C.TRACK_ID].isin(keep)].copy()
    sub[C.TRACK_ID] = np.searchsorted(keep, sub[C.TRACK_ID].to_numpy())
    return sub.reset_index(drop=True), len(keep)


def analyze_movies(movies: pd.DataFrame, cfg):
    """Steps 1–3 of the module docstring for every movie of :func:`find_movies` (seeds in
    order; within a seed the PSF reference first: the slowest D, the shortest exposure, the
    smallest α). Yields dicts with ``row`` (the movie's row), ``movie`` (camera set),
    ``sigma_nm`` (PSF σ used), ``locs`` (MLE localizations), ``truth`` (truth.csv),
    ``tracks`` (:func:`truth_tracks`) and ``summary`` (one row of the report's movie table)."""
    from smlmnet.localize.base import SpotFitLocalizer

    psf_from = str(cfg.get("psf_sigma_from", "reference"))
    tol = float(cfg.tolerance_nm)
    for seed, g in movies.groupby("seed", sort=True):
        ref = None
        for _, mv in g.sort_values(["D", "f", "alpha"]).iterrows():
            movie = read_movie(mv["folder"], mv["info"], cfg)
            cal = calibrate(movie, cfg)
            own_sigma = cal["calibration"].get("psf_sigma_nm")
            ref = ref or (own_sigma, mv["folder"].name)
            if psf_from == "movie" or ref[0] is None:
                sigma_nm, sigma_src = own_sigma, "this movie"
            else:
                sigma_nm, sigma_src = ref[0], f"reference movie {ref[1]}"
            if sigma_nm is None:
                sigma_nm, sigma_src = 130.0, "analyze default (not measurable)"
            movie.camera = cal["camera"]
            t0 = time.perf_counter()
            locs = SpotFitLocalizer("mle", psf_sigma_nm=float(sigma_nm),
                                    threshold=float(cfg.threshold)).localize(movie)
            loc_s = time.perf_counter() - t0
            truth = pd.read_csv(mv["folder"] / "truth.csv")
            tracks = truth_tracks(locs, truth, tol)
            summary = {
                "movie": mv["folder"].name, "seed": int(seed), "D [um^2/s]": float(mv["D"]),
                "alpha": float(mv["alpha"]), "exposure/frame": float(mv["f"]),
                "shape": "x".join(str(s) for s in movie.shape),
                "psf σ own [nm]": own_sigma, "psf σ used [nm]": float(sigma_nm),
                "psf σ from": sigma_src, "camera": cal["camera_source"],
                "offset [ADU]": cal["calibration"].get("offset_adu"),
                "e/ADU": cal["calibration"].get("e_per_adu"),
                "background [photon/px]": cal["calibration"].get("background_photons_per_px"),
                "localizations": len(locs), "paired": len(tracks),
                "true (isolated)": int(_isolated(truth).sum()),
                "loc error rms [nm]": float(np.sqrt(np.mean(
                    tracks[["dx [nm]", "dy [nm]"]].to_numpy() ** 2))) if len(tracks) else np.nan,
                "localize s": loc_s}
            logger.info("%s: %d localizations, %d paired", mv["folder"].name, len(locs),
                        len(tracks))
            yield {"row": mv, "movie": movie, "sigma_nm": float(sigma_nm), "locs": locs,
                   "truth": truth, "tracks": tracks, "summary": summary}


def select_movies(cfg, out_dir: Path, name: str, title: str) -> tuple[pd.DataFrame, bool]:
    """``(movies, True)``: the movies under ``cfg.data_root`` that ``cfg`` selects
    (``D_um2_s``, ``alpha``, ``exposure_fraction``, ``seeds``; null: all). ``(table, False)``
    when there are none: a one-row 'skipped' table, whose report is written (no crash
    without the external data)."""
    root = Path(str(cfg.get("data_root") or ""))
    if not cfg.get("data_root") or not root.is_dir() or not any(root.glob("*/render.json")):
        logger.warning("%s: no movies under %r; skipped", name, str(root))
        table = pd.DataFrame([{"status": "skipped", "data_root": str(root)}])
        write_report(out_dir, name, title, table,
                     [f"No movies under `{root}`: render them with "
                      "`benchmarks/external/make_andi_pixel_movies.py`."], config=cfg)
        return table, False
    movies = find_movies(root)
    for key, vals in (("D", cfg.get("D_um2_s")), ("alpha", cfg.get("alpha")),
                      ("f", cfg.get("exposure_fraction")), ("seed", cfg.get("seeds"))):
        if vals:
            movies = movies[movies[key].isin([type(movies[key].iloc[0])(v) for v in vals])]
    return movies, True


def load_estimators(cfg, name: str, need_alpha: bool = False) -> tuple[dict, object]:
    """The pixel estimators of ``cfg`` (:func:`~.pixel_diffusion.load_pixel_estimators`; with
    ``need_alpha`` a network without an α head raises) and ``cfg.trajectory_model`` (None
    when absent)."""
    from smlmnet.models.registry import load

    nets = load_pixel_estimators(cfg, name)
    if need_alpha:
        for label, est in nets.items():
            if not getattr(est, "net", None) or not est.net.config().get("alpha_head"):
                raise ValueError(f"{name}: pixel estimator {label!r} has no α head")
    traj = None
    if cfg.get("trajectory_model"):
        try:
            traj = load(cfg.trajectory_model)
        except (FileNotFoundError, KeyError, ValueError) as err:
            logger.warning("%s: no trajectory model: %s", name, err)
    return nets, traj


def pipeline_notes(cfg, movies: pd.DataFrame) -> list[str]:
    """The report notes on the movies, their calibration, localization and linking (steps
    1–3 of the module docstring), shared by the external pixel benchmarks."""
    root = Path(str(cfg.data_root))
    tol = float(cfg.tolerance_nm)
    n_cell = int(cfg.n_per_cell)
    psf_from = str(cfg.get("psf_sigma_from", "reference"))
    info0 = movies["info"].iloc[0]
    return [
        f"Movies: `{root}` ({len(movies)} movies; renderer: {info0.get('renderer')}, "
        f"versions {info0.get('versions')}; {info0.get('optics')}; "
        f"{info0.get('photons_per_frame')} photons/frame, "
        f"{info0.get('background_photons_per_px')} background photons/px, "
        f"{info0.get('substeps')} motion time steps per frame, of which round(f·steps) are "
        "exposed). Rendered by benchmarks/external/make_andi_pixel_movies.py; no model was "
        "retrained or fine-tuned on them.",
        "Calibration from the movies themselves (smlmnet.calibrate.calibrate_movie), never "
        "from the renderer's truth: camera gain and offset when the photon transfer "
        "identifies them, else `analyze`'s default for a TIFF without camera metadata "
        "(pixel values = photons; per movie in the table below); PSF σ "
        + ("of each movie itself" if psf_from == "movie" else
           "of the slowest stroboscopic movie of the same seed (the microscope's reference, "
           "as a bead calibration would be: a σ fit on the blurred spots of moving molecules comes "
           "out wider; each movie's own value is in the table below)")
        + ". Acquisition settings a user types: pixel size, frame time, exposure time "
        "(= exposure/frame × frame time).",
        f"Localization: the MLE spot fit (`smlmnet analyze --localizer mle`, threshold "
        f"{cfg.threshold}) with that σ and camera. Linking: each localization paired with the "
        f"true molecule of its frame within {tol:g} nm (ideal linker; only the estimation of "
        "D or α is compared). Per cell and seed the first "
        f"{n_cell} isolated molecules (no other within 12 px, inside their render tile) with "
        "≥ 2 localizations in the first L frames; a frame without localization is a gap.",
    ]


def run(cfg, out_dir) -> pd.DataFrame:
    import torch

    out_dir = Path(out_dir)
    movies, found = select_movies(cfg, out_dir, NAME, "Diffusion from pixels vs tracks on "
                                  "external movies")
    if not found:
        return movies
    nets, traj = load_estimators(cfg, NAME)
    clip = tuple(float(v) for v in cfg.clip_D_um2_s)
    n_cell = int(cfg.n_per_cell)
    n_mle = int(cfg.get("mle_per_cell") or n_cell)
    methods = list(nets) + list(TRACK_METHODS) + (["trajnet"] if traj is not None else [])
    timing = {m: [0.0, 0] for m in methods}
    per_seed, per_movie = [], []
    for item in analyze_movies(movies, cfg):
        mv, movie, sigma_nm, tracks, truth = (item[k] for k in (
            "row", "movie", "sigma_nm", "tracks", "truth"))
        seed, D, f = int(mv["seed"]), float(mv["D"]), float(mv["f"])
        dt = movie.frame_time_s
        R = f / 6.0  # what `analyze` uses for tracks: t_E / (6 Δt)
        per_movie.append(item["summary"])
        for L in cfg.lengths:
            L = int(L)
            sub, n = cell_tracks(tracks, truth, L, n_cell)
            row = {"seed": int(seed), "D [um^2/s]": D, "exposure/frame": f, "length": L,
                   "molecules": n,
                   "points/track": len(sub) / max(n, 1)}
            if n == 0:
                per_seed.append(row)
                continue
            for label, est in nets.items():
                t0 = time.perf_counter()
                pt, _ = est.estimate(movie, sub[[C.TRACK_ID, C.FRAME, C.X_NM, C.Y_NM]],
                                     float(sigma_nm))
                timing[label][0] += time.perf_counter() - t0
                timing[label][1] += len(pt)
                d = pt.set_index(C.TRACK_ID)["pixel D [um^2/s]"].reindex(range(n))
                row[label] = float(np.sqrt(np.mean(_log_error(d.to_numpy(), D, clip)**2)))
            sigma_loc_nm = float(np.nanmean(sub["uncertainty_xy [nm]"]))
            row.update(score_tracks(sub[[C.TRACK_ID, C.FRAME, C.X_NM, C.Y_NM]], D, dt, R,
                                    clip, n_mle, sigma_loc_nm, traj, timing))
            err2 = float(np.mean(sub[["dx [nm]", "dy [nm]"]].to_numpy() ** 2))
            row.update(crlb_columns(L, err2, D, dt, R))
            per_seed.append(row)
    per_seed = pd.DataFrame(per_seed)
    per_movie = pd.DataFrame(per_movie)
    scored = per_seed.dropna(subset=[m for m in methods if m in per_seed])
    table = summarize(scored, list(nets), [m for m in methods if m not in nets],
                      ratio_of="mivit" if "mivit" in nets else None)
    counts = scored.groupby(["D [um^2/s]", "exposure/frame", "length"], sort=True).agg(
        seeds=("seed", "nunique"), molecules=("molecules", "min"),
        points=("points/track", "mean")).reset_index()
    table.insert(3, "seeds", counts["seeds"].to_numpy())
    table.insert(4, "min molecules", counts["molecules"].to_numpy())
    speed = pd.DataFrame([{"method": m, "items": n, "seconds": t,
                           "items/s": n / t if t > 0 else np.nan,
                           "unit": "tracks (tubelets from the movie)" if m in nets else "tracks"}
                          for m, (t, n) in timing.items()])
    notes = pipeline_notes(cfg, movies) + [
        "Pixel methods (MiViT, single-frame, Pix2D, and the classical ones below): tubelets "
        "cut from the movie around the tracks' localizations by "
        "TubeletDiffusionEstimator.estimate (`analyze --pixel-diffusion`), with the "
        "calibrated camera, PSF σ and the exposure fraction. "
        "Track-based rows as in `pixel_diffusion` (same functions) with R = t_E/(6Δt) as "
        "`analyze` uses; mle_sigma_known gets the localizer's mean reported uncertainty "
        f"(not the truth). MLE rows on the first {n_mle} molecules of each cell and seed.",
        "CRLB: as in `pixel_diffusion`, with σ² the mean squared localization error against "
        "the exposure-averaged truth (a reference bound, not an estimator).",
        "RMSE of ln D per seed against the rendered D; mean over seeds ± half-width of a 95 % "
        f"t-interval. Estimates clipped to {list(clip)} µm²/s before the log. ratio = best "
        "pixel network / best track-based method; mivit / best track = MiViT's own ratio.",
        f"Speed: torch threads {torch.get_num_threads()}; pixel methods: tracks/s of "
        "estimate() including cutting and normalizing the tubelets.",
        *classical_notes(nets),
    ]
    write_report(out_dir, NAME, "Diffusion from pixels vs tracks on external (AnDi) movies",
                 table, notes, extra_tables={"Movies and calibration": per_movie,
                                             "Speed": speed}, config=cfg)
    per_seed.to_csv(out_dir / f"{NAME}_per_seed.csv", index=False)
    if cfg.get("figure", True):
        plot_rmse(scored, list(nets), [m for m in methods if m not in nets],
                  out_dir / f"{NAME}.png")
    return table


def plot_rmse(per_seed: pd.DataFrame, pixel: list[str], track: list[str], path: Path) -> None:
    """RMSE of ln D vs D, one panel per exposure/frame × length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fs = sorted(per_seed["exposure/frame"].unique())
    Ls = sorted(per_seed["length"].unique())
    fig, axes = plt.subplots(len(Ls), len(fs), figsize=(3.2 * len(fs), 2.6 * len(Ls)),
                             sharex=True, sharey=True, squeeze=False)
    mean = per_seed.groupby(["exposure/frame", "length", "D [um^2/s]"]).mean(numeric_only=True)
    for i, L in enumerate(Ls):
        for j, f in enumerate(fs):
            ax = axes[i, j]
            m = mean.loc[(f, L)]
            for name in pixel + [t for t in track if t != "mle_sigma_known"] + ["CRLB"]:
                if name in m:
                    ax.plot(m.index, m[name], marker="o" if name in pixel else ".",
                            ls="-" if name in pixel else ("--" if name != "CRLB" else ":"),
                            label=name, color="k" if name == "CRLB" else None)
            ax.set_xscale("log")
            ax.set_title(f"exposure/frame {f:g}, L = {L}", fontsize=9)
            if i == len(Ls) - 1:
                ax.set_xlabel("D [µm²/s]")
            if j == 0:
                ax.set_ylabel("RMSE of ln D")
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
