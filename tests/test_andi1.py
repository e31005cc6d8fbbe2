"""AnDi 1 motion models (smlmnet.simulate.andi1) against theory.

MSD-exponent tolerances. The ensemble MSD ⟨r²(t)⟩ of 1000 trajectories of 1000 frames is
fitted log–log over 10 lags log-spaced in 50–999 frames. Two error sources bound |α̂ − α|:
- sampling: for the Gaussian models (fBM, SBM) the fitted exponent varies by ≈ 0.01–0.02
  between seeds at this N; for the heavy-tailed renewal models (ATTM, CTRW, LW) a few very long
  waits/flights dominate and the seed-to-seed std is ≈ 0.03–0.05 (measured over seeds 0–2);
- pre-asymptotic bias: the renewal models reach t^α only for α·ln t ≫ 1 (CTRW, ATTM) or with
  t^{α−3}-type corrections (LW, up to ≈ 0.1 at α = 1.7 in this lag window).
Hence 0.05 for fBM/SBM (≈ 3 sampling std) and 0.15 for ATTM/CTRW/LW (≈ 3 std + the bias), at
interior α where the asymptote is reachable (near α → 0 or the regime borders the exponent in
any finite window differs, e.g. CTRW α = 0.05 has E n(t) ∝ ln t over 10–10³ frames).
"""

import numpy as np
import pytest

from smlmnet.simulate import andi1 as A

LAGS = np.unique(np.round(np.logspace(np.log10(50), np.log10(999), 10)).astype(int))


def _emsd_exponent(x: np.ndarray) -> float:
    e = [np.mean(np.sum((x[:, t] - x[:, 0]) ** 2, -1)) for t in LAGS]
    return float(np.polyfit(np.log(LAGS), np.log(e), 1)[0])


@pytest.mark.parametrize("model,alpha,tol", [
    ("fbm", 0.3, 0.05), ("fbm", 1.5, 0.05), ("sbm", 0.3, 0.05), ("sbm", 1.5, 0.05),
    ("ctrw", 0.5, 0.15), ("ctrw", 0.8, 0.15), ("attm", 0.3, 0.15), ("attm", 0.7, 0.15),
    ("lw", 1.3, 0.15), ("lw", 1.7, 0.15)])
def test_ensemble_msd_exponent(model, alpha, tol):
    x = A.simulate_model(np.random.default_rng(1), model, alpha, 1000, 1000)
    assert x.shape == (1000, 1000, 2) and np.isfinite(x).all()
    assert abs(_emsd_exponent(x) - alpha) < tol


def test_fbm_time_averaged_msd_exponent():
    # fBM is ergodic: the time-averaged MSD has the same exponent (lags 1..10 of 200 frames)
    x = A.simulate_model(np.random.default_rng(2), "fbm", 0.6, 500, 200)
    lags = np.arange(1, 11)
    ta = [np.mean(np.sum((x[:, l:] - x[:, :-l]) ** 2, -1)) for l in lags]
    assert abs(np.polyfit(np.log(lags), np.log(ta), 1)[0] - 0.6) < 0.03


def test_ctrw_waiting_time_tail():
    # Pareto waiting times P(τ > t) = t^-α (t ≥ 1): the MLE α̂ = n / Σ ln τ has std α/√n
    alpha, n = 0.6, 200
    _, tau = A.ctrw(np.random.default_rng(3), alpha, n, 100, return_waiting_times=True)
    tau = tau.ravel()
    assert tau.min() >= 1.0
    est = tau.size / np.log(tau).sum()
    assert abs(est - alpha) < 5 * alpha / np.sqrt(tau.size)
    # and the survival function at t = 10, 100 (binomial std ≤ 0.5/√n·... ≪ 0.01)
    for t in (10.0, 100.0):
        assert abs(np.mean(tau > t) - t ** -alpha) < 0.01


def test_ctrw_positions_only_change_at_jumps():
    x = A.ctrw(np.random.default_rng(4), 0.3, 50, 300)
    moves = np.any(np.diff(x, axis=1) != 0, axis=-1)
    assert moves.mean() < 0.5          # long waits: most frames without a jump


