"""The movie and localizer that ``smlmnet analyze MOVIE.tif`` builds by default, reusable from
Python (benchmarks call these so that they measure exactly what a user gets)."""

from __future__ import annotations

import sys
from pathlib import Path

from smlmnet.data.contracts import Movie
from smlmnet.localize.base import Localizer, SpotFitLocalizer

#: PSF σ used by the classical localizers when neither the user nor the file gives one.
DEFAULT_PSF_SIGMA_NM = 130.0
#: Localizer and shipped model of ``smlmnet analyze`` without options.
DEFAULT_LOCALIZER = "decode"
DEFAULT_MODEL = "decode_sptpalm"


def load_movie(path: str | Path, pixel_size_nm: float | None = None,
               frame_time_s: float | None = None) -> Movie:
    """Read a TIFF movie as ``smlmnet analyze`` does (metadata, then these overrides;
    memory-mapped when possible)."""
    from smlmnet.io.tiff import read_movie_tiff

    return read_movie_tiff(path, pixel_size_nm, frame_time_s, lazy=True)


def default_psf_sigma_nm(movie: Movie, psf_sigma_nm: float | None = None) -> float:
    """The PSF σ ``smlmnet analyze`` uses: given, else from the file's metadata, else 130 nm."""
    return float(psf_sigma_nm or (movie.camera or {}).get("psf_sigma_nm")
                 or DEFAULT_PSF_SIGMA_NM)


def build_localizer(kind: str = DEFAULT_LOCALIZER, pixel_size_nm: float | None = None,
                    psf_sigma_nm: float = DEFAULT_PSF_SIGMA_NM, model: str = DEFAULT_MODEL,
                    threshold: float = 5.0) -> Localizer:
    """The localizer of ``smlmnet analyze --localizer KIND [--model MODEL]``.

    ``kind``: ``decode`` (shipped network ``model``) or ``mle`` / ``centroid`` (band-pass
    detection + fit with ``psf_sigma_nm`` and ``threshold``). Warns on stderr when a network's
    training pixel size differs from ``pixel_size_nm`` by more than 10 %.
    """
    if kind == "decode":
        from smlmnet.localize.decode_localizer import DecodeLocalizer

        localizer = DecodeLocalizer.from_pretrained(model)
        trained_px = localizer.info.get("pixel_size_nm", pixel_size_nm)
        if pixel_size_nm and trained_px and abs(pixel_size_nm / trained_px - 1) > 0.1:
            print(f"warning: model {model!r} was trained for {trained_px:g} nm pixels, "
                  f"the movie has {pixel_size_nm:g} nm; consider --localizer mle or a model "
                  "trained for this pixel size", file=sys.stderr)
        return localizer
    return SpotFitLocalizer(kind, psf_sigma_nm=psf_sigma_nm, threshold=threshold)
