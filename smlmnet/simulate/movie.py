"""Simulate a camera movie with its ground truth from a :class:`SimulationConfig`.

Pipeline: trajectories on a sub-step grid → photophysics per frame → every sub-step inside
the exposure is rendered with its share of the frame's photons through the pixelated Gaussian
PSF (so motion blur has the right shape, not only the right centroid) → background → camera.
Random numbers come from independent streams spawned from ``cfg.seed`` (trajectories,
photophysics, background, camera shot noise, EM gain, read noise), so the same seed gives the
same bytes, and changing the camera leaves the trajectories untouched.

The movie is simulated frame chunk by frame chunk (:class:`ChunkedSimulation`); the chunking
does not change a single number, so :func:`simulate` (one chunk, in memory) and
:func:`smlmnet.simulate.dataset.simulate_to_folder` (bounded memory) give the same bytes. For that
the EM-gain and read-noise draws have their own streams (in smlmnet <= 0.1.0 they followed all
shot-noise draws of the movie on the camera stream): sCMOS and EMCCD movies differ
from earlier versions for the same seed; ideal (``poisson``) cameras, trajectories,
photophysics, background and all ground-truth tables are unchanged.
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
from smlmnet.simulate.photophysics import PhotophysicsStream
from smlmnet.simulate.psf import render_gaussian_spots
from smlmnet.simulate.trajectories import Trajectories, TrajectoryStream


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
    return substep_blur_coefficient(cfg.exposure_substeps, cfg.substeps)


def substep_blur_coefficient(n_exposure: int, substeps: int) -> float:
    """R of an exposure that integrates the first ``n_exposure`` of ``substeps`` equally
    spaced motion sub-steps (midpoints) of each frame (1: stroboscopic, R = 0)."""
    s = (np.arange(int(n_exposure)) + 0.5) / int(substeps)
    return float(s.mean() - np.minimum.outer(s, s).mean())


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


#: pixels (frames × H × W) per chunk of the streaming path: ~16 MB per float64 image stack
CHUNK_PIXELS = 2**21


def default_chunk_frames(shape_hw: tuple[int, int]) -> int:
    """Frames per chunk for a bounded-memory simulation of ``(H, W)`` frames."""
    return max(1, CHUNK_PIXELS // max(1, int(shape_hw[0]) * int(shape_hw[1])))


def frame_chunk_bounds(n_frames: int, chunk_frames: int | None) -> list[int]:
    """``[0, c, 2c, ..., n_frames]`` (one chunk when ``chunk_frames`` is None)."""
    if chunk_frames is None or chunk_frames >= n_frames:
        return [0, n_frames]
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    return list(range(0, n_frames, int(chunk_frames))) + [n_frames]


class ChunkedSimulation:
    """The simulation of ``cfg`` frame chunk by frame chunk (bounded memory).

    The random streams (spawned from ``cfg.seed``: trajectories, photophysics, background,
    camera shot noise, EM gain, read noise) give the same numbers whatever the chunking, so
    the concatenated chunks are bit for bit the whole-movie simulation (:func:`simulate` is
    this class with one chunk). Per-particle time series are regenerated per chunk from saved
    generator states (:mod:`smlmnet.simulate.streams`), so memory is a few chunks of frames and
    sub-step positions plus O(particles × chunks) bytes of generator states. Exception: an fBM
    series (α ≠ 1, circulant embedding) is drawn whole, so with several chunks fBM particles
    are generated one at a time (memory ~10 × 16 B × n_frames × substeps for that particle)
    and their increments wait in a temporary file (16 B × n_frames × substeps each).

    Use: ``sim = ChunkedSimulation(cfg, chunk_frames)``; ``for c in range(sim.n_chunks):
    frames, emitters, traj = sim.chunk(c)``; then :meth:`visible_tracks`, :meth:`metadata`.
    ``emitters`` of a chunk still hold the rows of particles that are never seen on; keep the
    rows whose ``track_id`` is in ``visible_tracks()[track_id]`` (known after the last chunk).
    """

    def __init__(self, cfg: SimulationConfig, chunk_frames: int | None = None,
                 spill_dir: str | None = None):
        cfg.validate()
        self.cfg = cfg
        ss = np.random.SeedSequence(cfg.seed)
        # the first four children are those of earlier versions (spawn(4))
        rng_traj, rng_photo, rng_bg, self.rng_cam, self.rng_gain, self.rng_read = (
            np.random.default_rng(s) for s in ss.spawn(6))
        self.bounds = frame_chunk_bounds(cfg.n_frames, chunk_frames)
        self.shape_hw = cfg.fov.shape_px
        self.traj = TrajectoryStream(cfg, rng_traj, self.bounds, spill_dir)
        N = self.n_particles = self.traj.n
        self.photo = PhotophysicsStream(rng_photo, cfg.photophysics, N, self.bounds)
        self.bg = background_image(rng_bg, cfg.background, self.shape_hw)
        self.on_first = np.full(N, -1, dtype=np.int64)
        self.on_last = np.full(N, -1, dtype=np.int64)
        self.on_count = np.zeros(N, dtype=np.int64)
        self.n_saturated = 0
        self.next_chunk = 0

    @property
    def n_chunks(self) -> int:
        return len(self.bounds) - 1

    def chunk(self, c: int, progress=None) -> tuple[np.ndarray, pd.DataFrame, Trajectories]:
        """Frames ``(k, H, W)`` uint16, emitter rows and trajectories of chunk ``c``."""
        if c != self.next_chunk:
            raise RuntimeError(f"chunks must be simulated in order: expected {self.next_chunk}")
        self.next_chunk += 1
        cfg = self.cfg
        f0, f1 = self.bounds[c], self.bounds[c + 1]
        k, N = f1 - f0, self.n_particles
        H, W = self.shape_hw
        a = cfg.fov.pixel_size_nm
        n_exp = cfg.exposure_substeps
        traj = self.traj.chunk(c)
        alive, on, photons = self.photo.chunk(c)

        # --- render every exposed sub-step of every emitting particle
        pos_px = traj.positions_um.reshape(N, k, cfg.substeps, 2)[:, :, :n_exp] * (1000.0 / a)
        signal = render_expected_photons(pos_px, photons, (H, W), cfg.psf.sigma / a,
                                         progress=progress)
        f_halo = cfg.psf.halo_fraction
        if f_halo > 0:  # Airy/defocus-like halo: a wide Gaussian with that share of photons
            halo = render_expected_photons(pos_px, photons, (H, W),
                                           cfg.psf.sigma / a * cfg.psf.halo_sigma_factor)
            signal = (1 - f_halo) * signal + f_halo * halo
            del halo
        del pos_px
        frames, n_sat = camera_adu(self.rng_cam, signal + self.bg[None], cfg.camera,
                                   self.rng_gain, self.rng_read)
        del signal
        self.n_saturated += n_sat

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
        frame = (fi + f0).astype(np.int64)
        emitters = pd.DataFrame({
            C.FRAME: frame,
            C.TIME: frame * cfg.frame_time_s,
            C.TRACK_ID: pi.astype(np.int64),
            C.X_NM: mean_um[pi, fi, 0] * 1000.0,
            C.Y_NM: mean_um[pi, fi, 1] * 1000.0,
            C.PHOTONS: photons[pi, fi],
            C.ON: on[pi, fi],
            "bg [photon/px]": self.bg[row, col],
            C.D_UM2_S: traj.frame_D[pi, fi],
            C.ALPHA: traj.frame_alpha[pi, fi],
            C.STATE: traj.frame_state[pi, fi],
            C.MOTION_CLASS: traj.frame_motion_class[pi, fi],
        })
        seen_p, seen_f = pi[on[pi, fi]], frame[on[pi, fi]]
        if seen_p.size:
            first = np.full(N, np.iinfo(np.int64).max)
            np.minimum.at(first, seen_p, seen_f)
            new = (self.on_first < 0) & (first < np.iinfo(np.int64).max)
            self.on_first[new] = first[new]
            np.maximum.at(self.on_last, seen_p, seen_f)
            self.on_count += np.bincount(seen_p, minlength=N)
        return frames, emitters, traj

    def visible_tracks(self) -> pd.DataFrame:
        """One row per particle seen on in the field of view (after the last chunk)."""
        ids = np.flatnonzero(self.on_count > 0)
        tracks = self.traj.particles.set_index(C.TRACK_ID).loc[ids].reset_index()
        tracks.insert(1, "first_frame", self.on_first[ids])
        tracks.insert(2, "last_frame", self.on_last[ids])
        tracks.insert(3, "n_frames_on", self.on_count[ids])
        return tracks

    def movie_info(self) -> dict:
        """Pixel size, frame time, effective exposure and camera of the movie."""
        cfg = self.cfg
        camera = {k: getattr(cfg.camera, k) for k in (
            "model", "qe", "baseline_adu", "e_per_adu", "read_noise_e", "em_gain",
            "spurious_charge")}
        exposure = (cfg.exposure_substeps * cfg.substep_time_s
                    if cfg.illumination == "continuous" else 0.0)
        return {"pixel_size_nm": cfg.fov.pixel_size_nm, "frame_time_s": cfg.frame_time_s,
                "exposure_time_s": exposure, "camera": camera}

    def metadata(self, n_tracks_visible: int | None = None) -> dict:
        """Derived quantities (complete after the last chunk)."""
        cfg = self.cfg
        return {
            "smlmnet_version": __version__,
            "psf_sigma_nm": cfg.psf.sigma,
            "blur_coefficient_R": blur_coefficient(cfg),
            "effective_exposure_s": self.movie_info()["exposure_time_s"],
            "n_particles_simulated": int(self.n_particles),
            "n_tracks_visible": int(np.count_nonzero(self.on_count) if n_tracks_visible is None
                                    else n_tracks_visible),
            "n_saturated_pixels": int(self.n_saturated),
        }


def simulate(cfg: SimulationConfig, progress: bool = False) -> SimulationResult:
    """Simulate the movie and ground truth described by ``cfg`` (validated first), in memory.

    For long movies use :func:`smlmnet.simulate.dataset.simulate_to_folder`, which writes the
    same data chunk by chunk in bounded memory.
    """
    sim = ChunkedSimulation(cfg)
    bar = tqdm(total=cfg.n_frames, desc="rendering", unit="frame", disable=not progress,
               leave=False)
    frames, emitters, traj = sim.chunk(0, progress=bar.update)
    bar.close()
    tracks = sim.visible_tracks()
    emitters = emitters[emitters[C.TRACK_ID].isin(tracks[C.TRACK_ID])].reset_index(drop=True)
    info = sim.movie_info()
    movie = Movie(frames, info["pixel_size_nm"], info["frame_time_s"], info["exposure_time_s"],
                  info["camera"])
    return SimulationResult(movie, emitters, tracks, cfg, sim.metadata(), traj, sim.bg)
