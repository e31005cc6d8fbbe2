"""Calibrate a TIFF file and write ``calibration.json``, ``preset.yaml``, ``calibration.png``
into a new folder atomically (never over the input)."""

from __future__ import annotations

from pathlib import Path

from smlmnet.calibrate.calibration import Calibration, calibrate_movie
from smlmnet.io.atomic import atomic_output_dir, check_output_dir
from smlmnet.io.jsonio import dumps_strict

OUTPUT_FILES = ("calibration.json", "preset.yaml", "calibration.png")


def calibrate_tiff(path: str | Path, camera: str | None = None,
                   pixel_size_nm: float | None = None, frame_time_s: float | None = None,
                   psf_sigma_nm_hint: float | None = None,
                   baseline_adu: float | None = None, **kwargs) -> Calibration:
    """Read a TIFF movie and its metadata and run :func:`calibrate_movie`.

    Pixel size and frame time: arguments, else the TIFF metadata, else 100 nm / 0.02 s
    (``Calibration.*_source`` says which, and a warning is added when assumed).
    """
    import tifffile

    from smlmnet.io.tiff import read_movie_tiff, read_tiff_calibration

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such movie file: {str(path)!r}")
    try:
        with tifffile.TiffFile(path) as tif:
            meta = read_tiff_calibration(tif)
    except tifffile.TiffFileError as err:
        raise ValueError(f"{str(path)!r} is not a readable TIFF file ({err})") from None
    sources, notes = {}, []
    for key, arg, default in (("pixel_size_nm", pixel_size_nm, 100.0),
                              ("frame_time_s", frame_time_s, 0.02)):
        if arg is not None:
            sources[key] = "user"
        elif key in meta:
            sources[key] = "metadata"
        else:
            sources[key] = "assumed"
            notes.append(f"{key} not in the TIFF metadata: assumed {default:g}; pass "
                         f"--{key.replace('_', '-')}")
    movie = read_movie_tiff(path, pixel_size_nm if pixel_size_nm is not None else
                            meta.get("pixel_size_nm", 100.0),
                            frame_time_s if frame_time_s is not None else
                            meta.get("frame_time_s", 0.02), lazy=True)
    cal = calibrate_movie(movie, camera, psf_sigma_nm_hint=psf_sigma_nm_hint,
                          baseline_adu=baseline_adu, metadata=meta, sources=sources, **kwargs)
    cal.warnings = notes + cal.warnings
    return cal


def write_calibration(cal: Calibration, out_dir: str | Path,
                      base_preset: str = "sptpalm_membrane") -> Path:
    """Write the three output files into the new (or empty) folder ``out_dir`` atomically."""
    import yaml

    from smlmnet.calibrate.figure import plot_calibration

    out = check_output_dir(out_dir)
    preset = cal.to_simulation_preset(base_preset)
    with atomic_output_dir(out) as tmp:
        (tmp / "calibration.json").write_text(dumps_strict(cal.to_dict(), indent=2) + "\n")
        header = (f"# simulation preset calibrated from a movie (base: {base_preset});\n"
                  "# smlmnet simulate --config preset.yaml -o new_folder\n")
        (tmp / "preset.yaml").write_text(header + yaml.safe_dump(preset, sort_keys=False))
        plot_calibration(cal, tmp / "calibration.png")
    return out
