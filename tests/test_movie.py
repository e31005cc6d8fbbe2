"""Rendering, photometry and camera noise against their models."""

import dataclasses

import numpy as np
import pytest

from smlmnet.data import contracts as C
from smlmnet.data.contracts import nm_to_pixel_index, pixel_index_to_nm
from smlmnet.simulate import SimulationConfig, simulate
from smlmnet.simulate.camera import adu_to_photons, camera_adu, pixel_variance_adu
from smlmnet.simulate.config import CameraConfig
from smlmnet.simulate.psf import pixel_integrals, render_gaussian_spots

Z = 5.0
EMCCD = {"model": "emccd", "qe": 0.9, "baseline_adu": 100.0, "e_per_adu": 45.0,
         "read_noise_e": 74.4, "em_gain": 300.0}
SCMOS = {"model": "scmos", "qe": 0.8, "baseline_adu": 100.0, "e_per_adu": 0.5,
         "read_noise_e": 1.6}


def single_emitter_cfg(camera: dict, photons=2000.0, background=0.0, n_frames=400):
    return SimulationConfig.from_dict({
        "n_frames": n_frames, "illumination": "stroboscopic", "substeps": 1,
        "fov": {"shape_px": [21, 21], "pixel_size_nm": 100.0, "margin_um": 0.0},
        "particles": {"n": 1, "motions": [{"model": "immobile"}]},
        "photophysics": {"photons_per_frame": photons},
        "psf": {"sigma_nm": 100.0},
        "background": {"photons_per_px": background},
        "camera": camera,
    })


def test_pixel_integrals_sum_and_centre_convention():
    # an emitter at the centre of pixel 0 (x = 0.5 px = 50 nm) is symmetric about pixel 0
    x_px = 50.0 / 100.0
    assert nm_to_pixel_index(50.0, 100.0) == 0.0
    assert pixel_index_to_nm(0.0, 100.0) == 50.0
    w = pixel_integrals(np.array([x_px + 10]), 1.0, 21)[0]
    assert np.isclose(w[9], w[11]) and np.argmax(w) == 10
    assert np.isclose(w.sum(), 1.0, atol=1e-12)


def test_render_total_photons_and_centroid():
    img = render_gaussian_spots(np.array([0, 0, 1]), np.array([10.3, 18.0, 7.7]),
                                np.array([12.5, 15.5, 6.2]), np.array([1000.0, 500.0, 300.0]),
                                (2, 25, 25), 1.2)
    assert np.isclose(img[0].sum(), 1500.0, rtol=1e-6) and np.isclose(img[1].sum(), 300.0)
    yy, xx = np.mgrid[:25, :25] + 0.5  # pixel centres in continuous coordinates
    assert np.isclose((img[1] * xx).sum() / 300, 7.7, atol=1e-6)
    assert np.isclose((img[1] * yy).sum() / 300, 6.2, atol=1e-6)


@pytest.mark.parametrize("camera", [SCMOS, EMCCD], ids=["scmos", "emccd"])
def test_photometry_counts_match_gain(camera):
    cfg = single_emitter_cfg(camera, photons=2000.0, background=5.0)
    res = simulate(cfg)
    cam = cfg.camera
    gain = cam.em_gain if cam.model == "emccd" else 1.0
    per_photon = cam.qe * gain / cam.e_per_adu  # ADU per photon
    signal = res.movie.frames.astype(float) - cam.baseline_adu
    n_px = signal[0].size
    expected = (2000.0 + 5.0 * n_px) * per_photon  # emitter fully inside the 21x21 image
    sums = signal.reshape(len(signal), -1).sum(axis=1)
    # std of a frame sum from the camera model, summed over independent pixels
    lam = np.full(n_px, 5.0) + 2000.0 / n_px  # variance depends on λ only linearly
    std = np.sqrt(pixel_variance_adu(lam, cam).sum()) / np.sqrt(len(sums))
    assert abs(sums.mean() - expected) < Z * std
    # the inverse conversion gives photons back
    photons = adu_to_photons(res.movie.frames, res.movie.camera).reshape(len(sums), -1).sum(1)
    assert abs(photons.mean() - (2000 + 5 * n_px)) < Z * std / per_photon


@pytest.mark.parametrize("camera", [SCMOS, EMCCD], ids=["scmos", "emccd"])
def test_camera_noise_variance(camera, rng):
    cam = CameraConfig(**camera)
    lam = 20.0
    adu, n_sat = camera_adu(rng, np.full((100, 40, 40), lam), cam)
    assert n_sat == 0
    x = adu.astype(float).ravel()
    var, expected = x.var(), pixel_variance_adu(lam, cam)
    kurt = np.mean((x - x.mean()) ** 4) / var**2
    # standard error of a sample variance: σ²·√((κ − 1)/n)
    assert abs(var / expected - 1) < Z * np.sqrt((kurt - 1) / x.size)
    gain = cam.em_gain if cam.model == "emccd" else 1.0
    assert abs(x.mean() - cam.baseline_adu - cam.qe * lam * gain / cam.e_per_adu) < Z * np.sqrt(
        expected / x.size)
    if cam.model == "emccd":  # excess noise factor F² = 2
        shot = (cam.qe * lam * gain**2) / cam.e_per_adu**2
        read = cam.read_noise_e**2 / cam.e_per_adu**2 + 1 / 12
        assert abs((var - read) / shot - 2.0) < 0.1


def test_poisson_camera_is_photon_counting(rng):
    adu, _ = camera_adu(rng, np.full((50, 30, 30), 7.0), CameraConfig(model="poisson"))
    x = adu.astype(float)
    assert abs(x.mean() - 7.0) < Z * np.sqrt(7.0 / x.size)
    assert abs(x.var() / 7.0 - 1) < Z * np.sqrt(2 / x.size) * 1.2


