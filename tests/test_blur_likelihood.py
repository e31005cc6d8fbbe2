"""The motion-blur likelihood estimator: its distributions against simulation, its track
likelihood against a dense Gaussian, what the widths add, and the movie interface."""

import re

import numpy as np
import pytest
from scipy import stats

from smlmnet.data import contracts as C
from smlmnet.diffusion.blur_likelihood import (
    BlurLikelihoodEstimator,
    gyration_eigenvalues,
    hypoexp_normal_logpdf,
    track_loglik,
)
from smlmnet.diffusion.mivit.targets import TubeletSimulator
from smlmnet.diffusion.tubelets import PIXEL_D, log_d_px_to_um2_s

MICROSCOPE = dict(frame_time_s=0.02, pixel_size_nm=100.0, psf_sigma_px=1.3, photons=1000.0,
                  background_photons_per_px=20.0, halo_fraction=0.0, camera="scmos",
                  localizer_excess=1.0)


@pytest.mark.parametrize("n", [1, 2, 4, 8, 32])
def test_gyration_eigenvalues_sum_to_the_mean_gyration_of_a_random_walk(n):
    mu = gyration_eigenvalues(n)
    assert len(mu) == max(n - 1, 0) and np.all(mu > 0)
    np.testing.assert_allclose(mu.sum(), (n * n - 1) / (6 * n), rtol=1e-12)
    if n > 1:  # and the second moment of a simulated walk's gyration: Var = 2 Σ μ²
        rng = np.random.default_rng(n)
        x = np.cumsum(rng.normal(size=(200_000, n)), axis=1)
        g = x.var(axis=1)
        # 200 000 draws: the sample variance's relative s.e. is ≈ √(κ−1)/√n < 1 %; 4 % ≈ 5 s.e.
        np.testing.assert_allclose(g.var(), 2 * np.sum(mu**2), rtol=0.04)


def test_hypoexponential_density_integrates_to_one_and_matches_samples():
    rng = np.random.default_rng(0)
    means = 0.7 * gyration_eigenvalues(8)[:6]
    var = 0.03
    z = np.linspace(-1.5, 12.0, 6001)
    pdf = np.exp(hypoexp_normal_logpdf(z, means, np.full_like(z, var)))
    cdf = np.cumsum(pdf) * (z[1] - z[0])
    assert abs(cdf[-1] - 1.0) < 2e-3
    n = 20_000
    draws = rng.exponential(size=(n, len(means))) @ means + rng.normal(0, np.sqrt(var), n)
    emp = np.searchsorted(np.sort(draws), z) / n
    # Dvoretzky–Kiefer–Wolfowitz: sup|F_n − F| ≤ √(ln(2/α)/2n) = 0.012 at α = 1e-3
    assert np.max(np.abs(emp - cdf)) < np.sqrt(np.log(2 / 1e-3) / (2 * n)) + 2e-3


def test_track_likelihood_equals_the_dense_gaussian_with_a_gap():
    rng = np.random.default_rng(1)
    T, D, R = 7, 0.8, 1 / 6
    pos = rng.normal(size=(1, T, 2)).cumsum(1)
    s2 = rng.uniform(0.01, 0.05, (1, T))
    valid = np.ones((1, T), bool)
    valid[0, 4] = False                       # a gap: displacements 3→4 and 4→5 are lost
    got = track_loglik(pos, s2, valid, np.array([D]), np.array([R]))[0, 0]
    want = 0.0
    for seg in (np.arange(0, 4), np.arange(5, T)):   # independent pieces
        m = len(seg) - 1
        cov = np.zeros((m, m))
        for i in range(m):
            a, b = seg[i], seg[i + 1]
            cov[i, i] = 2 * D * (1 - 2 * R) + s2[0, a] + s2[0, b]
            if i + 1 < m:
                cov[i, i + 1] = cov[i + 1, i] = 2 * R * D - s2[0, b]
        d = np.diff(pos[0, seg], axis=0)
        want += sum(stats.multivariate_normal(np.zeros(m), cov).logpdf(d[:, k]) for k in (0, 1))
    np.testing.assert_allclose(got, want, rtol=1e-10)


def _rmse_bias(est, sample, D):
    out = est.predict_tubelets(sample)
    err = np.log(log_d_px_to_um2_s(out["log_d"], 0.02, 100.0)) - np.log(D)
    return float(np.sqrt(np.mean(err**2))), float(np.mean(err)), float(np.std(err))


