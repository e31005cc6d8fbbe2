"""Diffusion estimators on blurred, noisy Brownian tracks with known D.

Tolerances: the mean of n per-track estimates has standard error ≈ CRLB_rel·D/√n (we use
twice the noise-free CRLB of the worst estimator as the per-track spread), 5 standard errors."""

import numpy as np
import pandas as pd
import pytest

from smlmnet.diffusion.estimators import (
    CVE,
    MLE,
    DiffusionTensor,
    LogLogMSD,
    MSDFit,
    crlb_relative_std_D,
    diffusion_table,
)
from smlmnet.simulate.config import SimulationConfig
from smlmnet.simulate.movie import blur_coefficient, exposure_average
from smlmnet.simulate.trajectories import simulate_trajectories


def blurred_tracks(rng, D=0.2, dt=0.02, n=200, T=60, sigma_um=0.03, substeps=10,
                   model="brownian", **motion):
    cfg = SimulationConfig.from_dict({
        "n_frames": T, "frame_time_s": dt, "substeps": substeps, "illumination": "continuous",
        "fov": {"shape_px": [16, 16]},
        "particles": {"n": n, "motions": [{"model": model, "D_um2_s": D, **motion}]}})
    traj = simulate_trajectories(cfg, rng)
    pos = exposure_average(traj, cfg.exposure_substeps) + rng.normal(0, sigma_um, (n, T, 2))
    df = pd.DataFrame({"track_id": np.repeat(np.arange(n), T), "frame": np.tile(np.arange(T), n),
                       "x [nm]": pos[..., 0].ravel() * 1000, "y [nm]": pos[..., 1].ravel() * 1000})
    return df, blur_coefficient(cfg)


@pytest.mark.parametrize("est", [MSDFit(), CVE(), MLE()], ids=lambda e: e.name)
def test_estimators_are_unbiased_with_blur_and_noise(rng, est):
    D, dt, sigma, n, T = 0.2, 0.02, 0.03, 200, 60
    df, R = blurred_tracks(rng, D, dt, n, T, sigma)
    eps = sigma**2 / (D * dt) - 2 * R
    res = est.estimate(df, dt, R)
    d = res["D [um^2/s]"].to_numpy()
    spread = 2 * crlb_relative_std_D(T - 1, eps) * D
    assert abs(np.nanmean(d) - D) < 5 * spread / np.sqrt(n)
    s = res["sigma [nm]"].to_numpy()
    assert abs(np.nanmedian(s) - 30) < 6


def test_mle_is_efficient_where_cve_is_not(rng):
    # large ε = σ²/(DΔt) − 2R: CVE loses efficiency, the MLE stays near the CRLB
    D, dt, sigma, n, T = 0.05, 0.02, 0.06, 300, 60
    df, R = blurred_tracks(rng, D, dt, n, T, sigma)
    eps = sigma**2 / (D * dt) - 2 * R
    assert eps > 3
    crlb = crlb_relative_std_D(T - 1, eps) * D
    mle = MLE().estimate(df, dt, R)["D [um^2/s]"].std()
    cve = CVE().estimate(df, dt, R)["D [um^2/s]"].std()
    tol = 5 / np.sqrt(2 * n)  # relative standard error of a standard deviation
    assert mle < (1.1 + tol) * crlb
    assert cve > mle


def test_known_sigma_mle(rng):
    D, dt, sigma = 0.2, 0.02, 0.03
    df, R = blurred_tracks(rng, D, dt, 100, 60, sigma)
    d = MLE(sigma_nm=30.0).estimate(df, dt, R)["D [um^2/s]"]
    assert abs(d.mean() - D) < 5 * 2 * crlb_relative_std_D(59, 0.0, sigma_known=True) * D / 10


def test_gapped_tracks_use_only_consecutive_frames(rng):
    D, dt = 0.2, 0.02
    df, R = blurred_tracks(rng, D, dt, 200, 60, 0.02)
    gapped = df[rng.random(len(df)) > 0.2]
    for est in (CVE(), MLE(), MSDFit()):
        d = est.estimate(gapped, dt, R)["D [um^2/s]"]
        assert abs(d.mean() / D - 1) < 0.1, est.name


def test_loglog_alpha_on_fbm(rng):
    for alpha in (0.5, 1.0, 1.5):
        df, _ = blurred_tracks(rng, 0.1, 0.05, 100, 200, 0.0, substeps=1, model="fbm",
                               alpha=alpha)
        a = LogLogMSD().estimate(df, 0.05)["alpha"]
        # time-averaged MSD of fBM is biased low for α > 1 at finite length; generous bound
        assert abs(a.median() - alpha) < 0.15, alpha


def test_tensor_recovers_anisotropy(rng):
    df, R = blurred_tracks(rng, 0.2, 0.02, 100, 100, 0.0, model="anisotropic",
                           anisotropy=4.0, angle_deg=30.0)
    t = DiffusionTensor().estimate(df, 0.02, R)
    assert abs(t["D_major [um^2/s]"].mean() / 0.32 - 1) < 0.05
    assert abs(t["D_minor [um^2/s]"].mean() / 0.08 - 1) < 0.1
    assert abs(t["angle [deg]"].median() - 30) < 5


def test_diffusion_table_and_bad_input(rng):
    df, R = blurred_tracks(rng, 0.2, 0.02, 5, 30, 0.02)
    table = diffusion_table(df, 0.02, R)
    assert {"mle D [um^2/s]", "cve D [um^2/s]", "msd D [um^2/s]", "msd_loglog alpha"} <= set(
        table.columns)
    with pytest.raises(ValueError, match="frame_time_s"):
        CVE().estimate(df, 0.0)
    with pytest.raises(ValueError, match="blur coefficient"):
        CVE().estimate(df, 0.02, 0.5)
    dup = pd.concat([df.iloc[:3], df.iloc[:1]])
    with pytest.raises(ValueError, match="two positions in one frame"):
        CVE().estimate(dup, 0.02)


def test_ensemble_cve_pools_tracks(rng):
    from smlmnet.diffusion.estimators import ensemble_cve

    D, dt = 0.2, 0.02
    df, R = blurred_tracks(rng, D, dt, 100, 30, 0.03)
    ens = ensemble_cve(df, dt, R)
    n = ens["n_displacements"]
    assert n == 100 * 29
    eps = 0.03**2 / (D * dt) - 2 * R
    # CVE variance (6 + 4ε + 2ε²)/(N d) with N the pooled number of displacements
    assert abs(ens["D [um^2/s]"] / D - 1) < 5 * np.sqrt((6 + 4 * eps + 2 * eps**2) / (2 * n))
    assert abs(ens["sigma [nm]"] - 30) < 3
