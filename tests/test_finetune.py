"""train-localizer --like: calibrate → simulate like the movie → fine-tune → model folder."""

import pytest

from smlmnet.cli import main
from smlmnet.finetune import like_movie_randomization
from smlmnet.pretrained import load, read_info
from smlmnet.simulate import load_config, save_dataset, simulate
from smlmnet.simulate.randomize import DomainRandomization


def test_randomization_is_centred_on_the_calibration():
    cal = {"psf_sigma_nm": 150.0, "photons_percentiles": {"p10": 400.0, "p90": 2000.0},
           "background_photons_per_px": 20.0, "density_per_um2_per_frame": 0.5,
           "camera_model": "emccd", "flags": {"clipped_low": True}}
    r = DomainRandomization.from_dict(like_movie_randomization(cal, pixel_size_nm=100.0))
    assert r.psf_sigma_px == pytest.approx((1.35, 1.65))
    assert r.photons == (80.0, 4000.0) and r.background_photons_per_px == (10.0, 40.0)
    assert r.cameras == {"emccd": 1.0} and r.eight_bit_probability > 0
    assert r.offset_subtracted_probability == 0


def test_train_localizer_like_writes_a_model_folder_that_analyze_uses(tmp_path, capsys):
    sim = simulate(load_config("sptpalm_membrane", ["n_frames=20", "fov.shape_px=[48,48]"]))
    save_dataset(sim, tmp_path / "sim")
    movie = tmp_path / "sim" / "movie.tif"
    model = tmp_path / "scope"
    assert main(["train-localizer", "--like", str(movie), "-o", str(model), "--steps", "2",
                 "--workers", "0", "--base-model", "decode_sptpalm", "data.val_items=8",
                 "data.batch_size=4"]) == 0
    info = read_info(model)
    assert info["kind"] == "localizer" and info["initialized_from"] == "decode_sptpalm"
    # the training ranges are the calibrated movie's, not the base model's
    lo, hi = info["training_ranges"]["psf_sigma_px"]
    assert lo < 1.1 < hi and hi - lo < 0.4
    assert "like_movie" in info["training_command"]
    assert load(model).localize(sim.movie).shape[0] >= 0
    assert main(["analyze", str(movie), "-o", str(tmp_path / "out"), "--model", str(model),
                 "-q"]) == 0
