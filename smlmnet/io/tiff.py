"""TIFF movies that ImageJ/Fiji open with the right pixel size and frame interval."""

from __future__ import annotations

import itertools
import json
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import tifffile

from smlmnet.data.contracts import Movie
from smlmnet.io.atomic import atomic_write_path
from smlmnet.io.jsonio import dumps_strict


def _imagej_kwargs(pixel_size_nm: float, frame_time_s: float, info: dict) -> dict:
    px_um = pixel_size_nm / 1000.0
    return dict(imagej=True, resolution=(1.0 / px_um, 1.0 / px_um),
                metadata={"axes": "TYX", "unit": "um", "finterval": frame_time_s,
                          "spacing": 1.0, "smlmnet": dumps_strict(info)})


def _smlmnet_info(pixel_size_nm, frame_time_s, exposure_time_s, camera, extra,
                  psf_sigma_nm) -> dict:
    """The ``smlmnet`` JSON of a movie TIFF (PSF σ from ``extra["metadata"]`` if not given)."""
    if psf_sigma_nm is None:
        psf_sigma_nm = ((extra or {}).get("metadata") or {}).get("psf_sigma_nm")
    return {"pixel_size_nm": pixel_size_nm, "frame_time_s": frame_time_s,
            "exposure_time_s": exposure_time_s, "camera": camera or {},
            "psf_sigma_nm": psf_sigma_nm, **(extra or {})}


def write_movie_tiff(path: str | Path, movie: Movie, extra: dict | None = None,
                     overwrite: bool = False, psf_sigma_nm: float | None = None) -> Path:
    """Write ``movie`` as an ImageJ hyperstack (axes TYX) atomically.

    Pixel size is stored as the ImageJ resolution in µm, the frame interval as ``finterval``
    (s); camera parameters, exposure, the PSF σ (nm, if given or in ``extra["metadata"]``) and
    ``extra`` are kept as JSON in the ImageJ metadata (key ``smlmnet``) so
    :func:`read_movie_tiff` and :func:`read_tiff_calibration` restore them.
    """
    frames = np.asarray(movie.frames)
    if frames.dtype not in (np.uint8, np.uint16, np.float32):
        frames = frames.astype(np.float32)
    info = _smlmnet_info(movie.pixel_size_nm, movie.frame_time_s, movie.exposure_time_s,
                         movie.camera, extra, psf_sigma_nm)
    with atomic_write_path(path, overwrite=overwrite) as tmp:
        tifffile.imwrite(tmp, frames, **_imagej_kwargs(movie.pixel_size_nm,
                                                       movie.frame_time_s, info))
    return Path(path)


def write_movie_tiff_chunks(path: str | Path, chunks: Iterable[np.ndarray],
                            shape: tuple[int, int, int], pixel_size_nm: float,
                            frame_time_s: float, exposure_time_s: float | None = None,
                            camera: dict | None = None, extra: dict | None = None,
                            final_extra: Callable[[], dict] | None = None,
                            overwrite: bool = False,
                            psf_sigma_nm: float | None = None) -> Path:
    """Write a movie given as an iterator of frame chunks, holding one chunk at a time.

    The file is the ImageJ hyperstack of :func:`write_movie_tiff` (same frames, calibration
    and ``smlmnet`` metadata; :func:`read_movie_tiff` reads it back, lazily too). Args:
        chunks: arrays ``(k, H, W)`` (or single frames ``(H, W)``) of one dtype (uint8, uint16
            or float32), ``shape[0]`` frames in all.
        shape: ``(T, H, W)`` of the whole movie.
        final_extra: called after the last chunk; its items update ``extra`` in the metadata
            (values known only at the end, e.g. saturated pixels). The ImageJ description is
            then rewritten in place (moved to the end of the file when it grew).
    """
    T, H, W = (int(v) for v in shape)
    first = {"dtype": None}
    written = {"n": 0}

    def pages() -> Iterator[np.ndarray]:
        for chunk in chunks:
            chunk = np.asarray(chunk)
            chunk = chunk[None] if chunk.ndim == 2 else chunk
            if chunk.shape[1:] != (H, W) or (first["dtype"] not in (None, chunk.dtype)):
                raise ValueError(f"chunk of shape {chunk.shape} and dtype {chunk.dtype} does "
                                 f"not continue a ({T}, {H}, {W}) {first['dtype']} movie")
            for frame in chunk:
                written["n"] += 1
                if written["n"] > T:
                    raise ValueError(f"more than the {T} frames announced")
                yield frame

    # the dtype must be known before tifffile writes the header: peek at the first chunk
    chunks = iter(chunks)
    head = next(chunks, None)
    if head is None:
        raise ValueError("no frames to write")
    head = np.asarray(head)
    if head.dtype not in (np.uint8, np.uint16, np.float32):
        raise ValueError(f"frames must be uint8, uint16 or float32, got {head.dtype}")
    first["dtype"] = head.dtype
    chunks = itertools.chain([head], chunks)
    info = _smlmnet_info(pixel_size_nm, frame_time_s, exposure_time_s, camera, extra,
                         psf_sigma_nm)
    kwargs = _imagej_kwargs(pixel_size_nm, frame_time_s, info)
    with atomic_write_path(path, overwrite=overwrite) as tmp:
        with tifffile.TiffWriter(tmp, imagej=True) as tw:
            tw.write(pages(), shape=(T, H, W), dtype=head.dtype,
                     resolution=kwargs["resolution"], metadata=kwargs["metadata"])
        if written["n"] != T:
            raise ValueError(f"got {written['n']} frames, announced {T}")
        if final_extra is not None:
            final = {**info, **final_extra()}
            if final != info:
                old_line = "smlmnet=" + dumps_strict(info)
                with tifffile.TiffFile(tmp, mode="r+b") as tif:
                    tag = tif.pages[0].tags["ImageDescription"]
                    if old_line not in tag.value:  # pragma: no cover - tifffile changed format
                        raise RuntimeError("cannot find the smlmnet metadata to update")
                    tag.overwrite(tag.value.replace(old_line, "smlmnet=" + dumps_strict(final)))
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


