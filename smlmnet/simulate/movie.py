"""Simulate a camera movie with its ground truth from a :class:`SimulationConfig`.

Pipeline: trajectories on a sub-step grid → photophysics per frame → every sub-step inside
the exposure is rendered with its share of the frame's photons through the pixelated Gaussian
PSF (so motion blur has the right shape, not only the right centroid) → background → camera.
Random numbers come from independent streams spawned from ``cfg.seed`` (trajectories,
photophysics, background, camera), so the same seed gives the same bytes, and changing the
camera leaves the trajectories untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from smlmnet import __version__
from smlmnet.data import contracts as C
from smlmnet.data.contracts import Movie
from smlmnet.simulate.background import background_image
from smlmnet.simulate.camera import camera_adu
from smlmnet.simulate.config import SimulationConfig
from smlmnet.simulate.photophysics import alive_mask, blinking_mask, photon_counts
from smlmnet.simulate.psf import render_gaussian_spots
from smlmnet.simulate.trajectories import Trajectories, simulate_trajectories


@dataclass
class SimulationResult:
    """A simulated movie and its ground truth.

    Attributes:
        movie: the camera movie (uint16 ADU) with pixel size and frame time.
        emitters: one row per emitter and frame while it is active and its exposure-averaged
            position lies in the field of view: ``frame``, ``t [s]``, ``track_id``,
            ``x [nm]``, ``y [nm]``, ``photons [photon]`` (expected photons in this frame, 0
            while dark), ``on``, ``bg [photon/px]``, ``D [um^2/s]``, ``alpha``, ``state``,
            ``motion_class``.
        tracks: one row per track seen in ``emitters`` with its motion model and parameters.
        config: the fully resolved config (regenerates the data bit for bit).
        metadata: derived quantities (PSF σ, blur coefficient R, saturated pixels, version).
        trajectories: sub-step positions (in memory only).
        background_photons: ``(H, W)`` expected background photons per pixel and frame.
    """

    movie: Movie
    emitters: pd.DataFrame
    tracks: pd.DataFrame
    config: SimulationConfig
    metadata: dict = field(default_factory=dict)
    trajectories: Trajectories | None = None
    background_photons: np.ndarray | None = None


def blur_coefficient(cfg: SimulationConfig) -> float:
    """Exact motion-blur coefficient R of the simulated exposure.

    For exposure samples at times s_k inside a frame of length Δt, the observed Brownian MSD
    is 2dDτ − 4dRDΔt with R = (mean_k s_k − mean_jk min(s_j, s_k)) / Δt, which tends to
    t_E/(6Δt) for many sub-steps (continuous exposure) and is 0 for stroboscopic light.
    """
    s = (np.arange(cfg.exposure_substeps) + 0.5) * cfg.substep_time_s
    return float((s.mean() - np.minimum.outer(s, s).mean()) / cfg.frame_time_s)


def exposure_average(traj: Trajectories, n_exposure: int) -> np.ndarray:
    """``(N, n_frames, 2)`` positions (µm) averaged over the exposed sub-steps of each frame."""
    n, _, _ = traj.positions_um.shape
    pos = traj.positions_um.reshape(n, traj.n_frames, traj.substeps, 2)
    return pos[:, :, :n_exposure].mean(axis=2)


def render_expected_photons(positions_px: np.ndarray, photons: np.ndarray,
                            shape_hw: tuple[int, int], sigma_px: float,
                            progress=None) -> np.ndarray:
    """Expected photons per pixel of emitters moving during the exposure.

    Args:
        positions_px: ``(N, T, n_exposure, 2)`` x/y of each emitter at the exposed sub-steps
            of each frame, in continuous pixel units (centre of pixel 0 at 0.5).
        photons: ``(N, T)`` photons of each emitter in each frame, shared equally among its
            sub-steps (0 for dark frames).
        shape_hw: ``(H, W)`` of the image. sigma_px: Gaussian PSF σ in pixels.
    Returns:
        ``(T, H, W)`` float64 image (no background, no noise).
    """
    N, T, n_exp, _ = positions_px.shape
    H, W = shape_hw
    reach = 6 * sigma_px + 1
    x, y = positions_px[..., 0], positions_px[..., 1]
    keep = (photons[:, :, None] > 0) & (x > -reach) & (x < W + reach) & (y > -reach) & (
        y < H + reach)
    pi, fi, _ = np.nonzero(keep)
    return render_gaussian_spots(fi, x[keep], y[keep], photons[pi, fi] / n_exp, (T, H, W),
                                 sigma_px, progress=progress)


def simulate(cfg: SimulationConfig, progress: bool = False) -> SimulationResult:
    """Simulate the movie and ground truth described by ``cfg`` (validated first)."""
    cfg.validate()
    ss = np.random.SeedSequence(cfg.seed)
    rng_traj, rng_photo, rng_bg, rng_cam = (np.random.default_rng(s) for s in ss.spawn(4))
    T = cfg.n_frames
    H, W = cfg.fov.shape_px
    a = cfg.fov.pixel_size_nm
    sigma_px = cfg.psf.sigma / a
    n_exp = cfg.exposure_substeps

    traj = simulate_trajectories(cfg, rng_traj)
    N = traj.n_particles
    alive = alive_mask(rng_photo, cfg.photophysics, N, T)
    on = blinking_mask(rng_photo, cfg.photophysics, N, T) & alive
    photons = photon_counts(rng_photo, cfg.photophysics, N, T) * on
    bg = background_image(rng_bg, cfg.background, (H, W))

    # --- render every exposed sub-step of every emitting particle
    pos_px = traj.positions_um.reshape(N, T, cfg.substeps, 2)[:, :, :n_exp] * (1000.0 / a)
    bar = tqdm(total=T, desc="rendering", unit="frame", disable=not progress, leave=False)
    signal = render_expected_photons(pos_px, photons, (H, W), sigma_px, progress=bar.update)
    f_halo = cfg.psf.halo_fraction
    if f_halo > 0:
        halo = render_expected_photons(pos_px, photons, (H, W),
                                       sigma_px * cfg.psf.halo_sigma_factor)
        signal = (1 - f_halo) * signal + f_halo * halo
    bar.close()
    frames, n_sat = camera_adu(rng_cam, signal + bg[None], cfg.camera)

    # --- ground truth
    mean_um = exposure_average(traj, n_exp)
    w_um, h_um = cfg.fov_size_um
    inside = (mean_um[..., 0] >= 0) & (mean_um[..., 0] < w_um) & (mean_um[..., 1] >= 0) & (
        mean_um[..., 1] < h_um)
    pi, fi = np.nonzero(alive & inside)
    order = np.lexsort((pi, fi))
    pi, fi = pi[order], fi[order]
    col = np.clip((mean_um[pi, fi, 0] * 1000 / a).astype(int), 0, W - 1)
    row = np.clip((mean_um[pi, fi, 1] * 1000 / a).astype(int), 0, H - 1)
    emitters = pd.DataFrame({
        C.FRAME: fi.astype(np.int64),
        C.TIME: fi * cfg.frame_time_s,
        C.TRACK_ID: pi.astype(np.int64),
        C.X_NM: mean_um[pi, fi, 0] * 1000.0,
        C.Y_NM: mean_um[pi, fi, 1] * 1000.0,
        C.PHOTONS: photons[pi, fi],
        C.ON: on[pi, fi],
        "bg [photon/px]": bg[row, col],
        C.D_UM2_S: traj.frame_D[pi, fi],
        C.ALPHA: traj.frame_alpha[pi, fi],
        C.STATE: traj.frame_state[pi, fi],
        C.MOTION_CLASS: traj.frame_motion_class[pi, fi],
    })
    seen = emitters[emitters[C.ON]].groupby(C.TRACK_ID)[C.FRAME].agg(["min", "max", "size"])
    tracks = traj.particles.set_index(C.TRACK_ID).loc[seen.index].reset_index()
    tracks.insert(1, "first_frame", seen["min"].to_numpy())
    tracks.insert(2, "last_frame", seen["max"].to_numpy())
    tracks.insert(3, "n_frames_on", seen["size"].to_numpy())
    emitters = emitters[emitters[C.TRACK_ID].isin(seen.index)].reset_index(drop=True)

    camera = {k: getattr(cfg.camera, k) for k in (
        "model", "qe", "baseline_adu", "e_per_adu", "read_noise_e", "em_gain",
        "spurious_charge")}
    movie = Movie(frames, a, cfg.frame_time_s, n_exp * cfg.substep_time_s
                  if cfg.illumination == "continuous" else 0.0, camera)
    metadata = {
        "smlmnet_version": __version__,
        "psf_sigma_nm": cfg.psf.sigma,
        "blur_coefficient_R": blur_coefficient(cfg),
        "effective_exposure_s": movie.exposure_time_s,
        "n_particles_simulated": int(N),
        "n_tracks_visible": int(len(tracks)),
        "n_saturated_pixels": n_sat,
    }
    return SimulationResult(movie, emitters, tracks, cfg, metadata, traj, bg)