def test_the_blur_widths_add_information_only_when_the_camera_integrates_motion():
    sim = TubeletSimulator(frames=16, size=15, substeps=8, min_length=1)
    rng = np.random.default_rng(7)
    blurred = sim.sample(rng, 120, D_um2_s=1.0, exposure_fraction=1.0, length=16, **MICROSCOPE)
    strobe = sim.sample(rng, 60, D_um2_s=1.0, exposure_fraction=0.0, length=16, **MICROSCOPE)
    full = BlurLikelihoodEstimator(substeps=8)          # the simulator's own sub-steps
    track = BlurLikelihoodEstimator(substeps=8, use_widths=False)
    rmse_full, bias_full, sd_full = _rmse_bias(full, blurred, 1.0)
    rmse_track, _, _ = _rmse_bias(track, blurred, 1.0)
    # Theory: 15 displacements give ≈ 15 units of Fisher information on ln D; a frame's
    # gyration of 8 sub-positions ≈ 2 more when perfectly measured (≈ 1 with this fit error),
    # so the widths should cut the RMSE to ≈ √(15/31) ≈ 0.7×; the RMSE of 120 molecules has a
    # relative s.e. ≈ 1/√240 ≈ 6.5 %, so 0.85 is > 2 s.e. above the expectation.
    assert rmse_full < 0.85 * rmse_track
    # unbiased within 4 standard errors of the mean error, plus the known −0.04 of reading
    # widths of long blur with an isotropic Gaussian (module docstring)
    assert abs(bias_full) < 4 * sd_full / np.sqrt(120) + 0.05
    # stroboscopic frames have no blur: the width term is left out, both estimates agree
    np.testing.assert_allclose(full.predict_tubelets(strobe)["log_d"],
                               track.predict_tubelets(strobe)["log_d"], atol=1e-9)


def test_estimate_on_a_simulated_movie_reads_D_per_track_and_localization():
    from smlmnet.simulate.config import SimulationConfig
    from smlmnet.simulate.movie import simulate

    cfg = SimulationConfig.from_dict({
        "seed": 3, "n_frames": 16, "frame_time_s": 0.02, "substeps": 8,
        "fov": {"shape_px": [64, 64], "pixel_size_nm": 100.0},
        "particles": {"n": 8, "motions": [{"model": "brownian", "D_um2_s": 1.0}]},
        "photophysics": {"photons_per_frame": 1500.0},
        "psf": {"sigma_nm": 130.0}, "background": {"photons_per_px": 10.0}})
    res = simulate(cfg)
    tracks = res.emitters[[C.TRACK_ID, C.FRAME, C.X_NM, C.Y_NM]]
    per_track, per_loc = BlurLikelihoodEstimator(substeps=8).estimate(res.movie, tracks, 130.0)
    assert len(per_track) == tracks[C.TRACK_ID].nunique()
    assert per_loc[PIXEL_D].notna().all() and (per_track["pixel D log-std"] > 0).all()
    # ≈ 15 displacements + 16 widths per track: ln D s.d. ≈ 0.2 per track, so the median of
    # the tracks lies well within a factor 1.5 of the truth (molecules near the border or
    # overlapping add error; the bound is loose on purpose)
    assert abs(np.log(per_track[PIXEL_D].median())) < np.log(1.5)


def test_fitted_positions_are_immune_to_a_localizer_worse_than_its_bound():
    sim = TubeletSimulator(frames=16, size=15, substeps=8, min_length=1)
    micro = {**MICROSCOPE, "localizer_excess": 3.0}   # localizations 3× the Mortensen error
    s = sim.sample(np.random.default_rng(4), 80, D_um2_s=0.01, exposure_fraction=0.0,
                   length=16, **micro)
    _, bias_given, _ = _rmse_bias(BlurLikelihoodEstimator(substeps=8), s, 0.01)
    _, bias_fit, sd_fit = _rmse_bias(BlurLikelihoodEstimator(substeps=8, positions="fitted"),
                                     s, 0.01)
    # given localizations with 9× the variance their CRLB claims: at D 0.01 µm²/s the
    # displacement variance is 2DΔt = 0.04 px² + 2σ² = 0.083 px² true, 0.009 px² claimed,
    # so D is read ≈ (0.123 − 0.009)/0.04 ≈ 2.8× too high (ln 1.0)
    assert bias_given > 0.6
    # the fits' own centres have about the claimed error: unbiased within 4 s.e. plus
    # ln 1.1 ≈ 0.1 for the fit's ≈ 20 % excess over its CRLB at 1000 photons (module docs)
    assert abs(bias_fit) < 4 * sd_fit / np.sqrt(80) + 0.15