#: Photometric interpretations of colour images (several samples per pixel).
_COLOUR = {"RGB", "YCBCR", "SEPARATED", "CIELAB", "ICCLAB", "ITULAB", "CFA", "LOGLUV"}


def _check_grey(where: str, series: tifffile.TiffPageSeries) -> None:
    """Refuse colour (RGB/RGBA...) and inverted-grey images, single- or multi-page alike.

    The decision uses the TIFF's photometric interpretation and samples per pixel (the
    series' ``S`` axis), not the array shape: a single RGB page ``(H, W, 3)`` would otherwise
    be read as a movie of H frames of W×3 px.
    """
    page = series.pages[0] if series.pages else None
    if page is None:
        return
    spp = int(getattr(page, "samplesperpixel", 1) or 1)
    photometric = getattr(page, "photometric", None)
    name = getattr(photometric, "name", str(photometric))
    if spp > 1 or name in _COLOUR or "S" in series.axes:
        kind = name if name in _COLOUR else "multi-sample"
        kind = "RGBA" if kind == "RGB" and spp == 4 else kind
        raise ValueError(
            f"{where} is a colour image ({kind}, {spp} samples per pixel, shape {series.shape}, "
            f"axes {series.axes}); smlmnet analyzes single-channel (grey) fluorescence movies "
            "and refuses colour images rather than converting them to luminance, which would "
            "mix the channels and distort photon counts. Save the fluorescence channel as a "
            "grey movie first (Fiji: Image > Color > Split Channels, or Image > Type > 16-bit)."
            + (" If the colour planes are really frames (tifffile stores 3- or 4-frame stacks as "
               "planar RGB by default), rewrite the file with photometric='minisblack'."
               if series.axes.startswith("S") else "")
        )
    if name == "MINISWHITE":
        raise ValueError(
            f"{where} is an inverted grey image (photometric MINISWHITE: 0 is white), so "
            "bright emitters would be read as dark; smlmnet refuses it rather than guessing "
            "the camera offset. Invert it to MINISBLACK first (Fiji: Edit > Invert, then save)."
        )
    if name == "PALETTE":
        warnings.warn(f"{where} is a palette (indexed colour) image: its colour map is ignored "
                      "and the raw pixel indices are analyzed as intensities", stacklevel=3)


def _select_frames(where: str, tif: tifffile.TiffFile) -> tuple[list, int | None]:
    """The series that make up the movie and the frame count announced by the metadata.

    A file written one frame at a time (e.g. ``TiffWriter.write`` in an acquisition loop)
    holds one 2-D series per frame: equal 2-D series are stacked as frames. Other extra
    series (thumbnails, other positions) are ignored with a warning, never silently.
    """
    series = list(tif.series)
    if not series:
        raise ValueError(f"{where} holds no image data")
    first = series[0]
    if len(first.shape) == 2:
        movie = [s for s in series if s.shape == first.shape and s.dtype == first.dtype]
    else:
        movie = [first]
    for s in movie:
        _check_grey(where, s)
    others = [s for s in series if not any(s is m for m in movie)]
    if others:
        warnings.warn(
            f"{where} holds {len(series)} image series; analyzing {len(movie)} of shape "
            f"{first.shape} and ignoring {len(others)} others of shapes "
            f"{sorted({tuple(s.shape) for s in others})} (save the movie alone as one stack to "
            "silence this)", stacklevel=3)
    expected = None
    ij = tif.imagej_metadata or {}
    if ij.get("images"):
        expected = int(ij["images"])
    return movie, expected