def test_saturation_is_reported(rng):
    adu, n_sat = camera_adu(rng, np.full((1, 4, 4), 1e6), CameraConfig(model="poisson"))
    assert n_sat == 16 and adu.max() == 65535


def test_motion_blur_elongates_the_spot():
    # a particle moving 6 px along x during the exposure: the spot's variance along x grows
    # by (v t_E)²/12 (uniform smear) while across it stays σ²
    v, dt = 30.0, 0.02  # µm/s, s  → 0.6 µm = 6 px per frame
    cfg = SimulationConfig.from_dict({
        "n_frames": 1, "frame_time_s": dt, "illumination": "continuous", "substeps": 60,
        "fov": {"shape_px": [40, 40], "pixel_size_nm": 100.0, "margin_um": 0.0},
        "particles": {"n": 1, "motions": [{"model": "directed", "D_um2_s": 0.0,
                                           "speed_um_s": v}]},
        "photophysics": {"photons_per_frame": 1e7}, "psf": {"sigma_nm": 100.0},
        "background": {"photons_per_px": 0.0}, "camera": {"model": "poisson"}})
    res = simulate(cfg)
    assert len(res.emitters) in (0, 1)
    traj = res.trajectories
    # place it in the middle: re-render with the known trajectory shifted to the centre
    pos = traj.positions_um[0, :60] * 10  # px
    pos = pos - pos.mean(axis=0) + 20.0
    img = render_gaussian_spots(np.zeros(60, int), pos[:, 0], pos[:, 1], np.full(60, 1e5 / 60),
                                (1, 40, 40), 1.0)[0]
    angle = np.deg2rad(traj.particles["angle [deg]"].iloc[0])
    yy, xx = np.mgrid[:40, :40] + 0.5
    u = (xx - 20) * np.cos(angle) + (yy - 20) * np.sin(angle)
    w = -(xx - 20) * np.sin(angle) + (yy - 20) * np.cos(angle)
    var_along = (img * u**2).sum() / img.sum()
    var_across = (img * w**2).sum() / img.sum()
    smear = 6.0 * 59 / 60  # distance between the first and last sub-step
    assert abs(var_across - (1 + 1 / 12)) < 0.01  # σ² + pixel width²/12
    assert abs(var_along - (1 + 1 / 12) - smear**2 * (61 / 59) / 12) < 0.05


def test_ground_truth_columns_and_units():
    cfg = SimulationConfig.from_dict({
        "n_frames": 20, "fov": {"shape_px": [32, 48]},
        "particles": {"n": 30, "motions": [{"model": "brownian", "D_um2_s": 0.2}]},
        "photophysics": {"blink_on_frames": 4, "blink_off_frames": 2}})
    res = simulate(cfg)
    em = res.emitters
    for col in (C.FRAME, C.TIME, C.TRACK_ID, C.X_NM, C.Y_NM, C.PHOTONS, C.ON, C.D_UM2_S,
                C.ALPHA, C.STATE, C.MOTION_CLASS):
        assert col in em.columns
    assert em[C.X_NM].between(0, 48 * 100).all() and em[C.Y_NM].between(0, 32 * 100).all()
    assert np.allclose(em[C.TIME], em[C.FRAME] * cfg.frame_time_s)
    assert (em.loc[~em[C.ON], C.PHOTONS] == 0).all() and (em.loc[em[C.ON], C.PHOTONS] > 0).all()
    assert (~em[C.ON]).any()  # blinking produced dark frames
    assert set(res.tracks[C.TRACK_ID]) == set(em[C.TRACK_ID])
    assert res.movie.frames.dtype == np.uint16 and res.movie.shape == (20, 32, 48)


def test_photophysics_blinking_and_bleaching():
    base = {"n_frames": 400, "fov": {"shape_px": [8, 8], "margin_um": 0.0},
            "particles": {"n": 300, "motions": [{"model": "immobile"}]}}
    cfg = SimulationConfig.from_dict({**base, "photophysics": {"blink_on_frames": 6.0,
                                                               "blink_off_frames": 3.0}})
    em = simulate(cfg).emitters
    # two-state chain in equilibrium: fraction on = p_on / (p_on + p_off)
    p_off, p_on = 1 - np.exp(-1 / 6), 1 - np.exp(-1 / 3)
    assert abs(em[C.ON].mean() - p_on / (p_on + p_off)) < 0.02
    cfg = SimulationConfig.from_dict({**base, "photophysics": {"bleach_lifetime_frames": 50.0}})
    em = simulate(cfg).emitters
    frames_alive = em.groupby(C.TRACK_ID).size()
    # lifetime L ~ Exp(50) → frames alive = ceil(L): mean 1/(1 − e^(−1/50)) ≈ 50.5, std ≈ 50
    assert abs(frames_alive.mean() - 1 / (1 - np.exp(-1 / 50))) < Z * 50 / np.sqrt(300)


def test_background_patterns():
    for pattern in ("uniform", "gradient", "blobs"):
        cfg = SimulationConfig.from_dict({
            "n_frames": 2, "particles": {"n": 0},
            "background": {"photons_per_px": 30.0, "pattern": pattern, "variation": 0.5}})
        bg = simulate(cfg).background_photons
        assert np.isclose(bg.mean(), 30.0) and bg.min() >= 0
        assert (np.ptp(bg) > 1) == (pattern != "uniform")


def test_camera_change_keeps_trajectories():
    cfg = single_emitter_cfg(SCMOS, n_frames=5)
    a = simulate(cfg)
    b = simulate(dataclasses.replace(cfg, camera=CameraConfig(**EMCCD)))
    assert a.emitters.equals(b.emitters)
    assert not np.array_equal(a.movie.frames, b.movie.frames)
