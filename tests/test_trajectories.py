"""Motion models against theory.

Tolerances: each check compares an average of n independent draws with its expectation and
allows 5 standard errors, where the standard error follows from the distribution of the
quantity (e.g. a 2D squared Gaussian displacement divided by its mean is χ²₂/2, relative std
1, so the mean of n of them has relative std 1/√n).
"""

import numpy as np
import pytest

from smlmnet.simulate.config import SimulationConfig
from smlmnet.simulate.fbm import fgn_2d, fgn_autocovariance
from smlmnet.simulate.movie import blur_coefficient, exposure_average
from smlmnet.simulate.trajectories import markov_chain, simulate_trajectories

Z = 5.0


def make_cfg(motion: dict, n: int, n_frames: int, frame_time_s=0.01, substeps=1,
             illumination="stroboscopic", **extra) -> SimulationConfig:
    return SimulationConfig.from_dict({
        "n_frames": n_frames, "frame_time_s": frame_time_s, "substeps": substeps,
        "illumination": illumination, "fov": {"shape_px": [32, 32], "margin_um": 0.0},
        "particles": {"n": n, "motions": [motion]}, **extra})


def displacement_msd(pos: np.ndarray, lag: int) -> np.ndarray:
    """Squared displacement from frame 0 to frame `lag`: one independent value per particle."""
    return np.sum((pos[:, lag] - pos[:, 0]) ** 2, axis=-1)


def test_brownian_msd_is_4Dt(rng):
    D, dt, n = 0.3, 0.01, 20000
    cfg = make_cfg({"model": "brownian", "D_um2_s": D}, n, 33, dt)
    traj = simulate_trajectories(cfg, rng)
    for lag in (1, 4, 32):
        d2 = displacement_msd(traj.positions_um, lag)
        expected = 2 * 2 * D * lag * dt
        assert abs(d2.mean() / expected - 1) < Z / np.sqrt(n), lag
    assert np.all(traj.frame_D == D) and np.all(traj.frame_alpha == 1)


@pytest.mark.parametrize("alpha", [0.3, 0.7, 1.0, 1.5, 1.9])
def test_fbm_msd_recovers_alpha(rng, alpha):
    K, dt, n = 0.1, 0.05, 8000
    cfg = make_cfg({"model": "fbm", "D_um2_s": K, "alpha": alpha}, n, 65, dt)
    pos = simulate_trajectories(cfg, rng).positions_um
    msd = {lag: displacement_msd(pos, lag).mean() for lag in (1, 8, 64)}
    for lag, value in msd.items():  # MSD = 2 d K τ^α exactly, χ²₂ statistics per particle
        assert abs(value / (4 * K * (lag * dt) ** alpha) - 1) < Z / np.sqrt(n)
    # log-log slope between lags 1 and 64: std ≤ √2·(1/√n)/ln 64
    slope = np.log(msd[64] / msd[1]) / np.log(64)
    assert abs(slope - alpha) < Z * np.sqrt(2 / n) / np.log(64)


@pytest.mark.parametrize("alpha", [0.4, 1.0, 1.6])
def test_fgn_autocovariance_matches_gamma(rng, alpha):
    n, T = 20000, 32
    x = fgn_2d(rng, np.full(n, alpha), T)
    gamma = fgn_autocovariance([alpha], 6)[0]
    for k in range(6):
        # one product x_0·x_k per particle and dimension; Var(x_0 x_k) = 1 + γ(k)²
        est = np.mean(x[:, 0, :] * x[:, k, :])
        assert abs(est - gamma[k]) < Z * np.sqrt((1 + gamma[k] ** 2) / (2 * n)), k
    # x and y components are independent
    assert abs(np.mean(x[:, :, 0] * x[:, :, 1])) < Z / np.sqrt(n * T) * 3


def test_motion_blur_offset(rng):
    D, dt, n = 0.5, 0.02, 20000
    cfg = make_cfg({"model": "brownian", "D_um2_s": D}, n, 4, dt, substeps=20,
                   illumination="continuous")
    R = blur_coefficient(cfg)
    assert abs(R - 1 / 6) < 0.002  # 20 midpoint samples approximate t_E/(6Δt)
    traj = simulate_trajectories(cfg, rng)
    obs = exposure_average(traj, cfg.exposure_substeps)
    for lag in (1, 2):
        d2 = displacement_msd(obs, lag).mean()
        expected = 4 * D * lag * dt - 8 * R * D * dt  # 2dDnΔt − 4dRDΔt, d = 2
        assert abs(d2 / expected - 1) < Z / np.sqrt(n), lag
    # half exposure: R = t_E/(6Δt) = 1/12
    half = make_cfg({"model": "brownian", "D_um2_s": D}, 10, 4, dt, substeps=20,
                    illumination="continuous", exposure_time_s=dt / 2)
    assert abs(blur_coefficient(half) - 1 / 12) < 0.002
    strobe = make_cfg({"model": "brownian", "D_um2_s": D}, 10, 4, dt)
    assert blur_coefficient(strobe) == 0.0


