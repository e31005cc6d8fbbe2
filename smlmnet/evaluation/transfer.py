"""Transfer benchmark: localizers on movies that smlmnet did not render.

``data_root/<renderer>/<movie>/`` holds ``movie.tif`` (a plain TIFF as a user would have it: no
smlmnet camera metadata), ``truth.csv`` (smlmnet columns and pixel convention: ``frame``
0-based, ``x [nm]``, ``y [nm]``, centre of pixel 0 at 0.5 px) and ``render.json`` (the
renderer's settings; ``truth_pixel_size_nm`` is the pixel size that ``truth.csv``'s nm assume).
Folders whose name starts with ``_`` are skipped. Each movie is read exactly as
``smlmnet analyze movie.tif`` reads it (``read_movie_tiff``), with only the pixel size and
frame interval supplied (per renderer, from the config) when the file does not state them.
``auto`` is exactly ``smlmnet analyze``'s default (:func:`smlmnet.guard.prepare_localizer`:
self-calibration, domain guard, fallback); ``decode:<model>`` runs a network unguarded (what
it does on its own); ``mle`` the classical fit.

Scores per movie: SMLM 2016 Jaccard, lateral RMSE, efficiency, localizations found per true
localization, the fraction of matched errors within the reported 1σ (per axis; 68.3 % for a
calibrated Gaussian) and frames/s with its ratio to the MLE fit in the same run. Per renderer
and localizer: the mean over movies with a 95 % Student-t confidence interval.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from scipy import stats

from smlmnet.data import contracts as C
from smlmnet.data.contracts import Movie
from smlmnet.evaluation.report import markdown_table, write_report
from smlmnet.guard import prepare_localizer
from smlmnet.io.provenance import provenance as _provenance
from smlmnet.io.tiff import read_movie_tiff, read_tiff_calibration
from smlmnet.localize.base import DEFAULT_PSF_SIGMA_NM, SpotFitLocalizer
from smlmnet.metrics.localization import match_per_frame, normalized_errors, smlm_metrics

logger = logging.getLogger(__name__)

PER_MOVIE_COLUMNS = ["renderer", "movie", "localizer", "frames", "true locs", "found locs",
                     "found / true", "jaccard [%]", "rmse_lateral [nm]", "efficiency [%]",
                     "recall", "precision", "bias_x [nm]", "bias_y [nm]", "within 1σ [%]",
                     "within 2σ [%]", "frames/s", "speed / mle", "frames/CPU s", "CPU speed / mle",
                     "psf σ [nm]", "psf σ source"]
SUMMARY_METRICS = ["jaccard [%]", "rmse_lateral [nm]", "efficiency [%]", "found / true",
                   "within 1σ [%]", "frames/s", "speed / mle", "CPU speed / mle"]


def provenance(extra: dict | None = None) -> dict:
    """:func:`smlmnet.io.provenance.provenance` plus this run's settings."""
    return {**_provenance(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), **(extra or {})}


