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
from smlmnet.simulate.fbm import FGN_BLOCK, fgn_2d, fgn_row
from smlmnet.simulate.params import sample_param
from smlmnet.simulate.streams import RowReplay, SpillRows


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


def _normal2(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    return rng.standard_normal(shape + (2,))


def _normal(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    return rng.standard_normal(shape)


def _uniform(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    return rng.random(shape)


class _Increments:
    """:func:`fbm_increments` served step chunk by step chunk (same random numbers).

    Brownian rows are regenerated per chunk from saved generator states; fBM rows (α ≠ 1) need
    the whole series (circulant embedding), so with several chunks they are computed one row at
    a time and spilled to a temporary file.
    """

    def __init__(self, rng: np.random.Generator, K: np.ndarray, alpha: np.ndarray,
                 step_bounds: list[int], dt: float, spill_dir: str | None = None):
        K = np.asarray(K, float)
        alpha = np.asarray(alpha, float).reshape(-1)
        self.scale = np.sqrt(2.0 * K * dt ** alpha)
        self.bounds = step_bounds
        self.n = alpha.size
        n_steps = step_bounds[-1]
        self.whole = self.brown = self.spill = None
        if len(step_bounds) == 2:
            self.whole = fgn_2d(rng, alpha, n_steps)
            return
        if self.n == 0 or n_steps == 0:
            return
        brownian = np.isclose(alpha, 1.0, rtol=0, atol=1e-12)
        self.bidx, self.fidx = np.flatnonzero(brownian), np.flatnonzero(~brownian)
        if self.bidx.size:
            self.brown = RowReplay(rng, self.bidx.size, step_bounds, _normal2)
        if self.fidx.size:  # same stream as fgn_2d: per block of 256, real parts then imag.
            m = max(n_steps, 2)
            size = 2 * m
            self.spill = SpillRows(self.fidx.size, (n_steps, 2), spill_dir)
            for start in range(0, self.fidx.size, FGN_BLOCK):
                sel = self.fidx[start:start + FGN_BLOCK]
                re = RowReplay(rng, sel.size, [0, size], _normal, per_row=True)
                im = RowReplay(rng, sel.size, [0, size], _normal, per_row=True)
                for j in range(sel.size):
                    y = fgn_row(alpha[sel[j]], n_steps, re.get(0, [j])[0], im.get(0, [j])[0])
                    self.spill.write(start + j, np.stack([y.real, y.imag], axis=-1))

    def chunk(self, c: int) -> np.ndarray:
        """``(n, len, 2)`` increments of steps ``[bounds[c], bounds[c + 1])``."""
        if self.whole is not None:
            return self.whole * self.scale[:, None, None]
        k0, k1 = self.bounds[c], self.bounds[c + 1]
        out = np.empty((self.n, k1 - k0, 2))
        if self.brown is not None:
            out[self.bidx] = self.brown.get(c)
        if self.spill is not None:
            out[self.fidx] = self.spill.read(k0, k1)
        return out * self.scale[:, None, None]


class _Integrator:
    """:func:`integrate` continued across chunks (bit for bit: the cumulative sum carries on)."""

    def __init__(self, x0: np.ndarray):
        self.x0 = x0
        self.started = False
        self.carry = None  # cumulative sum of all steps so far (None: no step yet)

    def __call__(self, steps: np.ndarray) -> np.ndarray:
        if not self.started:  # first chunk: x0, then x0 + cumsum
            self.started = True
            out = integrate(self.x0, steps)
            if steps.shape[1]:
                self.carry = np.cumsum(steps, axis=1)[:, -1]
            return out
        if self.carry is None:
            cum = np.cumsum(steps, axis=1)
        else:
            cum = np.cumsum(np.concatenate([self.carry[:, None], steps], axis=1), axis=1)[:, 1:]
        if steps.shape[1]:
            self.carry = cum[:, -1]
        return cum + self.x0[:, None, :]


class _PopulationStream:
    """One population's motion, chunk after chunk of frames.

    The constructor consumes ``rng`` exactly as one whole-movie simulation of the population
    would (parameters drawn, then the big per-step draws); :meth:`chunk` must be called for
    ``c = 0, 1, ...`` in order.
    """

    def __init__(self, rng: np.random.Generator, m: MotionConfig, x0: np.ndarray,
                 frame_bounds: list[int], substeps: int, dt: float,
                 spill_dir: str | None = None):
        n = x0.shape[0]
        self.m, self.n, self.S, self.dt = m, n, substeps, dt
        self.fb = list(frame_bounds)
        n_frames = self.fb[-1]
        n_steps = n_frames * substeps - 1
        # positions [P_c, P_c+1) need steps [P_c − 1, P_c+1 − 1)
        self.sb = [max(f * substeps - 1, 0) for f in self.fb]
        self.sb[-1] = n_steps
        self.next_chunk = 0
        nan = np.full(n, np.nan)
        params = {C.D_UM2_S: nan, C.ALPHA: nan, "radius [um]": nan, "speed [um/s]": nan,
                  "angle [deg]": nan, "anisotropy": nan, "D_xx [um^2/s]": nan,
                  "D_xy [um^2/s]": nan, "D_yy [um^2/s]": nan}
        self.motion_class = C.MOTION_CLASSES["free"]
        self.x0 = x0
        self.integrate = _Integrator(x0)

        if m.model == "immobile":
            D, alpha = np.zeros(n), np.zeros(n)
            self.motion_class = C.MOTION_CLASSES["immobile"]
        elif m.model == "multistate":
            P = np.asarray(m.transition_matrix, float)
            self.cum_P = np.cumsum(P, axis=1)
            self.cum_P[:, -1] = 1.0
            self.state0 = rng.choice(len(P), size=n, p=_stationary(P))
            self.u = RowReplay(rng, n, self.fb, _uniform)
            self.prev_state = None
            self.Ks = np.stack([sample_param(s.get("D_um2_s", 0.1), rng, n) for s in m.states],
                               axis=1)
            self.alphas = np.stack([sample_param(s.get("alpha", 1.0), rng, n) for s in m.states],
                                   axis=1)
            self.classes = np.array([
                C.MOTION_CLASSES[s.get("motion_class", "free")] for s in m.states
            ])
            self.inc = [_Increments(rng, self.Ks[:, s], self.alphas[:, s], self.sb, dt, spill_dir)
                        for s in range(len(m.states))]
            for s in range(len(m.states)):
                params[f"D_state{s} [um^2/s]"] = self.Ks[:, s]
                params[f"alpha_state{s}"] = self.alphas[:, s]
            self.params = params
            return
        else:
            D = sample_param(m.D_um2_s, rng, n)
            alpha = sample_param(m.alpha, rng, n) if m.model != "anisotropic" else np.ones(n)
            if m.model == "anisotropic":
                ratio = sample_param(m.anisotropy, rng, n)
                angle = (rng.uniform(0, 180, n) if m.angle_deg is None
                         else sample_param(m.angle_deg, rng, n))
                d_major, d_minor = 2 * D * ratio / (1 + ratio), 2 * D / (1 + ratio)
                th = np.deg2rad(angle)
                self.c, self.s = np.cos(th), np.sin(th)
                self.sa, self.sb_ = np.sqrt(2 * d_major * dt), np.sqrt(2 * d_minor * dt)
                self.z = RowReplay(rng, n, self.sb, _normal2)
                c, s = self.c, self.s
                params.update({"anisotropy": ratio, "angle [deg]": angle,
                               "D_xx [um^2/s]": d_major * c**2 + d_minor * s**2,
                               "D_yy [um^2/s]": d_major * s**2 + d_minor * c**2,
                               "D_xy [um^2/s]": (d_major - d_minor) * s * c})
            else:
                self.inc = _Increments(rng, D, alpha, self.sb, dt, spill_dir)
                if m.model == "directed":
                    speed = sample_param(m.speed_um_s, rng, n)
                    phi = rng.uniform(0, 2 * np.pi, n)
                    self.v = speed[:, None] * np.stack([np.cos(phi), np.sin(phi)], axis=1)
                    params.update({"speed [um/s]": speed, "angle [deg]": np.rad2deg(phi)})
                    self.motion_class = C.MOTION_CLASSES["directed"]
                elif m.model == "confined":
                    self.radius = sample_param(m.radius_um, rng, n)
                    self.centre = x0
                    if m.shape == "box":
                        start = self.centre + rng.uniform(-1, 1, (n, 2)) * self.radius[:, None]
                        self.integrate = _Integrator(start)
                    else:
                        r = self.radius * np.sqrt(rng.random(n))
                        phi = rng.uniform(0, 2 * np.pi, n)
                        start = self.centre + r[:, None] * np.stack([np.cos(phi), np.sin(phi)],
                                                                    axis=1)
                        self.disk_pos = start - self.centre
                    params["radius [um]"] = self.radius
                    self.motion_class = C.MOTION_CLASSES["confined"]
                elif m.model not in ("brownian", "fbm"):  # pragma: no cover - validated earlier
                    raise ValueError(f"unknown motion model {m.model!r}")
        params[C.D_UM2_S] = D
        params[C.ALPHA] = alpha
        self.D, self.alpha = D, alpha
        self.params = params

    def chunk(self, c: int) -> dict:
        """Positions ``(n, n_chunk_frames * substeps, 2)`` and per-frame labels of chunk ``c``."""
        if c != self.next_chunk:
            raise RuntimeError(f"chunks must be generated in order: expected {self.next_chunk}")
        self.next_chunk += 1
        m, n, S = self.m, self.n, self.S
        f0, f1 = self.fb[c], self.fb[c + 1]
        n_pos = (f1 - f0) * S
        state = np.zeros((n, f1 - f0), dtype=np.int64)
        if m.model == "immobile":
            pos = np.repeat(self.x0[:, None, :], n_pos, axis=1)
        elif m.model == "multistate":
            u = self.u.get(c)
            state = np.empty((n, f1 - f0), dtype=np.int64)
            prev = self.prev_state
            for f in range(f1 - f0):
                if prev is None:
                    state[:, f] = self.state0
                else:
                    state[:, f] = (u[:, f, None] > self.cum_P[prev]).sum(axis=1)
                prev = state[:, f]
            # states of the frames the steps [sb_c, sb_c+1) fall in (one frame back if c > 0)
            first = f0 if self.prev_state is None else f0 - 1
            known = state if self.prev_state is None else np.concatenate(
                [self.prev_state[:, None], state], axis=1)
            self.prev_state = state[:, -1].copy()
            step_frame = np.arange(self.sb[c], self.sb[c + 1]) // S - first
            step_state = known[:, step_frame]
            steps = np.zeros((n, step_frame.size, 2))
            for s, inc in enumerate(self.inc):
                steps = np.where((step_state == s)[..., None], inc.chunk(c), steps)
            pos = self.integrate(steps)
            rows = np.arange(n)[:, None]
            return dict(positions=pos, frame_D=self.Ks[rows, state],
                        frame_alpha=self.alphas[rows, state], state=state,
                        motion_class=self.classes[state])
        elif m.model == "anisotropic":
            z = self.z.get(c)
            a = z[..., 0] * self.sa[:, None]
            b = z[..., 1] * self.sb_[:, None]
            cs, sn = self.c[:, None], self.s[:, None]
            pos = self.integrate(np.stack([cs * a - sn * b, sn * a + cs * b], axis=-1))
        else:
            steps = self.inc.chunk(c)
            if m.model in ("brownian", "fbm"):
                pos = self.integrate(steps)
            elif m.model == "directed":
                t = (np.arange(f0 * S, f1 * S) + 0.5) * self.dt
                t_first = (0 + 0.5) * self.dt
                pos = self.integrate(steps) + (t - t_first)[None, :, None] * self.v[:, None, :]
            elif m.shape == "box":
                pos = reflect_in_box(self.integrate(steps), self.centre, self.radius)
            else:
                pos = self._disk(steps, first=(c == 0))
        return dict(
            positions=pos,
            frame_D=np.repeat(self.D[:, None], f1 - f0, axis=1),
            frame_alpha=np.repeat(self.alpha[:, None], f1 - f0, axis=1),
            state=state,
            motion_class=np.full((n, f1 - f0), self.motion_class, dtype=np.int64),
        )

    def _disk(self, steps: np.ndarray, first: bool) -> np.ndarray:
        """:func:`reflect_in_disk` continued from the last position of the previous chunk."""
        n, k, _ = steps.shape
        out = np.empty((n, k + int(first), 2))
        pos = self.disk_pos
        if first:
            out[:, 0] = pos
        radius = self.radius
        for j in range(k):
            pos = pos + steps[:, j]
            r = np.hypot(pos[:, 0], pos[:, 1])
            outside = r > radius
            if outside.any():
                r_new = np.minimum(np.abs(2 * radius[outside] - r[outside]), radius[outside])
                pos[outside] *= (r_new / r[outside])[:, None]
            out[:, j + int(first)] = pos
        self.disk_pos = pos
        return out + self.centre[:, None, :]


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


class TrajectoryStream:
    """All particles' motion generated frame chunk by frame chunk, in bounded memory.

    Draws exactly the random numbers of :func:`simulate_trajectories` (whose result is the
    concatenation of the chunks), so a long movie can be simulated without holding the
    ``(N, n_frames * substeps, 2)`` sub-step positions.

    Args:
        cfg: the simulation config. rng: the trajectory stream.
        frame_bounds: ``[0, f1, ..., n_frames]``; chunk ``c`` covers frames
            ``[frame_bounds[c], frame_bounds[c + 1])``. With one chunk the arrays are drawn
            whole (the in-memory path, no overhead).
        spill_dir: folder for the temporary file of fBM series (α ≠ 1) in multi-chunk mode.
    """

    def __init__(self, cfg: SimulationConfig, rng: np.random.Generator,
                 frame_bounds: list[int] | None = None, spill_dir: str | None = None):
        n = n_particles(cfg, rng)
        F, S, dt = cfg.n_frames, cfg.substeps, cfg.substep_time_s
        self.frame_bounds = [0, F] if frame_bounds is None else [int(f) for f in frame_bounds]
        if self.frame_bounds[0] != 0 or self.frame_bounds[-1] != F or np.any(
                np.diff(self.frame_bounds) <= 0):
            raise ValueError(f"frame_bounds must increase from 0 to {F}: {frame_bounds}")
        self.n, self.substeps, self.substep_time_s = n, S, dt
        w, h = cfg.fov_size_um
        margin = cfg.fov.margin_um
        motions = cfg.particles.motions
        weights = np.array([m.weight for m in motions], float)
        population = rng.choice(len(motions), size=n, p=weights / weights.sum())
        x0 = np.stack([rng.uniform(-margin, w + margin, n),
                       rng.uniform(-margin, h + margin, n)], 1)
        self.populations: list[tuple[np.ndarray, _PopulationStream]] = []
        columns: dict[str, np.ndarray] = {}
        for p, m in enumerate(motions):
            idx = np.flatnonzero(population == p)
            if idx.size == 0:
                continue
            pop = _PopulationStream(rng, m, x0[idx], self.frame_bounds, S, dt, spill_dir)
            self.populations.append((idx, pop))
            for key, values in pop.params.items():
                if key not in columns:
                    columns[key] = np.full(n, np.nan)
                columns[key][idx] = values
        self.particles = pd.DataFrame({
            C.TRACK_ID: np.arange(n), "population": population,
            "model": np.array([motions[p].model for p in population], dtype=object), **columns})

    @property
    def n_chunks(self) -> int:
        return len(self.frame_bounds) - 1

    def chunk(self, c: int) -> Trajectories:
        """Chunk ``c`` (call in order 0, 1, ...) as :class:`Trajectories` of its frames."""
        n, S = self.n, self.substeps
        F = self.frame_bounds[c + 1] - self.frame_bounds[c]
        positions = np.empty((n, F * S, 2))
        frame_D = np.empty((n, F))
        frame_alpha = np.empty((n, F))
        frame_state = np.zeros((n, F), dtype=np.int64)
        frame_class = np.empty((n, F), dtype=np.int64)
        for idx, pop in self.populations:
            out = pop.chunk(c)
            positions[idx] = out["positions"]
            frame_D[idx] = out["frame_D"]
            frame_alpha[idx] = out["frame_alpha"]
            frame_state[idx] = out["state"]
            frame_class[idx] = out["motion_class"]
        return Trajectories(positions, S, self.substep_time_s, frame_D, frame_alpha,
                            frame_state, frame_class, self.particles)


def simulate_trajectories(cfg: SimulationConfig, rng: np.random.Generator) -> Trajectories:
    """Draw particles uniformly in the field of view plus margin and move them.

    Particles are split among ``cfg.particles.motions`` by their weights. (One chunk of
    :class:`TrajectoryStream`, which generates long movies chunk by chunk.)
    """
    return TrajectoryStream(cfg, rng).chunk(0)