@pytest.mark.parametrize("shape", ["disk", "box"])
def test_confined_msd_plateau(rng, shape):
    r, n = 0.2, 4000
    cfg = make_cfg({"model": "confined", "D_um2_s": 1.0, "radius_um": r, "shape": shape},
                   n, 41, frame_time_s=0.02, substeps=20)
    traj = simulate_trajectories(cfg, rng)
    pos = traj.positions_um[:, ::20]
    centre_dist = np.linalg.norm(pos - pos.mean(axis=1, keepdims=True), axis=-1)
    if shape == "disk":
        # uniform in a disk: E|r1 − r2|² = R², Var/mean² = 2/3
        plateau, rel_std = r**2, np.sqrt(2 / 3)
        assert centre_dist.max() <= 2 * r + 1e-9
    else:
        # uniform in a square of edge L = 2r: E|r1 − r2|² = 2·L²/6; per axis E d⁴ = L⁴/15,
        # so Var/mean² = 2(1/15 − 1/36)/(1/9) = 0.7
        plateau, rel_std = 2 * (2 * r) ** 2 / 6, np.sqrt(0.7)
    d2 = displacement_msd(pos, 40)  # lag 0.8 s ≫ relaxation time r²/4D = 0.01 s
    assert abs(d2.mean() / plateau - 1) < Z * rel_std / np.sqrt(n)
    assert np.all(traj.frame_motion_class == 1)


def test_directed_mean_displacement(rng):
    v, n, dt = 2.0, 4000, 0.01
    cfg = make_cfg({"model": "directed", "D_um2_s": 0.01, "speed_um_s": v}, n, 11, dt)
    traj = simulate_trajectories(cfg, rng)
    disp = traj.positions_um[:, 10] - traj.positions_um[:, 0]
    angle = np.deg2rad(traj.particles["angle [deg]"].to_numpy())
    along = disp[:, 0] * np.cos(angle) + disp[:, 1] * np.sin(angle)
    sd = np.sqrt(2 * 0.01 * 10 * dt)  # diffusive spread along the drift per particle
    assert abs(along.mean() - v * 10 * dt) < Z * sd / np.sqrt(n)
    assert np.all(traj.frame_motion_class == 3)


def test_anisotropic_tensor(rng):
    D, ratio, n, dt = 0.2, 4.0, 20000, 0.01
    cfg = make_cfg({"model": "anisotropic", "D_um2_s": D, "anisotropy": ratio,
                    "angle_deg": 0.0}, n, 2, dt)
    traj = simulate_trajectories(cfg, rng)
    d = traj.positions_um[:, 1] - traj.positions_um[:, 0]
    dxx, dyy = 2 * D * ratio / (1 + ratio), 2 * D / (1 + ratio)
    # per-axis squared displacement / (2 D_ii Δt) ~ χ²₁: relative std √2
    assert abs(np.mean(d[:, 0] ** 2) / (2 * dxx * dt) - 1) < Z * np.sqrt(2 / n)
    assert abs(np.mean(d[:, 1] ** 2) / (2 * dyy * dt) - 1) < Z * np.sqrt(2 / n)
    assert np.allclose(traj.particles["D_xx [um^2/s]"], dxx)
    assert np.allclose(traj.particles["D_xy [um^2/s]"], 0, atol=1e-12)


def test_immobile_does_not_move(rng):
    cfg = make_cfg({"model": "immobile"}, 10, 20)
    traj = simulate_trajectories(cfg, rng)
    assert np.ptp(traj.positions_um, axis=1).max() == 0
    assert np.all(traj.frame_motion_class == 0) and np.all(traj.frame_D == 0)


def test_multistate_labels_and_switching(rng):
    P = np.array([[0.9, 0.1], [0.2, 0.8]])
    n, T, dt = 400, 200, 0.01
    cfg = make_cfg({"model": "multistate", "transition_matrix": P.tolist(), "states": [
        {"D_um2_s": 1.0, "alpha": 1.0}, {"D_um2_s": 0.0, "motion_class": "immobile"}]},
        n, T, dt, substeps=2, illumination="continuous")
    traj = simulate_trajectories(cfg, rng)
    s = traj.frame_state
    # empirical transition probabilities: binomial standard errors
    for i in range(2):
        from_i = s[:, :-1] == i
        p_hat = np.mean(s[:, 1:][from_i] == 1 - i)
        assert abs(p_hat - P[i, 1 - i]) < Z * np.sqrt(P[i, 1 - i] * P[i, i] / from_i.sum())
    # stationary share of state 0: 2/3
    assert abs(np.mean(s == 0) - 2 / 3) < 0.03
    assert np.array_equal(traj.frame_D, np.where(s == 0, 1.0, 0.0))
    assert np.array_equal(traj.frame_motion_class, np.where(s == 0, 2, 0))
    # the motion from frame f to f + 1 follows the state of frame f
    pos = traj.positions_um.reshape(n, T, 2, 2)
    frozen = s[:, :-1] == 1
    moves = np.linalg.norm(pos[:, 1:, 0] - pos[:, :-1, 0], axis=-1)
    assert moves[frozen].max() == 0 and moves[~frozen].min() > 0


def test_markov_chain_starts_stationary(rng):
    P = np.array([[0.5, 0.5], [0.1, 0.9]])
    s = markov_chain(rng, P, 20000, 1)
    assert abs(np.mean(s[:, 0] == 0) - 1 / 6) < Z * np.sqrt(1 / 6 * 5 / 6 / 20000)


def test_particles_enter_and_leave(rng):
    cfg = SimulationConfig.from_dict({
        "n_frames": 100, "frame_time_s": 0.02, "substeps": 2,
        "fov": {"shape_px": [16, 16], "margin_um": 1.0},
        "particles": {"n": 200, "motions": [{"model": "brownian", "D_um2_s": 1.0}]}})
    traj = simulate_trajectories(cfg, rng)
    pos = traj.positions_um[:, ::2]
    inside = np.all((pos >= 0) & (pos < 1.6), axis=-1)
    entered = (~inside[:, 0]) & inside.any(axis=1)
    left = inside[:, 0] & ~inside[:, -1]
    assert entered.sum() > 5 and left.sum() > 5
