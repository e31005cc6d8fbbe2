"""smlmnet.calibrate: camera gain/offset, PSF σ, flags and presets from the movie itself.

Tolerances. The gain is the slope of variance vs mean over ~40 bins of background pixels;
the standard error of a variance from n samples is var·sqrt(2/(n−1)), so with N ≈ 10⁵
background samples spread over a lever arm from ~0 to the top level the slope's relative SE
is ≈ sqrt(2/N)·(a few) ≈ 0.4 % (measured over 6 seeds: errors ≤ 0.6 %): 5 % is > 10 SE.
The offset from the third cumulant has SE ≈ sqrt(6·var³/n)/(c3·s²) per pixel, ≈ 3 ADU for
the dimmest (~1 photon) pixels, so ≈ 0.4–0.6 ADU over the ~40 dimmest pixels (measured over
6 seeds: errors ≤ 1.2 ADU): 2 ADU is ≈ 4 SE. The median σ of bright spots whose individual
σ scatter by ~5 % has an SE of ≈ 1.25·5 %/√n_molecules, ≈ 1–2 % for the handful of
stationary molecules here; 5 % also covers the small widening of slow molecules by blur.
Every test also checks the reported SE is consistent with the error (within 5 SE + slack).
"""

import json

import numpy as np
import pytest
import yaml

from smlmnet.calibrate import Calibration, calibrate_movie
from smlmnet.cli import main
from smlmnet.data.contracts import Movie
from smlmnet.simulate import load_config, save_dataset, simulate

CAMERAS = {
    # sCMOS: 0.5 e-/ADU (2 ADU per e-), 1.6 e- read noise -> offset and read noise are
    # degenerate in the variance line (bias 5 ADU if read noise were ignored)
    "scmos": ["camera.model=scmos", "camera.e_per_adu=0.5", "camera.read_noise_e=1.6",
              "camera.baseline_adu=100", "camera.em_gain=1", "camera.spurious_charge=0",
              "camera.qe=0.9"],
    # EMCCD, SMLM-2016-like: 45 e-/ADU, EM gain 300 -> 0.15 e-/ADU effective
    "emccd": ["camera.model=emccd"],
}


def _config(camera: str, seed: int, bg: float = 500.0, variation: float = 0.998,
            pattern: str = "gradient", extra=()):
    ov = [f"seed={seed}", "n_frames=100", "fov.shape_px=[64,64]",
          f"background.photons_per_px={bg}", f"background.pattern={pattern}",
          f"background.variation={variation}", "particles.density_per_um2=0.1",
          "photophysics.activation=start", "photophysics.bleach_lifetime_frames=null",
          "photophysics.photons_per_frame=2000", "psf.sigma_nm=120",
          "particles.motions=[{model: immobile, weight: 0.5}, "
          "{model: brownian, weight: 0.5, D_um2_s: 0.3}]", *CAMERAS[camera], *extra]
    return load_config("sptpalm_membrane", ov)


@pytest.fixture(scope="module")
def sims():
    out = {}
    for cam in CAMERAS:
        out[cam] = simulate(_config(cam, seed=3))
    return out


def _truth(cfg):
    c = cfg.camera
    em = c.em_gain if c.model == "emccd" else 1.0
    return c.e_per_adu / em, c.baseline_adu


@pytest.mark.parametrize("camera", list(CAMERAS))
def test_recovers_gain_offset_and_psf_sigma(sims, camera):
    """Background from ~1 to ~1000 photons/px (gradient), no camera metadata used."""
    r = sims[camera]
    movie = Movie(r.movie.frames, r.movie.pixel_size_nm, r.movie.frame_time_s)
    cal = calibrate_movie(movie, camera)
    e_true, off_true = _truth(r.config)
    assert cal.gain_source.startswith("movie") and cal.offset_source.startswith("movie")
    assert abs(cal.e_per_adu / e_true - 1) < 0.05
    assert abs(cal.e_per_adu / e_true - 1) < 5 * cal.gain_rel_se + 0.01
    assert abs(cal.offset_adu - off_true) < 2.0
    assert abs(cal.offset_adu - off_true) < 5 * cal.offset_se_adu + 0.3
    assert abs(cal.psf_sigma_nm / 120.0 - 1) < 0.05
    assert abs(cal.psf_sigma_nm - 120.0) < 5 * cal.psf_sigma_se_nm + 1.0
    assert cal.n_psf_spots >= 20 and "stationary" in cal.psf_sigma_selection
    assert not any(cal.flags.values())
    # background level (photons/px, QE unknown -> photo-electrons): truth × QE
    qe = r.config.camera.qe
    assert cal.background_photons_per_px == pytest.approx(
        r.background_photons.mean() * qe, rel=0.05)
    # read noise variance (ADU², rounding's 1/12 included), within its reported SE
    c = r.config.camera
    rv_true = (c.read_noise_e / c.e_per_adu) ** 2 + 1 / 12
    assert abs(cal.read_var_adu2 - rv_true) < 5 * cal.read_var_se_adu2 + 0.5
    d = cal.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["photon_transfer"]["r2"] > 0.99


