"""Odd and bad input to `smlmnet analyze` and the TIFF reader, and the outputs' hygiene."""

import json
import os
import stat

import numpy as np
import pytest
import tifffile

from smlmnet.cli import main
from smlmnet.data import Movie
from smlmnet.io.atomic import atomic_output_dir, atomic_write_path
from smlmnet.io.jsonio import dumps_strict, write_json
from smlmnet.io.tiff import read_movie_tiff, write_movie_tiff

CALIB = ["--pixel-size-nm", "100", "--frame-time-s", "0.01"]
FAST = ["--localizer", "mle", "-q", "--min-length", "3"]


def strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def tiny_movie(n_frames=5, dtype=np.uint16, offset=100, seed=0):
    """5 frames of 24×24 px: a Poisson background over ``offset`` and one bright spot."""
    rng = np.random.default_rng(seed)
    frames = offset + rng.poisson(10, (n_frames, 24, 24)).astype(float)
    yy, xx = np.mgrid[:24, :24]
    frames += 400 * np.exp(-((yy - 11.6) ** 2 + (xx - 12.3) ** 2) / (2 * 1.3**2))
    return np.round(frames).astype(dtype)


def analyze(tmp_path, movie_file, *extra, out="out"):
    return main(["analyze", str(movie_file), *CALIB, *FAST, *extra, "-o", str(tmp_path / out)])


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


# --- colour and single images ---------------------------------------------------------------

@pytest.mark.parametrize("shape, kw", [
    ((275, 229, 3), {}),                                          # one RGB page
    ((32, 29, 4), {"extrasamples": ["unassalpha"]}),              # one RGBA page
    ((4, 32, 29, 3), {}),                                         # multi-page RGB
    ((3, 16, 16), {"photometric": "rgb", "planarconfig": "separate"}),  # planar RGB
])
def test_colour_tiffs_are_refused_not_read_as_movies(tmp_path, shape, kw):
    path = tmp_path / "colour.tif"
    tifffile.imwrite(path, np.zeros(shape, np.uint8), **kw)
    with pytest.raises(ValueError, match="colour image") as err:
        read_movie_tiff(path, 100, 0.01)
    assert "refuses colour images rather than converting them to luminance" in str(err.value)
    assert ("photometric='minisblack'" in str(err.value)) == (kw.get("planarconfig") is not None)


def test_single_rgb_page_refused_by_analyze(tmp_path, capsys):
    path = tmp_path / "photo.tif"
    tifffile.imwrite(path, np.random.default_rng(1).integers(0, 255, (275, 229, 3), np.uint8))
    assert analyze(tmp_path, path) == 2
    err = capsys.readouterr().err
    assert "colour image (RGB, 3 samples per pixel, shape (275, 229, 3)" in err
    assert not (tmp_path / "out").exists()


def test_grey_pages_with_three_columns_are_a_movie(tmp_path):
    # shape alone looks like RGB, but the pages say grey: 32 frames of 29×3 px
    path = tmp_path / "narrow.tif"
    tifffile.imwrite(path, np.ones((32, 29, 3), np.uint16), photometric="minisblack")
    assert read_movie_tiff(path, 100, 0.01).shape == (32, 29, 3)


def test_inverted_grey_refused(tmp_path):
    path = tmp_path / "white.tif"
    tifffile.imwrite(path, np.zeros((2, 8, 8), np.uint8), photometric="miniswhite")
    with pytest.raises(ValueError, match="MINISWHITE"):
        read_movie_tiff(path, 100, 0.01)


def test_single_grey_image_is_one_frame_but_cannot_be_tracked(tmp_path, capsys):
    path = tmp_path / "snap.tif"
    tifffile.imwrite(path, tiny_movie(1)[0])
    assert read_movie_tiff(path, 100, 0.01).shape == (1, 24, 24)
    assert analyze(tmp_path, path) == 2
    assert "tracking needs at least 2 frames" in capsys.readouterr().err


