"""Movie → localizations → tracks → per-track diffusion, with any localizer and linker."""

from __future__ import annotations

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
    """

    localizations: pd.DataFrame
    tracks: pd.DataFrame
    diffusion: pd.DataFrame
    summary: dict = field(default_factory=dict)


def check_movie_content(movie: Movie, batch: int = 256) -> None:
    """Refuse a blank movie (every pixel equal, e.g. all zeros), reading it in batches."""
    lo, hi = np.inf, -np.inf
    for f0 in range(0, movie.n_frames, batch):
        chunk = np.asarray(movie.frames[f0:f0 + batch])
        if np.issubdtype(chunk.dtype, np.floating) and not np.isfinite(chunk).all():
            raise ValueError(f"the movie has NaN or infinite pixels (frames {f0}..)")
        lo, hi = min(lo, chunk.min()), max(hi, chunk.max())
    if lo == hi:
        raise ValueError(f"the movie is blank: every pixel equals {lo}; nothing to analyze")


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
    check_movie_content(movie)
    localizer = localizer or SpotFitLocalizer()
    linker = linker or LAPLinker()
    if blur_R is None:
        exp = movie.exposure_time_s
        blur_R = exp / (6 * movie.frame_time_s) if exp else 0.0
    locs = localizer.localize(movie, progress=progress)
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
    }
    if len(long_tracks):
        ens = ensemble_cve(long_tracks, movie.frame_time_s, blur_R)
        summary["ensemble CVE D [um^2/s]"] = ens["D [um^2/s]"]
        summary["ensemble CVE sigma [nm]"] = ens["sigma [nm]"]
    for col in ("mle D [um^2/s]", "cve D [um^2/s]"):
        if col in diff and diff[col].notna().any():
            summary[f"median {col}"] = float(diff[col].median())
    return AnalysisResult(locs, tracks, diff, summary)