def test_emccd_declared_as_scmos_is_noticed(sims):
    r = sims["emccd"]
    cal = calibrate_movie(Movie(r.movie.frames, 100.0, 0.02), "scmos")
    # the slope is F·g: declaring sCMOS doubles the gain ...
    assert cal.e_per_adu == pytest.approx(_truth(r.config)[0] / 2, rel=0.05)
    # ... and the noise skewness says so
    assert any("EMCCD" in w for w in cal.warnings)


def test_uniform_background_gain_is_unidentifiable():
    cfg = _config("scmos", seed=1, bg=20.0, variation=0.0, pattern="uniform")
    r = simulate(cfg)
    cal = calibrate_movie(Movie(r.movie.frames, 100.0, 0.02), "scmos")
    assert cal.gain_adu_per_e is None and cal.gain_source == "unidentifiable"
    assert any("--e-per-adu" in w for w in cal.warnings)
    assert any("--baseline-adu" in w for w in cal.warnings)
    json.dumps(cal.to_dict(), allow_nan=False)
    # with the metadata's camera it falls back to it and says so
    cal = calibrate_movie(r.movie, "scmos")
    assert cal.gain_source == "metadata" and cal.offset_source == "metadata"


def test_clipped_8bit_movie_is_flagged(sims):
    r = sims["scmos"]
    frames = np.clip(r.movie.frames, 0, 255).astype(np.uint8)
    cal = calibrate_movie(Movie(frames, 100.0, 0.02), "scmos")
    assert cal.flags["clipped_high"] and not cal.flags["not_in_counts"]
    assert any("full scale 255" in w for w in cal.warnings)


def test_background_subtracted_movie_is_flagged():
    r = simulate(_config("scmos", seed=2, bg=3.0, variation=0.5))
    sub = np.clip(r.movie.frames.astype(float) - 100.0, 0, None).astype(np.uint16)
    cal = calibrate_movie(Movie(sub, 100.0, 0.02), "scmos")
    assert cal.flags["background_subtracted"] and cal.flags["clipped_low"]
    assert any("subtracted" in w for w in cal.warnings)


def test_float_movie_with_tiny_variance_is_not_in_counts(sims):
    r = sims["scmos"]
    frames = (r.movie.frames.astype(np.float32) / 1000.0)
    cal = calibrate_movie(Movie(frames, 100.0, 0.02), "scmos")
    assert cal.flags["not_in_counts"]
    assert any("not in camera counts" in w for w in cal.warnings)
    raw = calibrate_movie(Movie(r.movie.frames, 100.0, 0.02), "scmos")
    assert not raw.flags["not_in_counts"]


def test_preset_loads_and_reproduces_background(sims, tmp_path):
    r = sims["emccd"]
    cal = calibrate_movie(r.movie)  # camera model, EM gain and QE from the metadata
    assert cal.camera_model_source == "metadata" and cal.qe_source == "metadata"
    preset = cal.to_simulation_preset()
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(preset))
    cfg = load_config(path, ["n_frames=40"])
    assert cfg.camera.model == "emccd"
    assert cfg.camera.e_per_adu == pytest.approx(45.0, rel=0.05)
    assert cfg.camera.baseline_adu == pytest.approx(100.0, abs=2.0)
    assert cfg.psf.sigma == pytest.approx(120.0, rel=0.05)
    assert cfg.fov.shape_px == (64, 64)
    sim2 = simulate(cfg)
    assert sim2.background_photons.mean() == pytest.approx(cal.background_photons_per_px,
                                                            rel=0.02)
    cal2 = calibrate_movie(sim2.movie)
    assert cal2.background_photons_per_px == pytest.approx(cal.background_photons_per_px,
                                                           rel=0.1)