# --- pixel values ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_negative_pixels_refused_with_the_fixing_flag(tmp_path, capsys, dtype):
    path = tmp_path / "bgsub.tif"
    frames = tiny_movie(dtype=dtype, offset=-8)  # background-subtracted: noise below 0
    assert frames.min() < 0
    tifffile.imwrite(path, frames)
    assert analyze(tmp_path, path) == 2
    err = capsys.readouterr().err
    lo = int(np.floor(frames.min()))
    assert "negative pixel values" in err and "will not clip or shift them" in err
    assert f"--camera scmos --baseline-adu {lo}" in err
    assert ("saved as signed integers" in err) == (dtype == np.int16)
    assert not (tmp_path / "out").exists()
    # the suggested fix works, values are neither wrapped nor clipped
    assert analyze(tmp_path, path, "--camera", "scmos", "--baseline-adu", str(lo),
                   "--exposure-s", "0.01") == 0
    summary = strict_json((tmp_path / "out" / "summary.json").read_text())
    assert summary["n_localizations"] >= 3


def test_clipped_frames_named_and_skipped(tmp_path, capsys):
    frames = tiny_movie(6)
    frames[1] = 0           # a dropped frame
    frames[4] = 65535       # a saturated frame
    frames[4, :5] = 0       # ... partly zero, still nothing but clipped values
    path = tmp_path / "clipped.tif"
    tifffile.imwrite(path, frames)
    assert analyze(tmp_path, path, "--stroboscopic") == 0
    err = capsys.readouterr().err
    assert "2 of 6 frames are blank or clipped" in err and "frames (0-based) 1, 4" in err
    summary = strict_json((tmp_path / "out" / "summary.json").read_text())
    assert summary["skipped_frames_blank_or_clipped"] == [1, 4]
    import pandas as pd

    locs = pd.read_csv(tmp_path / "out" / "localizations.csv")
    assert not set(locs["frame"] - 1) & {1, 4}


def test_all_frames_clipped_is_an_error(tmp_path, capsys):
    frames = np.zeros((5, 24, 24), np.uint16)
    frames[:, ::2] = 65535  # every pixel 0 or the maximum: garbage, not a movie
    path = tmp_path / "clip.tif"
    tifffile.imwrite(path, frames)
    assert analyze(tmp_path, path) == 2
    assert "every frame of the movie is blank or clipped" in capsys.readouterr().err


def test_nan_frames_named(tmp_path, capsys):
    frames = tiny_movie(dtype=np.float32)
    frames[3, 2, 2] = np.nan
    path = tmp_path / "nan.tif"
    tifffile.imwrite(path, frames)
    assert analyze(tmp_path, path, "--camera", "scmos", "--baseline-adu", "100") == 2
    assert "NaN or infinite pixels in frames (0-based) 3" in capsys.readouterr().err


def test_float_movie_in_photons_is_analyzed(tmp_path, capsys):
    path = tmp_path / "photons.tif"
    tifffile.imwrite(path, tiny_movie(dtype=np.float32, offset=0))
    assert analyze(tmp_path, path, "--exposure-s", "0.01") == 0
    err = capsys.readouterr().err
    assert "pixel values are taken as photons" in err and "--camera" in err


def test_mean_below_baseline_warns(tmp_path, capsys):
    path = tmp_path / "subtracted.tif"
    tifffile.imwrite(path, tiny_movie(offset=0))
    assert analyze(tmp_path, path, "--camera", "scmos", "--exposure-s", "0.01") == 0
    assert "below the camera baseline 100" in capsys.readouterr().err


# --- metadata and flags ---------------------------------------------------------------------

