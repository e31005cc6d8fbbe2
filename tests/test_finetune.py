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
    # the threshold was checked on the movie itself, and the choice is recorded
    fit = info["movie_threshold"]
    assert fit["frames"] == 20 and info["thresholds"]["threshold"] == fit["threshold"]
    assert set(fit["counts"]) >= {"0.15", "0.95"} and fit["rule"]
    import json

    check = json.loads((tmp_path / "scope_training" / "movie_check.json").read_text())
    assert check["tuned"] == fit["counts"][f"{fit['threshold']:.2f}"]
    assert check["base"] == fit["base_count"] and check["frames"] == 20
    assert load(model).localize(sim.movie).shape[0] >= 0
    assert main(["analyze", str(movie), "-o", str(tmp_path / "out"), "--model", str(model),
                 "-q"]) == 0


def test_replay_and_preset_shares_of_a_randomization():
    import numpy as np

    base = load_config("decode_sptpalm")
    plain = DomainRandomization()
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert plain.pick(rng) is plain and rng.bit_generator.state == state  # stream unchanged
    r = DomainRandomization(replay_probability=1.0, replay={"psf_sigma_px": [2.0, 2.0]})
    picked = r.pick(rng)
    assert picked.psf_sigma_px == (2.0, 2.0) and picked.replay_probability == 0
    cfg = picked.sample_config(base, rng)
    assert cfg.psf.sigma == pytest.approx(2.0 * base.fov.pixel_size_nm)
    always = DomainRandomization(preset_probability=1.0)
    assert always.sample_config(base, rng) is base  # the anchor preset itself
    # about the configured share of items comes from the replay ranges (binomial, n = 400)
    half = DomainRandomization(replay_probability=0.5, replay={"psf_sigma_px": [2.0, 2.0]})
    n_replay = sum(half.pick(rng) is not half for _ in range(400))
    assert abs(n_replay - 200) < 4 * 10  # 4 standard deviations of Binomial(400, 0.5)


def test_like_experiment_rehearses_the_base_models_randomization(tmp_path):
    import yaml

    from smlmnet.finetune import REPLAY_PROBABILITY, write_experiment

    class Cal:  # the two methods write_experiment reads
        def to_dict(self):
            return {"psf_sigma_nm": 150.0, "background_photons_per_px": 20.0,
                    "camera_model": "emccd"}

        def to_simulation_preset(self, base):
            return {"fov": {"pixel_size_nm": 100.0}}

    path = write_experiment(tmp_path, Cal(), "scope", "decode_generalist", 10, 4, 0)
    rnd = yaml.safe_load(path.read_text())["data"]["randomization"]
    assert rnd["replay_probability"] == REPLAY_PROBABILITY
    assert rnd["replay"]["psf_sigma_px"] == read_info("decode_generalist")[
        "domain_randomization"]["psf_sigma_px"]
    r = DomainRandomization.from_dict(rnd)
    assert r.psf_sigma_px == pytest.approx((1.35, 1.65))  # the narrow band stays the main one


def test_detection_count_check_warns_when_a_threshold_does_not_fit_the_movie(caplog):
    """The same model twice agrees (ratio 1, no warning); a copy whose threshold is far too
    high finds far fewer localizations on the same frames, and the check says so."""
    from smlmnet.finetune import detection_count_check
    from smlmnet.models.registry import load
    from smlmnet.simulate import load_config, simulate

    movie = simulate(load_config("decode_sptpalm", ["n_frames=6", "fov.shape_px=[32,32]",
                                                     "particles.density_per_um2=2.0"])).movie
    base, strict = load("decode_generalist"), load("decode_generalist")
    same = detection_count_check(base, base, movie, max_frames=4)
    assert same["frames"] == 4 and same["base"] > 5
    assert same["ratio"] == 1.0 and same["warning"] is None
    strict.threshold = strict.second_threshold = 0.999
    with caplog.at_level("WARNING"):
        off = detection_count_check(strict, base, movie, max_frames=4)
    assert off["ratio"] < 0.8 and "threshold" in off["warning"]
    assert "fine-tuned model finds" in caplog.text


def test_movie_matched_threshold_keeps_a_fitting_threshold_and_moves_one_that_does_not():
    """Counts fall as the threshold rises. A simulated threshold whose count is within
    COUNT_RATIO_RANGE of the base model's is kept; one that finds half as many is replaced by
    the threshold whose count is nearest the base's; with no anchor (base finds nothing) the
    simulated threshold stays."""
    from smlmnet.finetune import movie_matched_threshold

    counts = {0.2: 400, 0.3: 330, 0.4: 300, 0.5: 240, 0.6: 150}
    assert movie_matched_threshold(counts, 280, 0.4)[0] == 0.4   # 300/280 fits
    th, rule = movie_matched_threshold(counts, 325, 0.6)           # 150/325 does not
    assert th == 0.3 and "0.60" in rule and "325" in rule  # 330 is the nearest count
    assert movie_matched_threshold(counts, 600, 0.5)[0] == 0.2    # as close as the grid gets
    assert movie_matched_threshold(counts, 0, 0.6)[0] == 0.6
    # a movie outside the base model's training ranges: the base is no anchor
    th, rule = movie_matched_threshold(counts, 325, 0.6, ["psf_sigma_px = 3 px is outside"])
    assert th == 0.6 and "no anchor" in rule and "psf_sigma_px" in rule
    # equal counts: the threshold nearest the simulated one
    assert movie_matched_threshold({0.3: 200, 0.5: 200, 0.9: 10}, 200, 0.9)[0] == 0.5


def test_fit_threshold_to_movie_counts_are_those_of_the_localizer_at_each_threshold():
    """One pass at the lowest threshold gives the same counts as localizing at each threshold
    (a higher threshold keeps exactly the detections whose p exceeds it)."""
    from smlmnet.finetune import fit_threshold_to_movie
    from smlmnet.models.registry import load, model_dir

    movie = simulate(load_config("decode_sptpalm", ["n_frames=5", "fov.shape_px=[32,32]",
                                                     "particles.density_per_um2=2.0"])).movie
    base = load("decode_generalist")
    fit = fit_threshold_to_movie(model_dir("decode_generalist"), base, movie, max_frames=4)
    assert fit["frames"] == 4 and fit["base_count"] > 5
    part = movie.first_frames(4)
    for t in (0.15, 0.55, 0.8):
        direct = load("decode_generalist", threshold=t, second_threshold=t).localize(part)
        assert fit["counts"][f"{t:.2f}"] == len(direct)
    assert fit["threshold"] == fit["simulation_threshold"]  # the base against itself fits
    assert fit["base_problems"] == []  # no calibration given: nothing held against the base


def test_the_base_is_no_anchor_for_a_movie_outside_its_ranges():
    """The range check that decides whether the base model's count may move a threshold uses
    the training ranges without slack; the guard's fallback decision keeps its slack."""
    from smlmnet.guard import RANGE_SLACK, range_problems

    ranges = {"psf_sigma_px": [0.6, 2.5]}
    just_outside = {"psf_sigma_px": 2.5 * (1 + RANGE_SLACK / 2)}
    assert range_problems(just_outside, ranges) == []
    assert "psf_sigma_px" in range_problems(just_outside, ranges, slack=0.0)[0]
    assert range_problems({"psf_sigma_px": 2.4}, ranges, slack=0.0) == []
