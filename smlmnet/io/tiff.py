"""TIFF movies that ImageJ/Fiji open with the right pixel size and frame interval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tifffile

from smlmnet.data.contracts import Movie
from smlmnet.io.atomic import atomic_write_path


def write_movie_tiff(path: str | Path, movie: Movie, extra: dict | None = None,
                     overwrite: bool = False, psf_sigma_nm: float | None = None) -> Path:
    """Write ``movie`` as an ImageJ hyperstack (axes TYX) atomically.

    Pixel size is stored as the ImageJ resolution in µm, the frame interval as ``finterval``
    (s); camera parameters, exposure, the PSF σ (nm, if given or in ``extra["metadata"]``) and
    ``extra`` are kept as JSON in the ImageJ metadata (key ``smlmnet``) so
    :func:`read_movie_tiff` and :func:`read_tiff_calibration` restore them.
    """
    if psf_sigma_nm is None:
        psf_sigma_nm = ((extra or {}).get("metadata") or {}).get("psf_sigma_nm")
    frames = np.asarray(movie.frames)
    if frames.dtype not in (np.uint8, np.uint16, np.float32):
        frames = frames.astype(np.float32)
    px_um = movie.pixel_size_nm / 1000.0
    info = {"pixel_size_nm": movie.pixel_size_nm, "frame_time_s": movie.frame_time_s,
            "exposure_time_s": movie.exposure_time_s, "camera": movie.camera,
            "psf_sigma_nm": psf_sigma_nm, **(extra or {})}
    with atomic_write_path(path, overwrite=overwrite) as tmp:
        tifffile.imwrite(
            tmp, frames, imagej=True, resolution=(1.0 / px_um, 1.0 / px_um),
            metadata={"axes": "TYX", "unit": "um", "finterval": movie.frame_time_s,
                      "spacing": 1.0, "smlmnet": json.dumps(info)},
        )
    return Path(path)


def read_tiff_calibration(tif: tifffile.TiffFile) -> dict:
    """Pixel size (nm), frame interval (s), exposure, camera and PSF σ (``psf_sigma_nm``)
    found in a TIFF's metadata.

    Keys are present only when the file states them. Files written before the PSF σ was
    stored at the top level still give it from their ``metadata`` entry.
    """
    out: dict = {}
    ij = tif.imagej_metadata or {}
    if "smlmnet" in ij:
        try:
            out.update({k: v for k, v in json.loads(ij["smlmnet"]).items() if v is not None})
        except (TypeError, ValueError, AttributeError):
            pass
    if "psf_sigma_nm" not in out and isinstance(out.get("metadata"), dict):
        sigma = out["metadata"].get("psf_sigma_nm")
        if sigma is not None:
            out["psf_sigma_nm"] = float(sigma)
    if "frame_time_s" not in out and ij.get("finterval"):
        out["frame_time_s"] = float(ij["finterval"])
    if "pixel_size_nm" not in out:
        page = tif.pages[0]
        tag = page.tags.get("XResolution")
        unit = str(ij.get("unit", "")).lower()
        if tag is not None and unit in ("um", "micron", "µm", "\\u00B5m", "nm"):
            num, den = tag.value
            if num > 0:
                size = den / num
                out["pixel_size_nm"] = size * (1000.0 if unit != "nm" else 1.0)
    return out


def read_movie_tiff(path: str | Path, pixel_size_nm: float | None = None,
                    frame_time_s: float | None = None, lazy: bool = False) -> Movie:
    """Read a ``(T, H, W)`` movie and its calibration; arguments override the metadata.

    Raises ``ValueError`` naming the problem for files that are not TIFF, have the wrong
    number of dimensions, or lack a pixel size / frame interval that is not given here.
    With ``lazy=True`` the frames are memory-mapped (uncompressed files) so that a large movie
    is read frame batch by frame batch instead of being loaded whole.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such movie file: {str(path)!r}")
    try:
        with tifffile.TiffFile(path) as tif:
            calib = read_tiff_calibration(tif)
            frames = None
            if lazy:
                try:
                    frames = tifffile.memmap(path, mode="r")
                except (ValueError, tifffile.TiffFileError):
                    frames = None  # compressed or non-contiguous: read it whole
            if frames is None:
                frames = tif.asarray()
    except tifffile.TiffFileError as err:
        raise ValueError(f"{str(path)!r} is not a readable TIFF file ({err})") from None
    if frames.ndim == 2:
        frames = frames[None]
    if frames.ndim != 3:
        raise ValueError(
            f"{str(path)!r}: expected a single-channel movie (T, H, W); got shape {frames.shape}"
        )
    px = pixel_size_nm if pixel_size_nm is not None else calib.get("pixel_size_nm")
    dt = frame_time_s if frame_time_s is not None else calib.get("frame_time_s")
    if px is None:
        raise ValueError(f"{str(path)!r} does not state its pixel size; pass pixel_size_nm")
    if dt is None:
        raise ValueError(f"{str(path)!r} does not state its frame interval; pass frame_time_s")
    return Movie(frames, float(px), float(dt), calib.get("exposure_time_s"),
                 calib.get("camera", {}))


def tiff_psf_sigma_nm(path: str | Path) -> float | None:
    """The PSF σ (nm) that a TIFF's smlmnet metadata states, or ``None``."""
    try:
        with tifffile.TiffFile(path) as tif:
            sigma = read_tiff_calibration(tif).get("psf_sigma_nm")
    except (tifffile.TiffFileError, OSError):
        return None
    try:
        sigma = float(sigma) if sigma is not None else None
    except (TypeError, ValueError):
        return None
    return sigma if sigma is not None and np.isfinite(sigma) and sigma > 0 else None