def _calibration_problems(px, dt, exposure, sources: dict) -> list[str]:
    """Every missing or invalid calibration value at once, each with the flag that fixes it."""
    missing, problems = [], []
    for value, what, flag in ((px, "pixel size", "--pixel-size-nm NM"),
                              (dt, "frame interval", "--frame-time-s S")):
        if value is None:
            missing.append((what, flag))
        elif not (np.isfinite(value) and value > 0):
            problems.append(f"the {what} {value:g} ({sources[what]}) must be a positive number: "
                            f"pass {flag}")
    if missing:
        problems.insert(0, "does not state its " + " and ".join(w for w, _ in missing)
                        + "; pass " + " and ".join(f for _, f in missing)
                        + " (from Python: read_movie_tiff(path, pixel_size_nm=..., "
                        "frame_time_s=...))")
    if (exposure is not None and dt is not None and np.isfinite(dt) and dt > 0
            and not 0 <= exposure <= dt * (1 + 1e-9)):
        problems.append(f"the exposure time {exposure:g} s ({sources['exposure']}) must lie in "
                        f"[0, frame interval {dt:g} s]: pass --exposure-s S (or correct "
                        "--frame-time-s)")
    return problems


def read_movie_tiff(path: str | Path, pixel_size_nm: float | None = None,
                    frame_time_s: float | None = None, lazy: bool = False,
                    exposure_time_s: float | None = None) -> Movie:
    """Read a ``(T, H, W)`` movie and its calibration; arguments override the metadata.

    Raises ``ValueError`` naming the problem (and the ``smlmnet analyze`` flag that fixes it)
    for files that are not TIFF, are colour (RGB/RGBA, single- or multi-page: refused, not
    converted), have the wrong number of dimensions or no pixels, hold fewer frames than their
    metadata announces (truncated), or lack a pixel size / frame interval that is not given
    here (all missing values are listed in one error). A single grey image is a 1-frame movie.
    With ``lazy=True`` the frames are memory-mapped (uncompressed files) so that a large movie
    is read frame batch by frame batch instead of being loaded whole.
    """
    path = Path(path)
    where = repr(str(path))
    if not path.is_file():
        raise FileNotFoundError(f"no such movie file: {str(path)!r}")
    try:
        with tifffile.TiffFile(path) as tif:
            calib = read_tiff_calibration(tif)
            series, expected = _select_frames(where, tif)
            frames = None
            if lazy and len(series) == 1 and series[0] is tif.series[0]:
                try:
                    frames = tifffile.memmap(path, mode="r", series=0)
                except (ValueError, tifffile.TiffFileError):
                    frames = None  # compressed or non-contiguous: read it whole
            if frames is None and len(series) == 1:
                frames = series[0].asarray()
            elif frames is None:  # one 2-D series per frame
                frames = np.stack([s.asarray() for s in series])
    except tifffile.TiffFileError as err:
        raise ValueError(f"{str(path)!r} is not a readable TIFF file ({err})") from None
    if frames.ndim == 2:
        frames = frames[None]
    if frames.ndim != 3:
        raise ValueError(
            f"{str(path)!r}: expected a single-channel movie (T, H, W); got shape {frames.shape}"
            f" (axes {series[0].axes}): save one channel / position as a (T, H, W) stack"
        )
    if 0 in frames.shape:
        raise ValueError(f"{where} is empty: shape (T, H, W) = {frames.shape}; nothing to analyze")
    if expected is not None and expected != frames.shape[0]:
        raise ValueError(
            f"{where}: its ImageJ metadata announces {expected} frames but the file holds "
            f"{frames.shape[0]} (truncated or corrupted file?); refusing to analyze part of "
            "the movie: copy or export the movie again"
        )
    px = pixel_size_nm if pixel_size_nm is not None else calib.get("pixel_size_nm")
    dt = frame_time_s if frame_time_s is not None else calib.get("frame_time_s")
    exposure = exposure_time_s if exposure_time_s is not None else calib.get("exposure_time_s")
    sources = {"pixel size": "from " + ("pixel_size_nm / --pixel-size-nm" if pixel_size_nm
                                        is not None else "the TIFF metadata"),
               "frame interval": "from " + ("frame_time_s / --frame-time-s" if frame_time_s
                                            is not None else "the TIFF metadata"),
               "exposure": "from " + ("--exposure-s" if exposure_time_s is not None
                                      else "the TIFF metadata")}
    problems = _calibration_problems(px, dt, exposure, sources)
    if problems:
        raise ValueError(f"{where} " + "; ".join(problems))
    return Movie(frames, float(px), float(dt), exposure, calib.get("camera", {}))


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
