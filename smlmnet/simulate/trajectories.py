"""Vectorized 2D motion models in physical units (µm, s, µm²/s).

Every model is sampled on a uniform grid of ``substeps`` points per frame interval (the
sub-step midpoints), so that the movie renderer can average the motion within the exposure
(motion blur). All particles of a population are generated at once; only the reflecting disk
(confinement) needs a loop over time steps, vectorized over particles.

Positions use smlmnet's coordinates (origin at the top-left corner of the image, µm here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from smlmnet.data import contracts as C
from smlmnet.simulate.config import MotionConfig, SimulationConfig
from smlmnet.simulate.fbm import fgn_2d
from smlmnet.simulate.params import sample_param


@dataclass
class Trajectories:
    """Particle positions on the sub-step grid and their per-frame ground truth.

    Attributes:
        positions_um: ``(N, n_frames * substeps, 2)`` x/y in µm at times
            ``(k + 0.5) * substep_time_s``.
        substeps: sub-steps per frame interval. substep_time_s: their spacing, s.
        frame_D: ``(N, n_frames)`` D (or K for α ≠ 1) in µm²/s during each frame.
        frame_alpha: ``(N, n_frames)`` anomalous exponent during each frame.
        frame_state: ``(N, n_frames)`` index of the Markov state (0 for one-state models).
        frame_motion_class: ``(N, n_frames)`` AnDi-2 class (0 immobile, 1 confined, 2 free,
            3 directed).
        particles: one row per particle (``track_id``, ``model``, drawn parameters).
    """

    positions_um: np.ndarray
    substeps: int
    substep_time_s: float
    frame_D: np.ndarray
    frame_alpha: np.ndarray
    frame_state: np.ndarray
    frame_motion_class: np.ndarray
    particles: pd.DataFrame

    @property
    def n_particles(self) -> int:
        return self.positions_um.shape[0]

    @property
    def n_frames(self) -> int:
        return self.frame_D.shape[1]


def fbm_increments(rng: np.random.Generator, K: np.ndarray, alpha: np.ndarray, n_steps: int,
                   dt: float) -> np.ndarray:
    """``(N, n_steps, 2)`` increments of 2D fBM with MSD(τ) = 4 K τ^α on a grid of ``dt`` s."""
    K = np.asarray(K, float)
    alpha = np.asarray(alpha, float)
    scale = np.sqrt(2.0 * K * dt ** alpha)
    return fgn_2d(rng, alpha, n_steps) * scale[:, None, None]


def integrate(x0: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Positions ``(N, n_steps + 1, 2)`` starting at ``x0`` ``(N, 2)`` and adding ``steps``."""
    out = np.empty((steps.shape[0], steps.shape[1] + 1, 2))
    out[:, 0] = x0
    np.cumsum(steps, axis=1, out=out[:, 1:])
    out[:, 1:] += x0[:, None, :]
    return out


def reflect_in_box(positions: np.ndarray, centre: np.ndarray, half_edge: np.ndarray) -> np.ndarray:
    """Fold free positions into the box ``centre ± half_edge`` (exact reflecting walls)."""
    low = centre[:, None, :] - half_edge[:, None, None]
    width = 2 * half_edge[:, None, None]
    y = np.mod(positions - low, 2 * width)
    y = np.where(y > width, 2 * width - y, y)
    return low + y


def reflect_in_disk(x0: np.ndarray, steps: np.ndarray, centre: np.ndarray,
                    radius: np.ndarray) -> np.ndarray:
    """Positions after ``steps``, reflected radially at the circle ``|x − centre| = radius``."""
    n, n_steps, _ = steps.shape
    out = np.empty((n, n_steps + 1, 2))
    pos = x0 - centre
    out[:, 0] = pos
    for k in range(n_steps):
        pos = pos + steps[:, k]
        r = np.hypot(pos[:, 0], pos[:, 1])
        outside = r > radius
        if outside.any():
            r_new = np.minimum(np.abs(2 * radius[outside] - r[outside]), radius[outside])
            pos[outside] *= (r_new / r[outside])[:, None]
        out[:, k + 1] = pos
    return out + centre[:, None, :]