def test_levy_walk_moves_at_constant_speed_between_turns():
    x = A.levy_walk(np.random.default_rng(5), 1.8, 20, 200, speed=2.0)
    step = np.linalg.norm(np.diff(x, axis=1), axis=-1)
    assert step.max() <= 2.0 + 1e-9        # a frame never covers more than the speed
    assert np.mean(np.isclose(step, 2.0)) > 0.5   # most frames lie inside one flight


def test_alpha_ranges_and_seeding():
    with pytest.raises(ValueError, match="alpha must lie"):
        A.simulate_model(np.random.default_rng(0), "ctrw", 1.5, 2, 10)
    with pytest.raises(ValueError, match="unknown"):
        A.simulate_model(np.random.default_rng(0), "foo", 0.5, 2, 10)
    a = A.simulate_model(np.random.default_rng(7), "attm", 0.5, 3, 50)
    b = A.simulate_model(np.random.default_rng(7), "attm", 0.5, 3, 50)
    np.testing.assert_array_equal(a, b)
    assert list(A.alpha_grid("lw")[[0, -1]]) == [1.05, 2.0]
    assert list(A.alpha_grid("ctrw")[[0, -1]]) == [0.05, 1.0]


def test_andi1_batch_normalization_and_labels():
    rng = np.random.default_rng(8)
    b = A.andi1_batch(rng, 400, 300, noise_levels=(0.0,))
    assert b["positions"].shape == (400, 300, 2)
    assert set(np.unique(b["model"])) == set(range(5))
    np.testing.assert_allclose(b["positions"][:, 0], 0.0)
    # without noise and scale, AnDi 1's normalization gives unit step std per dimension
    # (a CTRW without any jump in its T frames stays at 0: nothing to normalize)
    std = np.diff(b["positions"], axis=1).std(axis=1)
    still = (std == 0).all(axis=1)
    assert still.mean() < 0.1 and set(b["model"][still]) <= {A.MODELS.index("ctrw"),
                                                             A.MODELS.index("attm")}
    np.testing.assert_allclose(std[~still], 1.0, rtol=1e-9)
    for j, m in enumerate(A.MODELS):
        lo, hi = A.ALPHA_RANGES[m]
        a = b["alpha"][b["model"] == j]
        assert a.min() >= lo - 1e-9 and a.max() <= hi + 1e-9
    fb = b["model"] == A.MODELS.index("fbm")
    assert np.isfinite(b["logK"][fb]).all() and np.isnan(b["logK"][~fb]).all()
    # K of the normalized fBM: per-dimension step variance 2K = 1 → ln K ≈ ln 0.5
    assert abs(np.median(b["logK"][fb]) - np.log(0.5)) < 0.05
    # noise σ in units of the step std: the lag-1 displacement variance grows by 2σ²
    c = A.andi1_batch(np.random.default_rng(9), 300, 300, models=("sbm",),
                      noise_levels=(1.0,))
    var = np.diff(c["positions"], axis=1).var(axis=1).mean()
    assert abs(var - 3.0) < 0.15


def test_andi1_batch_full_length_cuts_after_the_noise():
    # SBM with α = 2: the first 50 of 1000 steps are far smaller than the 1000-step std, so
    # noise σ = 1 (relative to the long trajectory) dominates the kept part
    kw = dict(models=("sbm",), noise_levels=(1.0,))
    a = A.andi1_batch(np.random.default_rng(0), 50, 50, **kw)
    b = A.andi1_batch(np.random.default_rng(0), 50, 50, full_length=1000, **kw)
    assert a["positions"].shape == b["positions"].shape == (50, 50, 2)
    sbm2 = b["alpha"] >= 1.5
    lag1 = lambda x: np.diff(x, axis=1).var(axis=1).mean(axis=1)  # noqa: E731
    # pure noise: lag-1 variance 2σ² = 2 and strongly anticorrelated steps
    assert abs(np.median(lag1(b["positions"][sbm2])) - 2.0) < 0.3
    assert np.median(lag1(a["positions"][a["alpha"] >= 1.5])) > 2.5
