"""TIFF movies that ImageJ/Fiji open with the right pixel size and frame interval."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import tifffile

from smlmnet.data.contracts import Movie
from smlmnet.io.atomic import atomic_write_path


def _imagej_kwargs(pixel_size_nm: float, frame_time_s: float, info: dict) -> dict:
    px_um = pixel_size_nm / 1000.0
    return dict(imagej=True, resolution=(1.0 / px_um, 1.0 / px_um),
                metadata={"axes": "TYX", "unit": "um", "finterval": frame_time_s,
                          "spacing": 1.0, "smlmnet": json.dumps(info)})


def write_movie_tiff(path: str | Path, movie: Movie, extra: dict | None = None,
                     overwrite: bool = False) -> Path:
    """Write ``movie`` as an ImageJ hyperstack (axes TYX) atomically.

    Pixel size is stored as the ImageJ resolution in µm, the frame interval as ``finterval``
    (s); camera parameters, exposure and ``extra`` are kept as JSON in the ImageJ metadata
    (key ``smlmnet``) so :func:`read_movie_tiff` restores them.
    """
    frames = np.asarray(movie.frames)
    if frames.dtype not in (np.uint8, np.uint16, np.float32):
        frames = frames.astype(np.float32)
    info = {"pixel_size_nm": movie.pixel_size_nm, "frame_time_s": movie.frame_time_s,
            "exposure_time_s": movie.exposure_time_s, "camera": movie.camera, **(extra or {})}
    with atomic_write_path(path, overwrite=overwrite) as tmp:
        tifffile.imwrite(tmp, frames, **_imagej_kwargs(movie.pixel_size_nm,
                                                       movie.frame_time_s, info))
    return Path(path)


def write_movie_tiff_chunks(path: str | Path, chunks: Iterable[np.ndarray],
                            shape: tuple[int, int, int], pixel_size_nm: float,
                            frame_time_s: float, exposure_time_s: float | None = None,
                            camera: dict | None = None, extra: dict | None = None,
                            final_extra: Callable[[], dict] | None = None,
                            overwrite: bool = False) -> Path:
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
    info = {"pixel_size_nm": pixel_size_nm, "frame_time_s": frame_time_s,
            "exposure_time_s": exposure_time_s, "camera": camera or {}, **(extra or {})}
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
                old_line = "smlmnet=" + json.dumps(info)
                with tifffile.TiffFile(tmp, mode="r+b") as tif:
                    tag = tif.pages[0].tags["ImageDescription"]
                    if old_line not in tag.value:  # pragma: no cover - tifffile changed format
                        raise RuntimeError("cannot find the smlmnet metadata to update")
                    tag.overwrite(tag.value.replace(old_line, "smlmnet=" + json.dumps(final)))
    return Path(path)


def read_tiff_calibration(tif: tifffile.TiffFile) -> dict:
    """Pixel size (nm), frame interval (s), exposure and camera found in a TIFF's metadata.

    Keys are present only when the file states them.
    """
    out: dict = {}
    ij = tif.imagej_metadata or {}
    if "smlmnet" in ij:
        try:
            out.update({k: v for k, v in json.loads(ij["smlmnet"]).items() if v is not None})
        except (TypeError, ValueError):
            pass
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