def test_cli_writes_three_files(sims, tmp_path, capsys):
    from smlmnet.simulate.movie import SimulationResult

    r = sims["emccd"]
    small = SimulationResult(
        Movie(r.movie.frames[:30], 100.0, 0.02, r.movie.exposure_time_s, r.movie.camera),
        r.emitters, r.tracks, r.config, r.metadata, r.trajectories, r.background_photons)
    save_dataset(small, tmp_path / "ds")
    movie = tmp_path / "ds" / "movie.tif"
    from smlmnet.io.tiff import tiff_psf_sigma_nm

    assert tiff_psf_sigma_nm(movie) == pytest.approx(120.0)
    assert main(["calibrate", str(movie)]) == 0
    out = tmp_path / "ds" / "movie_calibration"
    assert sorted(p.name for p in out.iterdir()) == ["calibration.json", "calibration.png",
                                                     "preset.yaml"]

    def no_nan(x):
        raise ValueError(x)

    d = json.loads((out / "calibration.json").read_text(), parse_constant=no_nan)
    assert d["camera_model"] == "emccd" and d["psf_sigma_metadata_nm"] == pytest.approx(120)
    assert load_config(out / "preset.yaml").camera.model == "emccd"
    text = capsys.readouterr().out
    assert "PSF sigma" in text and "wrote" in text
    assert main(["calibrate", str(movie)]) == 2  # never overwrites
    assert main(["calibrate", str(movie), "-o", str(tmp_path / "c2"), "--camera", "scmos",
                 "--baseline-adu", "100"]) == 0
    assert json.loads((tmp_path / "c2" / "calibration.json").read_text())[
        "offset_source"] == "user"


def test_to_dict_is_strict_json():
    cal = Calibration(gain_adu_per_e=float("nan"), photon_transfer={"x": np.float64(np.inf)},
                      movie_shape=[1, 2, 3])
    d = cal.to_dict()
    assert d["gain_adu_per_e"] is None and d["photon_transfer"]["x"] is None
    json.dumps(d, allow_nan=False)


def test_analyze_takes_psf_sigma_from_tiff(sims, tmp_path, capsys):
    import tifffile

    from smlmnet.io.tiff import tiff_psf_sigma_nm, write_movie_tiff

    r = sims["emccd"]
    movie = Movie(r.movie.frames[:20], 100.0, 0.02, None, r.movie.camera)
    path = write_movie_tiff(tmp_path / "m.tif", movie, psf_sigma_nm=117.0)
    assert tiff_psf_sigma_nm(path) == pytest.approx(117.0)
    assert main(["analyze", str(path), "--localizer", "mle", "-o", str(tmp_path / "a")]) == 0
    assert "PSF sigma 117 nm from the TIFF metadata" in capsys.readouterr().out
    # files written before the PSF σ had its own key: found under "metadata"
    old = tmp_path / "old.tif"
    info = {"pixel_size_nm": 100.0, "frame_time_s": 0.02, "camera": r.movie.camera,
            "metadata": {"psf_sigma_nm": 111.0}}
    tifffile.imwrite(old, movie.frames, imagej=True,
                     metadata={"axes": "TYX", "smlmnet": json.dumps(info)})
    assert tiff_psf_sigma_nm(old) == pytest.approx(111.0)
    # no σ anywhere: measured from the movie itself (true 120 nm), and the log says so ...
    bare = tmp_path / "bare.tif"
    tifffile.imwrite(bare, movie.frames)
    assert tiff_psf_sigma_nm(bare) is None
    assert main(["analyze", str(bare), "--localizer", "mle", "--pixel-size-nm", "100",
                 "--frame-time-s", "0.02", "-o", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "from the movie itself" in out
    sigma = float(out.split("PSF sigma ")[1].split(" nm")[0])
    assert abs(sigma / 120.0 - 1) < 0.05
    # ... or, without self-calibration, the default
    assert main(["analyze", str(bare), "--localizer", "mle", "--pixel-size-nm", "100",
                 "--frame-time-s", "0.02", "--calibrate", "never",
                 "-o", str(tmp_path / "c")]) == 0
    assert "PSF sigma 130 nm from the default" in capsys.readouterr().out