# ---------------------------------------------------------------- data
def find_movies(data_root: str | Path, renderers=None) -> list[tuple[str, Path]]:
    """``(renderer, movie folder)`` for every ``<renderer>/<movie>/movie.tif`` under the root."""
    root = Path(data_root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such data folder: {str(root)!r}")
    names = list(renderers) if renderers else sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
    out = []
    for r in names:
        for movie in sorted((root / r).glob("*/movie.tif")):
            if not movie.parent.name.startswith("_"):
                out.append((r, movie.parent))
    if not out:
        raise FileNotFoundError(f"no <renderer>/<movie>/movie.tif under {str(root)!r}")
    return out


def load_truth(folder: Path, pixel_size_nm: float) -> pd.DataFrame:
    """truth.csv in nm at the pixel size the movie is analyzed with (rescaled if render.json
    states another ``truth_pixel_size_nm``)."""
    truth = pd.read_csv(folder / "truth.csv")
    info = json.loads((folder / "render.json").read_text()) if (
        folder / "render.json").is_file() else {}
    truth_px = info.get("truth_pixel_size_nm")
    if truth_px and abs(truth_px / pixel_size_nm - 1) > 1e-9:
        truth[[C.X_NM, C.Y_NM]] *= pixel_size_nm / truth_px
    return truth.reset_index(drop=True)


def _renderer_value(table, renderer: str, key: str | None = None):
    if table is None:
        return None
    v = table.get(renderer, table.get("default"))
    return v.get(key) if (key is not None and v is not None) else v


# ---------------------------------------------------------------- localizers
def _calibrated_psf_sigma_nm(cfg, movie: Movie) -> float | None:
    """σ from the optional calibration hook (``psf.calibrate_function``: a dotted path to a
    function ``f(movie)`` returning σ in nm, a dict with ``psf_sigma_nm`` or an object with a
    ``psf_sigma_nm`` attribute, e.g. ``smlmnet.calibrate.calibrate_movie``); None when the hook
    does not import, fails or finds no σ."""
    psf = cfg.get("psf", {}) or {}
    target = psf.get("calibrate_function")
    if not psf.get("calibrate", True) or not target:
        return None
    module, _, attr = str(target).rpartition(".")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None
    try:
        out = fn(movie)
    except Exception as err:  # noqa: BLE001 - a failing optional hook must not stop the run
        warnings.warn(f"PSF calibration {target} failed ({err}); using the configured σ",
                      stacklevel=2)
        return None
    if isinstance(out, dict):
        out = out.get("psf_sigma_nm")
    elif out is not None and not isinstance(out, (int, float, np.floating)):
        out = getattr(out, "psf_sigma_nm", None)
    return float(out) if out is not None and np.isfinite(out) and out > 0 else None


def resolve_psf_sigma(cfg, renderer: str, movie: Movie) -> tuple[float, str]:
    """PSF σ for the classical fits: calibration hook, else per renderer config, else 130 nm."""
    sigma = _calibrated_psf_sigma_nm(cfg, movie)
    if sigma is not None:
        return sigma, "calibrated"
    psf = cfg.get("psf", {}) or {}
    configured = _renderer_value(psf.get("sigma_nm"), renderer)
    if configured:
        return float(configured), "config"
    return DEFAULT_PSF_SIGMA_NM, "smlmnet default"


def parse_spec(spec: str) -> tuple[str, dict]:
    """``auto`` (``smlmnet analyze``'s default: guarded, self-calibrated) | ``mle`` |
    ``centroid`` (σ per renderer) | ``mle:default`` (σ 130 nm) | ``mle:<σ nm>`` |
    ``decode:<model>`` or ``<model>`` (a shipped model or folder, unguarded) → (kind, options)."""
    kind, _, arg = str(spec).partition(":")
    if kind == "auto":
        return "auto", {}
    if kind in ("mle", "centroid"):
        if arg in ("", None):
            return kind, {}
        if arg == "default":
            return kind, {"psf_sigma_nm": DEFAULT_PSF_SIGMA_NM}
        return kind, {"psf_sigma_nm": float(arg)}
    if kind == "decode":
        return "decode", {"model": arg or "decode_generalist"}
    return "decode", {"model": str(spec)}


def make_localizer(spec: str, cfg, renderer: str, movie: Movie):
    """(localizer, PSF σ used by a classical fit or None, where σ came from)."""
    kind, opts = parse_spec(spec)
    if kind == "auto":
        loc, chosen = prepare_localizer(movie, "auto", threshold=float(cfg.get("threshold", 5.0)))
        return loc, chosen["psf_sigma_nm"], chosen["psf_sigma_source"]
    if kind == "decode":
        loc, _ = prepare_localizer(movie, "decode", model=opts["model"], calibrate="never",
                                   force=True)
        return loc, None, "–"
    if "psf_sigma_nm" in opts:
        sigma, source = opts["psf_sigma_nm"], "fixed in spec"
    else:
        sigma, source = resolve_psf_sigma(cfg, renderer, movie)
    loc = SpotFitLocalizer(kind, psf_sigma_nm=sigma, threshold=float(cfg.get("threshold", 5.0)))
    return loc, sigma, source


# ---------------------------------------------------------------- scoring
def uncertainty_coverage(true: pd.DataFrame, est: pd.DataFrame, pairs: pd.DataFrame
                         ) -> tuple[float, float]:
    """Percent of matched per-axis errors within the reported 1σ and 2σ (NaN without σ)."""
    z = normalized_errors(est, pairs) if len(pairs) else None
    if z is None or not len(z):
        return np.nan, np.nan
    return 100.0 * float(np.mean(z < 1)), 100.0 * float(np.mean(z < 2))


def t_interval(values, confidence: float = 0.95) -> tuple[float, float, float, int]:
    """Mean and Student-t confidence interval over movies (NaNs dropped)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return np.nan, np.nan, np.nan, 0
    m = float(v.mean())
    if n == 1:
        return m, np.nan, np.nan, 1
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * v.std(ddof=1) / np.sqrt(n))
    return m, m - half, m + half, n


def summarize(per_movie: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    rows = []
    for (renderer, loc), g in per_movie.groupby(["renderer", "localizer"], sort=False):
        row = {"renderer": renderer, "localizer": loc, "movies": len(g),
               "true locs": int(g["true locs"].sum())}
        for m in SUMMARY_METRICS:
            mean, lo, hi, _ = t_interval(g[m], confidence)
            row[m] = mean
            row[f"{m} ci_low"], row[f"{m} ci_high"] = lo, hi
        rows.append(row)
    return pd.DataFrame(rows)


def _pm(row, m, digits=3) -> str:
    mean, lo, hi = row[m], row[f"{m} ci_low"], row[f"{m} ci_high"]
    if not np.isfinite(mean):
        return "–"
    if not np.isfinite(lo):
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} ± {(hi - lo) / 2:.2g}"


def summary_markdown(summary: pd.DataFrame) -> pd.DataFrame:
    shown = summary[["renderer", "localizer", "movies", "true locs"]].copy()
    for m in SUMMARY_METRICS:
        shown[m] = [_pm(r, m) for _, r in summary.iterrows()]
    return shown


def plot_jaccard(per_movie: pd.DataFrame, path: Path, tolerance_nm: float = 250.0
                 ) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    locs = list(dict.fromkeys(per_movie["localizer"]))
    movies = list(dict.fromkeys(per_movie["renderer"] + "/" + per_movie["movie"]))
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(movies) + 3.5), 4.5))
    width = 0.8 / max(len(locs), 1)
    key = per_movie["renderer"] + "/" + per_movie["movie"]
    for k, loc in enumerate(locs):
        sub = per_movie[per_movie["localizer"] == loc]
        skey = key[sub.index]
        vals = [float(sub.loc[skey == mv, "jaccard [%]"].iloc[0]) if (skey == mv).any()
                else np.nan for mv in movies]
        ax.bar(np.arange(len(movies)) + (k - (len(locs) - 1) / 2) * width, vals, width,
               label=loc)
    ax.set_xticks(np.arange(len(movies)), movies, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("Jaccard [%]")
    ax.set_ylim(0, 100)
    ax.set_title(f"Transfer: Jaccard per movie (SMLM 2016, {tolerance_nm:g} nm)")
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------- runner
def _timed_localize(loc, movie: Movie, warmup_frames: int = 3):
    """Localize the whole movie after a short warm-up (imports, numba/torch first calls)."""
    with warnings.catch_warnings():
        # a user's file has no camera parameters: the localizers warn and read ADU as photons
        warnings.simplefilter("ignore")
        if warmup_frames:
            loc.localize(movie.first_frames(warmup_frames))
        t0, c0 = time.perf_counter(), time.process_time()
        est = loc.localize(movie)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    return est.reset_index(drop=True), elapsed, cpu


def run(cfg, out_dir) -> pd.DataFrame:
    """Every configured localizer on every movie under ``cfg.data_root``; writes
    ``transfer.md``, ``transfer.csv`` (per movie), ``transfer_summary.csv``,
    ``transfer_jaccard.png`` and ``provenance.json`` to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    threads = cfg.get("torch_threads")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    tol = float(cfg.get("tolerance_nm", 250.0))
    specs = [str(s) for s in cfg.localizers]
    max_frames = cfg.get("max_frames")
    rows = []
    for renderer, folder in find_movies(cfg.data_root, cfg.get("renderers")):
        px = _renderer_value(cfg.get("pixel_size_nm"), renderer)
        dt = _renderer_value(cfg.get("frame_time_s"), renderer)
        # exactly `smlmnet analyze movie.tif [--pixel-size-nm PX --frame-time-s DT]`; the
        # file's own metadata wins where it has any
        with tifffile.TiffFile(folder / "movie.tif") as tif:
            stated = read_tiff_calibration(tif)
        movie = read_movie_tiff(folder / "movie.tif",
                                None if "pixel_size_nm" in stated else px,
                                None if "frame_time_s" in stated else dt, lazy=True)
        if max_frames:
            movie = movie.first_frames(max_frames)
        truth = load_truth(folder, movie.pixel_size_nm)
        truth = truth[truth[C.FRAME] < movie.n_frames].reset_index(drop=True)
        movie_rows = []
        for spec in specs:
            loc, sigma, source = make_localizer(spec, cfg, renderer, movie)
            est, elapsed, cpu = _timed_localize(loc, movie, int(cfg.get("warmup_frames", 3)))
            m = smlm_metrics(truth, est, tol)
            pairs = match_per_frame(truth, est, tol)
            w1, w2 = uncertainty_coverage(truth, est, pairs)
            movie_rows.append({
                "renderer": renderer, "movie": folder.name, "localizer": spec,
                "frames": movie.n_frames, "true locs": len(truth), "found locs": len(est),
                "found / true": len(est) / max(len(truth), 1),
                "jaccard [%]": m["jaccard [%]"], "rmse_lateral [nm]": m["rmse_lateral [nm]"],
                "efficiency [%]": m["efficiency [%]"], "recall": m["recall"],
                "precision": m["precision"], "bias_x [nm]": m["bias_x [nm]"],
                "bias_y [nm]": m["bias_y [nm]"], "within 1σ [%]": w1, "within 2σ [%]": w2,
                "frames/s": movie.n_frames / elapsed,
                "frames/CPU s": movie.n_frames / max(cpu, 1e-9),
                "psf σ [nm]": np.nan if sigma is None else float(sigma),
                "psf σ source": source})
            logger.info("%s/%s %s: Jaccard %.1f %%, %.1f frames/s", renderer, folder.name,
                        spec, m["jaccard [%]"], movie.n_frames / elapsed)
        mle = [r for r in movie_rows if r["localizer"].split(":")[0] == "mle"]
        for r in movie_rows:
            r["speed / mle"] = r["frames/s"] / mle[0]["frames/s"] if mle else np.nan
            r["CPU speed / mle"] = (r["frames/CPU s"] / mle[0]["frames/CPU s"] if mle
                                    else np.nan)
        rows += movie_rows
    per_movie = pd.DataFrame(rows, columns=PER_MOVIE_COLUMNS)
    conf = float(cfg.get("confidence", 0.95))
    summary = summarize(per_movie, conf)
    prov = provenance({"torch_threads_config": threads, "data_root": str(cfg.data_root),
                       "localizers": specs})
    (out_dir / "provenance.json").write_text(json.dumps(prov, indent=2))
    summary.to_csv(out_dir / "transfer_summary.csv", index=False)
    plot_jaccard(per_movie, out_dir / "transfer_jaccard.png", tol)
    notes = [
        f"Commit {prov['commit']}; CPU {prov['cpu']}, {prov['cpu_cores']} cores; torch threads "
        f"{prov['torch_threads']} (config torch_threads: {threads}); versions "
        + ", ".join(f"{k} {v}" for k, v in prov["versions"].items()) + ".",
        f"Summary: mean over movies ± half-width of the {100 * conf:g} % Student-t confidence "
        "interval (n − 1 degrees of freedom; no interval for a single movie).",
        f"Matching: SMLM 2016 greedy per-frame pairing within {tol:g} nm. 'found / true': "
        "localizations returned per true localization (≫ 1: garbage detections). 'within 1σ': "
        "matched per-axis errors within the reported uncertainty (uncertainty_x/y, else "
        "uncertainty_xy); 68.3 % for calibrated Gaussian errors. frames/s: whole movie → "
        f"table after a {int(cfg.get('warmup_frames', 3))}-frame warm-up (wall clock on a "
        "shared machine); frames/CPU s: the same with this process's CPU time (robust to other "
        "load); 'speed / mle', 'CPU speed / mle': ratios to the first MLE entry on the same "
        "movie in this run. Uncertainty target: 68 ± 5 % within 1σ.",
        "Movies are read as `smlmnet analyze movie.tif` reads them (no camera metadata: pixel "
        "values taken as photons), with the configured pixel size / frame interval only where "
        "the file states none.",
    ]
    write_report(out_dir, "transfer", "Transfer: localizers on externally rendered movies",
                 per_movie, notes,
                 {"Per renderer (mean ± 95 % CI over movies)": summary_markdown(summary)})
    return per_movie


__all__ = ["run", "find_movies", "load_truth", "parse_spec", "summarize", "t_interval",
           "uncertainty_coverage", "provenance", "markdown_table"]