def test_missing_calibration_listed_in_one_error(tmp_path, capsys):
    path = tmp_path / "bare.tif"
    tifffile.imwrite(path, tiny_movie())
    assert main(["analyze", str(path), *FAST, "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("error") == 1
    assert "pixel size and frame interval" in err
    assert "--pixel-size-nm" in err and "--frame-time-s" in err
    with pytest.raises(ValueError, match="frame interval; pass --frame-time-s"):
        read_movie_tiff(path, pixel_size_nm=100)


def test_invalid_calibration_values_name_their_flag(tmp_path, capsys):
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, tiny_movie())
    assert main(["analyze", str(path), "--pixel-size-nm", "-100", "--frame-time-s", "0.01",
                 "--exposure-s", "0.5", *FAST, "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "pixel size -100" in err and "pass --pixel-size-nm" in err
    assert "exposure time 0.5 s (from --exposure-s)" in err


def test_camera_flags_are_never_ignored(tmp_path, capsys):
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, tiny_movie())
    assert analyze(tmp_path, path, "--baseline-adu", "90") == 2
    assert "--baseline-adu given but no camera model" in capsys.readouterr().err
    assert analyze(tmp_path, path, "--camera", "poisson", "--e-per-adu", "2") == 2
    assert "no effect on a poisson camera" in capsys.readouterr().err


def test_camera_flags_override_the_tiff_camera(tmp_path):
    from smlmnet.cli import _analysis_camera, build_parser

    tiff_cam = {"model": "emccd", "baseline_adu": 50.0, "em_gain": 300.0, "e_per_adu": 12.0}
    args = build_parser().parse_args(["analyze", "x.tif", "--em-gain", "100"])
    assert _analysis_camera(args, tiff_cam) == {**tiff_cam, "em_gain": 100.0}
    args = build_parser().parse_args(["analyze", "x.tif", "--camera", "scmos"])
    assert _analysis_camera(args, tiff_cam)["baseline_adu"] == 100.0  # another camera


def test_truncated_imagej_file_refused(tmp_path):
    full, cut = tmp_path / "full.tif", tmp_path / "cut.tif"
    write_movie_tiff(full, Movie(tiny_movie(10), 100, 0.01))
    data = full.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    for lazy in (False, True):
        with pytest.raises(ValueError, match="announces 10 frames but the file holds"):
            read_movie_tiff(cut, lazy=lazy)


def test_one_series_per_frame_is_stacked(tmp_path):
    frames = tiny_movie(4)
    path = tmp_path / "loop.tif"
    with tifffile.TiffWriter(path) as tif:  # an acquisition loop: one series per frame
        for frame in frames:
            tif.write(frame)
    movie = read_movie_tiff(path, 100, 0.01, lazy=True)
    assert np.array_equal(movie.frames, frames)
    with tifffile.TiffWriter(path) as tif:
        tif.write(frames, photometric="minisblack")
        tif.write(np.zeros((6, 6), np.uint16))  # e.g. a thumbnail
    with pytest.warns(UserWarning, match="ignoring 1 others of shapes"):
        assert read_movie_tiff(path, 100, 0.01).shape == (4, 24, 24)


def test_zero_size_movie_refused(tmp_path):
    path = tmp_path / "empty.tif"
    with pytest.warns(UserWarning):
        tifffile.imwrite(path, np.zeros((0, 8, 8), np.uint16))
    with pytest.raises(ValueError, match="is empty"):
        read_movie_tiff(path, 100, 0.01)


# --- outputs --------------------------------------------------------------------------------

def test_output_never_over_the_input(tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "m.tif"
    tifffile.imwrite(path, tiny_movie())
    for out in (folder, path, path / "sub", tmp_path):
        assert main(["analyze", str(path), *CALIB, *FAST, "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert "input movie" in err and "-o/--output" in err
    assert sorted(p.name for p in folder.iterdir()) == ["m.tif"]


def test_analyze_outputs_readable_by_the_group_and_strict_json(tmp_path, umask_022, capsys):
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, tiny_movie())
    assert analyze(tmp_path, path, "--stroboscopic") == 0
    out = tmp_path / "out"
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    files = list(out.iterdir())
    # the movie has no camera and no PSF σ: analyze calibrates it from itself for the guard
    assert sorted(f.name for f in files) == [
        "calibration.json", "diffusion.csv", "localizations.csv", "report.png", "summary.json",
        "tracks.csv", "tracks_trackpy.csv"]
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f.name
    strict_json((out / "summary.json").read_text())
    strict_json((out / "calibration.json").read_text())


def test_simulate_outputs_readable_by_the_group(tmp_path, umask_022):
    out = tmp_path / "sim"
    assert main(["simulate", "n_frames=2", "fov.shape_px=[16,16]", "-o", str(out), "-q"]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    for f in out.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f.name
    strict_json((out / "metadata.json").read_text())


def test_atomic_outputs_respect_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_write_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("x")
        with atomic_output_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("y")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o750


def test_strict_json_writes_null_for_non_finite_values(tmp_path):
    value = {"a": float("nan"), "b": [np.float32(np.inf), np.int64(3)], "c": np.array([1.5]),
             "d": {"e": -np.inf, "f": np.bool_(True)}}
    text = dumps_strict(value)
    assert strict_json(text) == {"a": None, "b": [None, 3], "c": [1.5],
                                 "d": {"e": None, "f": True}}
    write_json(tmp_path / "s.json", value)
    assert strict_json((tmp_path / "s.json").read_text())["a"] is None
    with pytest.raises(FileExistsError):
        write_json(tmp_path / "s.json", value)
