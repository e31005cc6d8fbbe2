"""Configs, presets, reproducibility, saving/loading and bad input."""

import dataclasses
import hashlib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from smlmnet.io import OutputExistsError, read_movie_tiff
from smlmnet.simulate import (
    ConfigError,
    SimulationConfig,
    list_presets,
    load_config,
    load_dataset,
    save_dataset,
    simulate,
)

TINY = ["n_frames=4", "fov.shape_px=[24,24]"]


def digest(result) -> str:
    h = hashlib.sha256(result.movie.frames.tobytes())
    h.update(pd.util.hash_pandas_object(result.emitters).values.tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_loads_and_simulates(preset):
    res = simulate(load_config(preset, TINY))
    assert res.movie.shape == (4, 24, 24)
    assert res.movie.frames.dtype == np.uint16


def test_required_presets_exist():
    assert {"sptpalm_membrane", "dense", "andi2_video"} <= set(list_presets())
    andi = load_config("andi2_video")
    assert andi.fov.shape_px == (128, 128) and andi.fov.pixel_size_nm == 100
    assert andi.frame_time_s == 0.1 and andi.illumination == "stroboscopic"
    assert andi.camera.model == "poisson" and andi.background.photons_per_px == 100
    spt = load_config("sptpalm_membrane")
    assert spt.camera.model == "emccd" and 0.01 <= spt.frame_time_s <= 0.03


def test_same_seed_same_bytes_other_seed_differs():
    cfg = load_config("demo", TINY)
    assert digest(simulate(cfg)) == digest(simulate(cfg))
    assert digest(simulate(dataclasses.replace(cfg, seed=cfg.seed + 1))) != digest(simulate(cfg))


def test_save_load_roundtrip_and_regeneration(tmp_path):
    cfg = load_config("sptpalm_membrane", ["n_frames=30", "fov.shape_px=[32,40]"])
    res = simulate(cfg)
    save_dataset(res, tmp_path / "ds")
    back = load_dataset(tmp_path / "ds")
    assert np.array_equal(back.movie.frames, res.movie.frames)
    assert back.movie.pixel_size_nm == 100.0 and back.movie.frame_time_s == 0.02
    assert back.movie.camera["em_gain"] == 300.0
    pd.testing.assert_frame_equal(back.emitters, res.emitters, check_dtype=False,
                                  check_exact=True)
    pd.testing.assert_frame_equal(back.tracks, res.tracks, check_dtype=False, check_exact=True)
    assert back.config == cfg
    # the saved config regenerates the same bytes
    again = simulate(load_config(tmp_path / "ds" / "config.yaml"))
    assert digest(again) == digest(res)


def test_tiff_opens_with_imagej_calibration(tmp_path):
    res = simulate(load_config("demo", TINY))
    save_dataset(res, tmp_path / "ds")
    with tifffile.TiffFile(tmp_path / "ds" / "movie.tif") as tif:
        assert tif.is_imagej
        ij = tif.imagej_metadata
        assert ij["unit"] == "um" and ij["finterval"] == pytest.approx(0.02)
        assert ij["frames"] == 4
        num, den = tif.pages[0].tags["XResolution"].value
        assert den / num == pytest.approx(0.1)  # µm per pixel
    # a plain ImageJ TIFF (no smlmnet metadata) gives the calibration from its tags
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, res.movie.frames, imagej=True, resolution=(1 / 0.16, 1 / 0.16),
                     metadata={"axes": "TYX", "unit": "um", "finterval": 0.03})
    movie = read_movie_tiff(plain)
    assert movie.pixel_size_nm == pytest.approx(160.0) and movie.frame_time_s == 0.03


def test_refuses_to_overwrite(tmp_path):
    res = simulate(load_config("demo", TINY))
    save_dataset(res, tmp_path / "ds")
    before = (tmp_path / "ds" / "movie.tif").read_bytes()
    with pytest.raises(OutputExistsError, match="already exists"):
        save_dataset(res, tmp_path / "ds")
    assert (tmp_path / "ds" / "movie.tif").read_bytes() == before
    (tmp_path / "empty").mkdir()
    save_dataset(res, tmp_path / "empty")  # an empty folder is fine
    assert not list(tmp_path.glob(".*partial"))