def _stationary(P: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eig(P.T)
    pi = np.abs(np.real(v[:, np.argmin(np.abs(w - 1))]))
    return pi / pi.sum()


def markov_chain(rng: np.random.Generator, P: np.ndarray, n: int, n_frames: int) -> np.ndarray:
    """``(n, n_frames)`` states of a Markov chain with per-frame transition matrix ``P``,
    starting from its stationary distribution."""
    cum = np.cumsum(P, axis=1)
    cum[:, -1] = 1.0
    states = np.empty((n, n_frames), dtype=np.int64)
    states[:, 0] = rng.choice(len(P), size=n, p=_stationary(P))
    u = rng.random((n, n_frames))
    for f in range(1, n_frames):
        states[:, f] = (u[:, f, None] > cum[states[:, f - 1]]).sum(axis=1)
    return states


def _population(rng: np.random.Generator, m: MotionConfig, x0: np.ndarray, n_frames: int,
                substeps: int, dt: float) -> dict:
    """Simulate one population; returns positions, per-frame labels and per-particle params."""
    n = x0.shape[0]
    n_steps = n_frames * substeps - 1
    t = (np.arange(n_frames * substeps) + 0.5) * dt
    nan = np.full(n, np.nan)
    params = {C.D_UM2_S: nan, C.ALPHA: nan, "radius [um]": nan, "speed [um/s]": nan,
              "angle [deg]": nan, "anisotropy": nan, "D_xx [um^2/s]": nan,
              "D_xy [um^2/s]": nan, "D_yy [um^2/s]": nan}
    state = np.zeros((n, n_frames), dtype=np.int64)
    motion_class = C.MOTION_CLASSES["free"]

    if m.model == "immobile":
        D, alpha = np.zeros(n), np.zeros(n)
        pos = np.repeat(x0[:, None, :], n_steps + 1, axis=1)
        motion_class = C.MOTION_CLASSES["immobile"]
    elif m.model == "multistate":
        P = np.asarray(m.transition_matrix, float)
        state = markov_chain(rng, P, n, n_frames)
        n_states = len(m.states)
        Ks = np.stack([sample_param(s.get("D_um2_s", 0.1), rng, n) for s in m.states], axis=1)
        alphas = np.stack([sample_param(s.get("alpha", 1.0), rng, n) for s in m.states], axis=1)
        classes = np.array([
            C.MOTION_CLASSES[s.get("motion_class", "free")] for s in m.states
        ])
        step_frame = np.arange(n_steps) // substeps
        step_state = state[:, step_frame]
        steps = np.zeros((n, n_steps, 2))
        for s in range(n_states):
            inc = fbm_increments(rng, Ks[:, s], alphas[:, s], n_steps, dt)
            steps = np.where((step_state == s)[..., None], inc, steps)
        pos = integrate(x0, steps)
        rows = np.arange(n)[:, None]
        frame_D, frame_alpha = Ks[rows, state], alphas[rows, state]
        frame_class = classes[state]
        for s in range(n_states):
            params[f"D_state{s} [um^2/s]"] = Ks[:, s]
            params[f"alpha_state{s}"] = alphas[:, s]
        return dict(positions=pos, frame_D=frame_D, frame_alpha=frame_alpha, state=state,
                    motion_class=frame_class, params=params)
    else:
        D = sample_param(m.D_um2_s, rng, n)
        alpha = sample_param(m.alpha, rng, n) if m.model != "anisotropic" else np.ones(n)
        if m.model == "anisotropic":
            ratio = sample_param(m.anisotropy, rng, n)
            angle = (rng.uniform(0, 180, n) if m.angle_deg is None
                     else sample_param(m.angle_deg, rng, n))
            d_major, d_minor = 2 * D * ratio / (1 + ratio), 2 * D / (1 + ratio)
            th = np.deg2rad(angle)
            c, s = np.cos(th), np.sin(th)
            z = rng.standard_normal((n, n_steps, 2))
            a = z[..., 0] * np.sqrt(2 * d_major * dt)[:, None]
            b = z[..., 1] * np.sqrt(2 * d_minor * dt)[:, None]
            steps = np.stack([c[:, None] * a - s[:, None] * b, s[:, None] * a + c[:, None] * b],
                             axis=-1)
            pos = integrate(x0, steps)
            params.update({"anisotropy": ratio, "angle [deg]": angle,
                           "D_xx [um^2/s]": d_major * c**2 + d_minor * s**2,
                           "D_yy [um^2/s]": d_major * s**2 + d_minor * c**2,
                           "D_xy [um^2/s]": (d_major - d_minor) * s * c})
        else:
            steps = fbm_increments(rng, D, alpha, n_steps, dt)
            if m.model in ("brownian", "fbm"):
                pos = integrate(x0, steps)
            elif m.model == "directed":
                speed = sample_param(m.speed_um_s, rng, n)
                phi = rng.uniform(0, 2 * np.pi, n)
                v = speed[:, None] * np.stack([np.cos(phi), np.sin(phi)], axis=1)
                pos = integrate(x0, steps) + (t - t[0])[None, :, None] * v[:, None, :]
                params.update({"speed [um/s]": speed, "angle [deg]": np.rad2deg(phi)})
                motion_class = C.MOTION_CLASSES["directed"]
            elif m.model == "confined":
                radius = sample_param(m.radius_um, rng, n)
                centre = x0
                if m.shape == "box":
                    start = centre + rng.uniform(-1, 1, (n, 2)) * radius[:, None]
                    pos = reflect_in_box(integrate(start, steps), centre, radius)
                else:
                    r = radius * np.sqrt(rng.random(n))
                    phi = rng.uniform(0, 2 * np.pi, n)
                    start = centre + r[:, None] * np.stack([np.cos(phi), np.sin(phi)], axis=1)
                    pos = reflect_in_disk(start, steps, centre, radius)
                params["radius [um]"] = radius
                motion_class = C.MOTION_CLASSES["confined"]
            else:  # pragma: no cover - validated earlier
                raise ValueError(f"unknown motion model {m.model!r}")
    params[C.D_UM2_S] = D
    params[C.ALPHA] = alpha
    return dict(
        positions=pos,
        frame_D=np.repeat(D[:, None], n_frames, axis=1),
        frame_alpha=np.repeat(alpha[:, None], n_frames, axis=1),
        state=state,
        motion_class=np.full((n, n_frames), motion_class, dtype=np.int64),
        params=params,
    )


def n_particles(cfg: SimulationConfig, rng: np.random.Generator | None = None) -> int:
    """Number of particles in the simulated area (field of view grown by the margin).

    A density given as a distribution is drawn with ``rng`` (required then)."""
    if cfg.particles.n is not None:
        return int(cfg.particles.n)
    w, h = cfg.fov_size_um
    m = cfg.fov.margin_um
    spec = cfg.particles.density_per_um2
    if isinstance(spec, (int, float)):
        density = float(spec)
    else:
        if rng is None:
            raise ValueError("a random density needs a random generator")
        density = float(sample_param(spec, rng, 1)[0])
    return int(round(density * (w + 2 * m) * (h + 2 * m)))


def simulate_trajectories(cfg: SimulationConfig, rng: np.random.Generator) -> Trajectories:
    """Draw particles uniformly in the field of view plus margin and move them.

    Particles are split among ``cfg.particles.motions`` by their weights.
    """
    n = n_particles(cfg, rng)
    F, S, dt = cfg.n_frames, cfg.substeps, cfg.substep_time_s
    w, h = cfg.fov_size_um
    margin = cfg.fov.margin_um
    motions = cfg.particles.motions
    weights = np.array([m.weight for m in motions], float)
    population = rng.choice(len(motions), size=n, p=weights / weights.sum())
    x0 = np.stack([rng.uniform(-margin, w + margin, n), rng.uniform(-margin, h + margin, n)], 1)

    positions = np.empty((n, F * S, 2))
    frame_D = np.empty((n, F))
    frame_alpha = np.empty((n, F))
    frame_state = np.zeros((n, F), dtype=np.int64)
    frame_class = np.empty((n, F), dtype=np.int64)
    columns: dict[str, np.ndarray] = {}
    for p, m in enumerate(motions):
        idx = np.flatnonzero(population == p)
        if idx.size == 0:
            continue
        out = _population(rng, m, x0[idx], F, S, dt)
        positions[idx] = out["positions"]
        frame_D[idx] = out["frame_D"]
        frame_alpha[idx] = out["frame_alpha"]
        frame_state[idx] = out["state"]
        frame_class[idx] = out["motion_class"]
        for key, values in out["params"].items():
            if key not in columns:
                columns[key] = np.full(n, np.nan)
            columns[key][idx] = values
    table = pd.DataFrame({C.TRACK_ID: np.arange(n), "population": population,
                          "model": np.array([motions[p].model for p in population], dtype=object),
                          **columns})
    return Trajectories(positions, S, dt, frame_D, frame_alpha, frame_state, frame_class, table)
