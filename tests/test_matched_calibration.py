"""A learned localizer's σ scale measured on simulations like the analyzed movie
(:mod:`smlmnet.calibrate.matched`)."""

import dataclasses

import numpy as np

from smlmnet.calibrate.matched import matched_uncertainty_scale
from smlmnet.evaluation.transfer import uncertainty_coverage
from smlmnet.guard import prepare_localizer
from smlmnet.metrics.localization import match_per_frame
from smlmnet.pretrained import load
from smlmnet.simulate import load_config, simulate


def _coverage(truth, est):
    """Fraction of per-axis errors within the reported 1σ, and the matched count."""
    pairs = match_per_frame(truth, est)
    return uncertainty_coverage(truth, est, pairs)[0] / 100.0, len(pairs)


def test_movie_matched_scale_on_a_like_movie():
    """A bare movie (no camera metadata) from smlmnet's own simulator: the scale measured on
    2 simulations built from the movie's self-calibration must give 68.3 % 1σ coverage on the
    movie itself. The binomial standard error of a coverage over n ≈ 600 matched
    localizations (2n correlated axes: √(0.68·0.32/n)) is ≈ 1.9 points; the scale is itself
    estimated from ≈ 2× as many simulated ones, and the preset is not the movie's exact
    configuration (photons, density, motion drawn from calibrated ranges), so we allow 3
    standard errors plus 2 points of preset mismatch: 68.3 ± 8. Detections and positions are
    the model's own (only the uncertainty columns change)."""
    cfg = load_config("sptpalm_membrane", ["n_frames=40", "fov.shape_px=[64,64]", "seed=11"])
    sim = simulate(cfg)
    bare = dataclasses.replace(sim.movie, camera=None)
    truth = sim.emitters[sim.emitters["on"]].reset_index(drop=True)
    loc, _ = prepare_localizer(bare, "decode", model="decode_generalist")
    est = loc.localize(bare)
    record = loc.decision[0]["uncertainty_calibration"]
    assert record["used"] == "movie-matched simulation" and record["matched"] >= 200
    assert 0.5 < record["scale"] < 2.0
    cov, n = _coverage(truth, est)
    assert n > 400
    assert abs(cov - 0.683) < 0.08, (cov, n, record)
    own = load("decode_generalist").localize(bare)
    np.testing.assert_array_equal(own["x [nm]"], est["x [nm]"])
    ratio = est["uncertainty_x [nm]"] / own["uncertainty_x [nm]"]
    assert not np.allclose(ratio, 1.0)  # rescaled ...
    assert np.isfinite(ratio).all() and (ratio > 0).all()  # ... never broken


def test_model_mode_keeps_the_scale_tuned_at_training():
    sim = simulate(load_config("sptpalm_membrane", ["n_frames=4", "fov.shape_px=[32,32]"]))
    bare = dataclasses.replace(sim.movie, camera=None)
    loc, _ = prepare_localizer(bare, "decode", model="decode_generalist",
                               uncertainty="model")
    loc.localize(bare)
    assert "uncertainty_calibration" not in loc.decision[0]
    shipped = load("decode_generalist")
    used = loc.candidates[0]
    assert used.uncertainty_scale_by_p == shipped.uncertainty_scale_by_p
    assert used.threshold == shipped.threshold


def test_failed_simulation_keeps_the_model_scale_and_says_why():
    loc = load("decode_generalist")
    out = matched_uncertainty_scale(loc, {"movie_shape": []})
    assert out["scale"] is None and out["error"]
    assert loc.uncertainty_scale_by_p  # untouched
    assert loc.threshold == loc.info["thresholds"]["threshold"]