@pytest.mark.parametrize("override, message", [
    ("particles.motions.0.D_um2_s=-0.1", r"D_um2_s must be >= 0"),
    ("particles.motions=[{model: fbm, alpha: 2.0}]", r"alpha must be < 2"),
    ("particles.motions=[{model: fbm, alpha: 0}]", r"alpha must be > 0"),
    ("particles.motions=[{model: fbm, alpha: {low: 0.5, high: 2.5}}]", r"alpha must be < 2"),
    ("exposure_time_s=0.05", r"longer than the frame interval"),
    ("fov.shape_px=[0,64]", r"fov.shape_px\[0\] \(height\) must be an integer >= 1"),
    ("fov.pixel_size_nm=0", r"pixel_size_nm must be > 0"),
    ("camera.model=ccd", r"camera.model: 'ccd' is not one of"),
    ("camera.qe=1.5", r"quantum efficiency"),
    ("particles.motions=[{model: levy}]", r"model: 'levy' is not one of"),
    ("particles.motions=[{model: brownian, D: 1}]", r"unknown key\(s\) \['D'\]"),
    ("particles.motions=[{model: multistate, states: [{D_um2_s: 1}, {D_um2_s: 0}], "
     "transition_matrix: [[0.9, 0.2], [0.1, 0.9]]}]", r"rows must be probabilities"),
    ("photophysics.blink_off_frames=null", r"give both blink_on_frames and blink_off_frames"),
    ("n_frames=0", r"n_frames must be an integer >= 1"),
    ("seed=-1", r"seed must be an integer >= 0"),
    ("particles.motions.0.D_um2_s={low: 1, high: 0.1}", r"high=0.1 is smaller than low=1"),
])
def test_bad_values_name_the_problem(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("demo", [override])


def test_unknown_preset_and_keys():
    with pytest.raises(ConfigError, match="unknown simulation preset.*presets: "):
        load_config("no_such_preset")
    with pytest.raises(ConfigError, match="no config key 'camera.gain'"):
        load_config("demo", ["camera.gain=3"])
    with pytest.raises(ConfigError, match="unknown key"):
        SimulationConfig.from_dict({"frames": 10})


def test_inexact_exposure_warns_and_records_effective_exposure():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = load_config("demo", TINY + ["exposure_time_s=0.015", "substeps=5"])
    assert any("not a whole number of sub-steps" in str(w.message) for w in caught)
    with pytest.warns(UserWarning, match="sub-steps"):
        res = simulate(cfg)
    assert res.metadata["effective_exposure_s"] == pytest.approx(0.016)  # 4 of 5 sub-steps


def test_movie_contract_rejects_bad_arrays():
    from smlmnet.data.contracts import Movie

    with pytest.raises(ValueError, match=r"shape \(T, H, W\)"):
        Movie(np.zeros((4, 4)), 100, 0.01)
    with pytest.raises(ValueError, match="empty"):
        Movie(np.zeros((0, 4, 4)), 100, 0.01)
    with pytest.raises(ValueError, match="NaN"):
        Movie(np.full((1, 4, 4), np.nan), 100, 0.01)
    with pytest.raises(ValueError, match="pixel_size_nm"):
        Movie(np.zeros((1, 4, 4)), -1, 0.01)


def test_read_movie_rejects_non_tiff_and_missing_calibration(tmp_path):
    bad = tmp_path / "notes.tif"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="not a readable TIFF"):
        read_movie_tiff(bad)
    raw = tmp_path / "raw.tif"
    # grey frames (tifffile's default would store 3 planes as planar RGB, refused as colour)
    tifffile.imwrite(raw, np.zeros((3, 8, 8), np.uint16), photometric="minisblack")
    with pytest.raises(ValueError, match="pixel size"):
        read_movie_tiff(raw)
    assert read_movie_tiff(raw, pixel_size_nm=100, frame_time_s=0.01).shape == (3, 8, 8)
    four_d = tmp_path / "4d.tif"
    tifffile.imwrite(four_d, np.zeros((2, 3, 8, 8), np.uint16), photometric="minisblack")
    with pytest.raises(ValueError, match=r"expected a single-channel movie"):
        read_movie_tiff(four_d, pixel_size_nm=100, frame_time_s=0.01)


def test_parameter_specs_sample_their_distributions(rng):
    from smlmnet.simulate.params import sample_param

    n = 20000
    u = sample_param({"low": 0.01, "high": 1.0, "log": True}, rng, n)
    assert u.min() >= 0.01 and u.max() <= 1.0
    # log-uniform: log10 is uniform on [-2, 0] with std 2/√12
    assert abs(np.log10(u).mean() + 1) < 5 * (2 / np.sqrt(12)) / np.sqrt(n)
    g = sample_param({"mean": 1031.0, "std": 41.0}, rng, n)
    assert abs(g.mean() - 1031) < 5 * 41 / np.sqrt(n) and abs(g.std() / 41 - 1) < 0.03
    c = sample_param({"choices": [1, 2], "p": [0.25, 0.75]}, rng, n)
    assert set(np.unique(c)) == {1.0, 2.0} and abs((c == 2).mean() - 0.75) < 0.02
    with pytest.raises(ConfigError, match="std must be >= 0"):
        load_config("demo", ["photophysics.photons_per_frame={mean: 10, std: -1}"])


def test_presets_compose_as_a_hydra_group():
    from hydra import compose, initialize_config_dir

    from smlmnet.simulate.config import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        cfg = compose(overrides=["+simulation=dense", "simulation.n_frames=7"])
    sim = SimulationConfig.from_dict(cfg.simulation)
    assert sim.n_frames == 7 and sim == load_config("dense", ["n_frames=7"])


def test_preset_defaults_list_is_honoured(tmp_path):
    """A preset that starts from another (``defaults: [dense, _self_]``) gets every key of
    the base and its own changes on top; a cycle is an error."""
    (tmp_path / "mine.yaml").write_text("defaults: [dense, _self_]\nn_frames: 7\n")
    assert load_config(tmp_path / "mine.yaml") == load_config("dense", ["n_frames=7"])
    (tmp_path / "loop.yaml").write_text(f"defaults: [{tmp_path / 'loop.yaml'}]\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "loop.yaml")


def test_presets_ship_inside_the_package():
    import smlmnet
    from smlmnet.simulate.config import config_dir, list_presets

    assert config_dir() == Path(smlmnet.__file__).parent / "configs"
    assert {"sptpalm_membrane", "dense", "decode_sptpalm"} <= set(list_presets())
