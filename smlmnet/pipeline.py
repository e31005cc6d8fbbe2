"""Movie → localizations → tracks → per-track diffusion, with any localizer and linker."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from smlmnet.data import contracts as C
from smlmnet.data.contracts import Movie
from smlmnet.diffusion.estimators import diffusion_table, ensemble_cve
from smlmnet.link.base import LAPLinker, Linker
from smlmnet.localize.base import Localizer, SpotFitLocalizer


@dataclass
class AnalysisResult:
    """Outputs of :func:`analyze_movie`.

    localizations: one row per localization. tracks: the localizations with ``track_id`` and
    ``t [s]``. diffusion: one row per track of at least ``min_track_length`` points with
    each estimator's results (``mle D [um^2/s]`` ...). summary: counts and ensemble values.
    steps: per-step table of a trajectory model (``smlmnet analyze --trajectory-model``), or
    ``None``. models: models made by the analysis, written as model folders next to the
    tables (``pixel_model``: ``smlmnet analyze --pixel-adapt``).
    """

    localizations: pd.DataFrame
    tracks: pd.DataFrame
    diffusion: pd.DataFrame
    summary: dict = field(default_factory=dict)
    steps: pd.DataFrame | None = None
    models: dict = field(default_factory=dict)


def _frame_list(frames) -> str:
    frames = [int(f) for f in frames]
    shown = ", ".join(map(str, frames[:20]))
    return shown + (f" and {len(frames) - 20} more" if len(frames) > 20 else "")


def _camera_baseline(movie: Movie) -> tuple[float, str]:
    """The ADU offset the localizers subtract, and where it comes from (for messages)."""
    cam = movie.camera or {}
    if not cam or cam.get("model", "scmos") == "poisson":
        return 0.0, "no camera, pixel values are taken as photons"
    return float(cam.get("baseline_adu", 0.0)), "the camera baseline"


def check_movie_content(movie: Movie, batch: int = 256) -> dict:
    """Scan a movie batch by batch and refuse or flag content that would give garbage.

    Raises ``ValueError`` for NaN/infinite pixels (naming the frames), a blank movie (every
    pixel equal), a movie whose every frame is blank or clipped, and negative pixel values
    below the camera baseline (background-subtracted data: never clipped or shifted
    silently; ``--camera scmos --baseline-adu`` at or below the minimum fixes it). Warns about
    frames that are blank or clipped (every pixel at 0 or at the dtype maximum, or all equal:
    dropped or saturated frames) and about movies whose mean lies below the camera baseline.

    Returns ``{"bad_frames": [...], "min": ..., "max": ..., "mean": ...}``; frames are 0-based.
    """
    dtype = np.dtype(movie.frames.dtype)
    top = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else None
    lo, hi, total, count = np.inf, -np.inf, 0.0, 0
    lo_frame = 0
    nonfinite, bad = [], []
    for f0 in range(0, movie.n_frames, batch):
        chunk = np.asarray(movie.frames[f0:f0 + batch])
        if np.issubdtype(chunk.dtype, np.floating):
            finite = np.isfinite(chunk).all(axis=(1, 2))
            if not finite.all():
                nonfinite.extend(np.flatnonzero(~finite) + f0)
                continue
        mins, maxs = chunk.min(axis=(1, 2)), chunk.max(axis=(1, 2))
        clipped = (chunk == 0) if top is None else ((chunk == 0) | (chunk == top))
        bad.extend(np.flatnonzero((mins == maxs) | clipped.all(axis=(1, 2))) + f0)
        if mins.min() < lo:
            lo, lo_frame = mins.min(), f0 + int(np.argmin(mins))
        hi = max(hi, maxs.max())
        total += float(chunk.sum(dtype=np.float64))
        count += chunk.size
    if nonfinite:
        raise ValueError(
            f"the movie has NaN or infinite pixels in frames (0-based) {_frame_list(nonfinite)}; "
            "smlmnet cannot fit undefined pixels and will not guess values for them: replace "
            "them (e.g. with the camera baseline) or crop those frames before analyzing")
    if lo == hi:
        raise ValueError(f"the movie is blank: every pixel equals {lo}; nothing to analyze")
    if len(bad) == movie.n_frames:
        raise ValueError(
            "every frame of the movie is blank or clipped (every pixel at 0"
            + (f" or at the {dtype} maximum {top}" if top is not None else "")
            + " or all equal); nothing to analyze: check the acquisition (exposure, camera "
            "gain) or the export")
    baseline, source = _camera_baseline(movie)
    if lo < 0 and lo < baseline:
        fix = int(np.floor(lo))
        raise ValueError(
            f"the movie has negative pixel values (minimum {lo:g} in frame {lo_frame}, dtype "
            f"{dtype}; the baseline subtracted is {baseline:g}: {source}): "
            "background-subtracted or offset-corrected data? smlmnet's fits model raw camera "
            "counts and will not clip or shift them silently. Give the offset that makes "
            "every pixel minus the baseline >= 0, e.g. `smlmnet analyze ... --camera scmos "
            f"--baseline-adu {fix}` (from Python: movie.camera = {{'model': 'scmos', "
            f"'baseline_adu': {fix}}}), or analyze the raw camera movie"
            + (". If unsigned camera counts were saved as signed integers (values above "
               f"{np.iinfo(dtype).max} wrap to negative), re-save the movie as unsigned instead"
               if np.issubdtype(dtype, np.signedinteger) else ""))
    mean = total / max(count, 1)
    if baseline > 0 and mean < baseline:
        warnings.warn(
            f"the movie's mean pixel value {mean:.4g} lies below the camera baseline "
            f"{baseline:g} ADU: was the baseline already subtracted? Pass the right offset with "
            "--baseline-adu (e.g. --baseline-adu 0); photon counts will be wrong otherwise",
            stacklevel=3)
    if bad:
        warnings.warn(
            f"{len(bad)} of {movie.n_frames} frames are blank or clipped (every pixel at 0"
            + (f" or {top}" if top is not None else "") + " or all equal: dropped or "
            f"saturated frames) and are skipped: frames (0-based) {_frame_list(bad)}. Tracks "
            "are bridged over gaps of up to --max-gap frames", stacklevel=3)
    return {"bad_frames": [int(f) for f in bad], "min": float(lo), "max": float(hi),
            "mean": mean}


def analyze_movie(movie: Movie, localizer: Localizer | None = None,
                  linker: Linker | None = None, min_track_length: int = 5,
                  blur_R: float | None = None, methods=("msd", "cve", "mle", "msd_loglog"),
                  progress: bool = False) -> AnalysisResult:
    """Run the whole pipeline on a movie.

    Args:
        localizer: default :class:`SpotFitLocalizer` (Gaussian MLE, σ_PSF = 130 nm).
        linker: default :class:`LAPLinker` (500 nm, gaps of up to 2 frames).
        min_track_length: tracks with fewer localizations get no diffusion estimate.
        blur_R: motion-blur coefficient; default t_E/(6Δt) from the movie's exposure
            (continuous illumination), 0 if the exposure is unknown.
    """
    if movie.n_frames < 2:
        raise ValueError(
            f"the movie has {movie.n_frames} frame of {movie.shape[1]}x{movie.shape[2]} px; "
            "tracking needs at least 2 frames (and diffusion estimates at least "
            f"min_track_length = --min-length = {min_track_length}): pass a (T, H, W) movie, "
            "not a single image")
    if movie.n_frames < min_track_length:
        warnings.warn(
            f"the movie has {movie.n_frames} frames, fewer than the minimal track length "
            f"{min_track_length} (--min-length): no track can get a diffusion estimate; lower "
            "--min-length or analyze a longer movie", stacklevel=2)
    content = check_movie_content(movie)
    localizer = localizer or SpotFitLocalizer()
    linker = linker or LAPLinker()
    if blur_R is None:
        exp = movie.exposure_time_s
        blur_R = exp / (6 * movie.frame_time_s) if exp else 0.0
    locs = localizer.localize(movie, progress=progress)
    if content["bad_frames"]:  # no localization from a blank or clipped frame
        locs = locs[~locs[C.FRAME].isin(content["bad_frames"])].reset_index(drop=True)
    # linkers take frame-sorted tables (the transformer refuses unsorted ones)
    locs = locs.sort_values(C.FRAME, kind="stable").reset_index(drop=True)
    tracks = linker.link(locs)
    tracks.insert(1, C.TIME, tracks[C.FRAME] * movie.frame_time_s)
    lengths = tracks.groupby(C.TRACK_ID)[C.FRAME].transform("size")
    long_tracks = tracks[lengths >= min_track_length]
    if len(long_tracks):
        diff = diffusion_table(long_tracks, movie.frame_time_s, blur_R, methods)
    else:
        diff = pd.DataFrame(columns=[C.TRACK_ID, "n_points"])
    summary = {
        "n_frames": movie.n_frames,
        "n_localizations": int(len(locs)),
        "n_tracks": int(tracks[C.TRACK_ID].nunique()) if len(tracks) else 0,
        f"n_tracks_ge_{min_track_length}_points": int(len(diff)),
        "blur_coefficient_R": float(blur_R),
        "localizer": localizer.name, "linker": linker.name,
        "skipped_frames_blank_or_clipped": content["bad_frames"],
    }
    if len(long_tracks):
        ens = ensemble_cve(long_tracks, movie.frame_time_s, blur_R)
        summary["ensemble CVE D [um^2/s]"] = ens["D [um^2/s]"]
        summary["ensemble CVE sigma [nm]"] = ens["sigma [nm]"]
    for col in ("mle D [um^2/s]", "cve D [um^2/s]"):
        if col in diff and diff[col].notna().any():
            summary[f"median {col}"] = float(diff[col].median())
    return AnalysisResult(locs, tracks, diff, summary)