def test_a_miscalibrated_psf_does_not_read_as_blur():
    sim = TubeletSimulator(frames=16, size=15, substeps=8, min_length=1)
    bright = {**MICROSCOPE, "photons": 5000.0, "background_photons_per_px": 5.0}
    s = sim.sample(np.random.default_rng(9), 80, D_um2_s=0.01, exposure_fraction=1.0,
                   length=16, **bright)
    s["psf_sigma_px"] = s["psf_sigma_px"] * 0.98   # σ² calibrated 4 % low: z offset 0.07 px²
    track = _rmse_bias(BlurLikelihoodEstimator(substeps=8, use_widths=False), s, 0.01)[1]
    naive = _rmse_bias(BlurLikelihoodEstimator(substeps=8, psf_var_uncertainty=0.0), s,
                       0.01)[1]
    robust = _rmse_bias(BlurLikelihoodEstimator(substeps=8), s, 0.01)[1]
    # bright spots (σ̂² error ≈ 0.03 px²): the mean gyration at D 0.01 µm²/s is 0.0066 px²,
    # so an offset of 0.07 px² read as blur says D ≈ 10× too high; integrating the offset
    # out (s.d. 5 % of σ² = 0.085 px²) leaves the widths uninformative here, so the
    # estimate stays with the track's
    assert naive - track > 0.5
    assert abs(robust - track) < 0.15


def test_the_default_model_is_continuous_exposure():
    est = BlurLikelihoodEstimator()
    # mean per-axis gyration of Brownian motion over an exposure t_E: D·t_E/3; per frame in
    # px²: (2·D_px/S)·Σμ(f·S) → D_px·f/3 as S grows; 64 sub-steps are within 0.4 %
    for f in (0.25, 0.5, 1.0):
        n = int(round(f * est.substeps))
        np.testing.assert_allclose(2.0 / est.substeps * gyration_eigenvalues(n).sum(), f / 3,
                                   rtol=5e-3)


def test_fits_that_locate_nothing_give_no_position_and_the_track_stays_finite():
    """Frames of pure background (6,100 photons/px, as a molecule on the brightest
    background of the training ranges can look): a diverged per-frame fit reports σ_loc² up
    to ~1e15 px² (it did, in 197 of 1,280 such frames); no frame may keep a variance beyond
    (K/4)² (it would place the spot outside the patch), and the track likelihood stays finite
    even for such a variance (the tridiagonal recursion's floor; a 1e15 px² frame made a
    source tubelet's posterior NaN)."""
    rng = np.random.default_rng(0)
    est = BlurLikelihoodEstimator(substeps=8)
    p = rng.poisson(6100.0, (8, 16, 15, 15)).astype(float)
    fits = est.fit_frames(p, np.ones((8, 16), bool), np.full((8, 16, 2), 7.0), np.full(8, 0.73))
    assert np.all(fits["pos_var"] <= (15 / 4.0) ** 2)
    pos = rng.normal(size=(2, 16, 2)).cumsum(1)
    var = np.full((2, 16), 0.05)
    var[0, 3] = 5e15
    ll = track_loglik(pos, var, np.ones((2, 16), bool), np.exp(np.linspace(-9, 5, 141)),
                      np.array([0.05, 0.05]))
    assert np.isfinite(ll).all()


def test_analyze_warns_when_the_psf_is_not_known_apart_from_the_blur(tmp_path, capsys):
    """--pixel-diffusion with the PSF σ left at the default (a plain TIFF, no calibration):
    the CLI says so and names --psf-sigma-nm; the rule also covers a σ measured on the
    blurred movie itself, and is silent for a given σ or stroboscopic movies."""
    import tifffile

    from smlmnet.cli import main, pixel_psf_problem
    from smlmnet.simulate import load_config, simulate

    res = simulate(load_config("sptpalm_membrane", ["n_frames=20", "fov.shape_px=[48,48]",
                                                    "particles.density_per_um2=3"]))
    plain = tmp_path / "plain.tif"   # no metadata
    tifffile.imwrite(plain, np.asarray(res.movie.frames))
    args = ["analyze", str(plain), "-o", str(tmp_path / "out"), "-q", "--threads", "1",
            "--pixel-size-nm", "100", "--frame-time-s", "0.02", "--exposure-s", "0.02",
            "--localizer", "mle", "--min-length", "3", "--pixel-diffusion", "blur_likelihood",
            "--calibrate", "never"]
    assert main(args) == 0
    err = capsys.readouterr().err   # the CLI prints its warnings as "smlmnet analyze: warning"
    assert re.search("warning: --pixel-diffusion .*is a default.*--psf-sigma-nm from a strobo",
                     err)
    own = "the movie itself (smlmnet.calibrate, 78 molecules)"
    assert "measured on this movie" in pixel_psf_problem("blur_likelihood", False, 0.02, 98.0,
                                                         own)
    assert pixel_psf_problem("blur_likelihood", True, None, 98.0, own) is None
    assert pixel_psf_problem("blur_likelihood", False, 0.0, 98.0, own) is None
    assert pixel_psf_problem("blur_likelihood", False, 0.02, 74.0, "--psf-sigma-nm") is None
    assert pixel_psf_problem(None, False, 0.02, 98.0, own) is None
