"""The five anomalous-diffusion models of the AnDi 1 challenge, in 2D, vectorized and seeded.

Muñoz-Gil et al., *Objective comparison of methods to decode anomalous diffusion*, Nat Commun
12, 6253 (2021). Every model returns positions on an integer time grid ``t = 0 .. T−1`` (time
unit = one frame, length unit arbitrary: AnDi 1 rescales every trajectory anyway), for ``N``
trajectories at once, as an ``(N, T, 2)`` array. All randomness comes from the
``np.random.Generator`` that is passed in.

Models and the α their ensemble-averaged MSD ⟨r²(t)⟩ ∝ t^α takes (AnDi 1's ranges,
:data:`ALPHA_RANGES`):

- ``attm`` (annealed transient time motion; Massignan et al., PRL 2014): Brownian motion whose
  D changes at random times; D ~ P(D) ∝ D^{σ−1} on (0, 1], the time spent with D is
  D^{−γ}; with σ < γ < σ + 1 the MSD exponent is α = σ/γ (subdiffusive, 0 < α ≤ 1).
- ``ctrw`` (continuous-time random walk): Gaussian jumps separated by Pareto waiting times
  P(τ > t) = t^{−α} (t ≥ 1), MSD ∝ t^α (0 < α ≤ 1).
- ``fbm`` (fractional Brownian motion, exact by circulant embedding, :mod:`.fbm`):
  0 < α < 2.
- ``lw`` (Lévy walk): flights at constant speed in uniformly random directions, flight times
  Pareto with P(τ > t) = t^{−σ}, σ = 3 − α, MSD ∝ t^α (1 < α ≤ 2).
- ``sbm`` (scaled Brownian motion): Gaussian increments with
  ⟨Δx²_k⟩ = 2K((k+1)^α − k^α) per dimension, MSD = 4Kt^α (0 < α ≤ 2).

AnDi 1's noise model (:func:`andi1_noise`): each trajectory is shifted to start at the origin
and divided by the standard deviation of its displacements (per dimension), then Gaussian
localization noise of std σ ∈ {0.1, 0.5, 1} (relative to that unit step std) is added.
"""

from __future__ import annotations

import numpy as np

from smlmnet.simulate.fbm import fgn_2d

MODELS = ("attm", "ctrw", "fbm", "lw", "sbm")  # AnDi 1's label order (0..4)
# the α grid of AnDi 1 (steps of 0.05) restricted to each model's valid range
ALPHA_RANGES = {"attm": (0.05, 1.0), "ctrw": (0.05, 1.0), "fbm": (0.05, 1.95),
                "lw": (1.05, 2.0), "sbm": (0.05, 2.0)}
NOISE_LEVELS = (0.1, 0.5, 1.0)


def alpha_grid(model: str, step: float = 0.05) -> np.ndarray:
    """The α values AnDi 1 draws for ``model`` (0.05 steps inside :data:`ALPHA_RANGES`)."""
    lo, hi = ALPHA_RANGES[model]
    return np.round(np.arange(lo, hi + 1e-9, step), 2)


def _alpha_array(alpha, n: int) -> np.ndarray:
    a = np.broadcast_to(np.asarray(alpha, float), (n,)).copy()
    return a


def _pareto(rng: np.random.Generator, exponent: np.ndarray, shape: tuple) -> np.ndarray:
    """Pareto times with P(τ > t) = t^{−exponent} for t ≥ 1; ``exponent`` ``(N,)``."""
    u = rng.random(shape)
    u = 1.0 - u  # (0, 1]
    with np.errstate(over="ignore"):
        return u ** (-1.0 / exponent[:, None])


def _row_searchsorted(cum: np.ndarray, times: np.ndarray, side: str = "right") -> np.ndarray:
    """Per row ``i``: ``np.searchsorted(cum[i], times, side)`` for a row-wise sorted ``cum``
    ``(N, M)`` whose values lie in [0, bound); vectorized by offsetting each row."""
    n, m = cum.shape
    bound = float(max(np.max(times), 0)) + 2.0
    cum = np.minimum(cum, bound - 1.0)
    offset = (np.arange(n) * 2 * bound)[:, None]
    flat = (cum + offset).ravel()
    q = (times[None, :] + offset).ravel()
    idx = np.searchsorted(flat, q, side=side).reshape(n, -1)
    return idx - (np.arange(n) * m)[:, None]


def ctrw(rng: np.random.Generator, alpha, n: int, T: int,
         return_waiting_times: bool = False):
    """CTRW positions ``(n, T, 2)``: unit Gaussian jumps (per dimension) at the end of Pareto
    waiting times P(τ > t) = t^{−α}, t ≥ 1 (in frames); position at frame k = sum of the
    jumps made at times ≤ k. ``alpha``: scalar or ``(n,)`` in (0, 1]. With
    ``return_waiting_times`` also returns the ``(n, T)`` waiting times drawn."""
    a = _alpha_array(alpha, n)
    tau = _pareto(rng, a, (n, T))          # ≥ 1 each, so T of them always cover [0, T)
    cum = np.cumsum(tau, axis=1)
    jumps = rng.standard_normal((n, T, 2))
    cjump = np.concatenate([np.zeros((n, 1, 2)), np.cumsum(jumps, axis=1)], axis=1)
    count = _row_searchsorted(cum, np.arange(T, dtype=float))  # jumps done by frame k
    pos = np.take_along_axis(cjump, count[..., None].repeat(2, axis=2), axis=1)
    return (pos, tau) if return_waiting_times else pos


def levy_walk(rng: np.random.Generator, alpha, n: int, T: int, speed: float = 1.0) -> np.ndarray:
    """Lévy-walk positions ``(n, T, 2)``: flights at ``speed`` (length units per frame) in
    uniformly random directions, flight times Pareto with P(τ > t) = t^{−(3−α)}, t ≥ 1;
    ``alpha`` in (1, 2]."""
    a = _alpha_array(alpha, n)
    sigma = 3.0 - a
    tau = _pareto(rng, sigma, (n, T))
    tau = np.minimum(tau, 2.0 * T + 2)     # a longer flight looks the same inside [0, T)
    start = np.concatenate([np.zeros((n, 1)), np.cumsum(tau, axis=1)[:, :-1]], axis=1)
    angle = rng.uniform(0, 2 * np.pi, (n, T))
    vel = speed * np.stack([np.cos(angle), np.sin(angle)], axis=-1)      # (n, T, 2)
    disp = vel * tau[..., None]
    cdisp = np.concatenate([np.zeros((n, 1, 2)), np.cumsum(disp, axis=1)], axis=1)
    times = np.arange(T, dtype=float)
    k = _row_searchsorted(start, times) - 1       # flight in progress at each frame
    k = np.clip(k, 0, T - 1)
    s = np.take_along_axis(start, k, axis=1)
    done = np.take_along_axis(cdisp, k[..., None].repeat(2, axis=2), axis=1)
    v = np.take_along_axis(vel, k[..., None].repeat(2, axis=2), axis=1)
    return done + v * (times[None, :] - s)[..., None]


def attm_exponents(rng: np.random.Generator, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ATTM's (σ, γ) for each target α in regime σ < γ < σ + 1 with α = σ/γ: σ uniform in
    (0, min(3, α/(1−α))) (the regime's bound), γ = σ/α."""
    alpha = np.asarray(alpha, float)
    with np.errstate(divide="ignore"):
        bound = np.where(alpha < 1, alpha / np.maximum(1 - alpha, 1e-12), np.inf)
    hi = np.minimum(3.0, bound)
    sigma = rng.uniform(0.05, 1.0, alpha.shape) * hi
    return sigma, sigma / alpha


def attm(rng: np.random.Generator, alpha, n: int, T: int) -> np.ndarray:
    """ATTM positions ``(n, T, 2)``: Brownian steps with per-dimension variance 2D, D ~
    P(D) ∝ D^{σ−1} on (0, 1] redrawn after a time D^{−γ} (frames); α = σ/γ in (0, 1]."""
    a = _alpha_array(alpha, n)
    sigma, gamma = attm_exponents(rng, a)
    u = 1.0 - rng.random((n, T))
    D = u ** (1.0 / sigma[:, None])                       # P(D) ∝ D^{σ−1}
    with np.errstate(divide="ignore", over="ignore"):
        dur = np.minimum(D ** (-gamma[:, None]), 2.0 * T + 2)   # ≥ 1 as D ≤ 1
    cum = np.cumsum(dur, axis=1)
    seg = np.clip(_row_searchsorted(cum, np.arange(T - 1, dtype=float)), 0, T - 1)
    Dk = np.take_along_axis(D, seg, axis=1)                # D of each step (n, T−1)
    steps = rng.standard_normal((n, T - 1, 2)) * np.sqrt(2.0 * Dk)[..., None]
    return _integrate(steps)


def fbm(rng: np.random.Generator, alpha, n: int, T: int, K=0.5) -> np.ndarray:
    """fBM positions ``(n, T, 2)`` with MSD = 4Kt^α (per dimension 2Kt^α), α in (0, 2)."""
    a = _alpha_array(alpha, n)
    K = np.broadcast_to(np.asarray(K, float), (n,))
    steps = fgn_2d(rng, a, T - 1) * np.sqrt(2.0 * K)[:, None, None]
    return _integrate(steps)


def sbm(rng: np.random.Generator, alpha, n: int, T: int, K=0.5) -> np.ndarray:
    """Scaled-Brownian positions ``(n, T, 2)``: independent Gaussian increments with per
    dimension variance 2K((k+1)^α − k^α), so MSD = 4Kt^α; α in (0, 2]."""
    a = _alpha_array(alpha, n)
    K = np.broadcast_to(np.asarray(K, float), (n,))
    k = np.arange(T, dtype=float)[None, :]
    var = 2.0 * K[:, None] * np.diff(k ** a[:, None], axis=1)
    steps = rng.standard_normal((n, T - 1, 2)) * np.sqrt(var)[..., None]
    return _integrate(steps)


def _integrate(steps: np.ndarray) -> np.ndarray:
    n = steps.shape[0]
    return np.concatenate([np.zeros((n, 1, 2)), np.cumsum(steps, axis=1)], axis=1)


GENERATORS = {"attm": attm, "ctrw": ctrw, "fbm": fbm, "lw": levy_walk, "sbm": sbm}


def simulate_model(rng: np.random.Generator, model: str, alpha, n: int, T: int) -> np.ndarray:
    """``n`` trajectories ``(n, T, 2)`` of ``model`` (one of :data:`MODELS`) with exponent
    ``alpha`` (scalar or ``(n,)``), positions in arbitrary units at frames 0..T−1."""
    if model not in GENERATORS:
        raise ValueError(f"unknown AnDi 1 model {model!r}; choose from {MODELS}")
    if T < 2:
        raise ValueError(f"T must be >= 2; got {T}")
    a = _alpha_array(alpha, n)
    lo, hi = ALPHA_RANGES[model]
    if np.any(a < lo - 1e-9) or np.any(a > hi + 1e-9):
        raise ValueError(f"{model}: alpha must lie in [{lo}, {hi}] (AnDi 1's range)")
    return GENERATORS[model](rng, a, n, T)


def andi1_noise(rng: np.random.Generator, positions: np.ndarray, sigma) -> np.ndarray:
    """AnDi 1's normalization and noise: ``positions`` ``(n, T, 2)`` shifted to start at 0,
    divided per trajectory and dimension by the std of the displacements, plus Gaussian noise
    of std ``sigma`` (scalar or ``(n,)``, units of that step std)."""
    n = positions.shape[0]
    steps = np.diff(positions, axis=1)
    std = steps.std(axis=1, keepdims=True)                # (n, 1, 2)
    std = np.where(std > 0, std, 1.0)
    x = (positions - positions[:, :1]) / std
    s = np.broadcast_to(np.asarray(sigma, float), (n,))
    return x + rng.standard_normal(x.shape) * s[:, None, None]


def andi1_batch(rng: np.random.Generator, n: int, T: int, models=MODELS,
                noise_levels=NOISE_LEVELS, scale_log10: tuple[float, float] = (0.0, 0.0),
                full_length: int | None = None):
    """``n`` AnDi 1 task 1/2 trajectories of length ``T`` (2D): model uniform among
    ``models``, α uniform on that model's AnDi grid, AnDi 1 normalization and noise σ drawn
    from ``noise_levels``, then every trajectory multiplied by 10^U(scale_log10) (training
    draws a scale so that the network never relies on AnDi's unit step std).

    Returns a dict: ``positions`` ``(n, T, 2)``; ``alpha`` ``(n,)``; ``model`` ``(n,)`` int
    (index in :data:`MODELS`); ``noise`` ``(n,)``; ``logK`` ``(n,)`` natural log of K (MSD =
    4Kt^α, units of the returned positions² per frame^α) for fBM, NaN for other models (K is
    not defined the same way for them).
    """
    models = [m if isinstance(m, str) else MODELS[int(m)] for m in models]
    T_keep = T
    T = max(T, int(full_length or 0))
    label = rng.integers(len(models), size=n)
    alpha = np.empty(n)
    out = np.empty((n, T, 2))
    logK = np.full(n, np.nan)
    for j, m in enumerate(models):
        sel = np.flatnonzero(label == j)
        if sel.size == 0:
            continue
        a = rng.choice(alpha_grid(m), size=sel.size)
        alpha[sel] = a
        out[sel] = simulate_model(rng, m, a, sel.size, T)
        if m == "fbm":
            logK[sel] = np.log(0.5)     # fbm(): K = 0.5, per-dimension step variance 1
    noise = rng.choice(np.asarray(noise_levels, float), size=n)
    # AnDi's normalization divides x and y by their step std: K becomes K/(std_x·std_y)
    std = np.diff(out, axis=1).std(axis=1)                # (n, 2)
    std = np.where(std > 0, std, 1.0)
    out = andi1_noise(rng, out, noise)
    scale = 10 ** rng.uniform(*scale_log10, size=n)
    out *= scale[:, None, None]
    logK += 2 * np.log(scale) - np.log(std).sum(axis=1)
    index = np.array([MODELS.index(m) for m in models])[label]
    return {"positions": np.ascontiguousarray(out[:, :T_keep]), "alpha": alpha,
            "model": index, "noise": noise, "logK": logK}


def _normalized_segment(rng, model: str, alpha: np.ndarray, n: int, T: int):
    """``n`` trajectories of ``T`` points normalized to unit step std per dimension, and the
    ln K of fBM ones in those units (NaN for the other models)."""
    x = simulate_model(rng, model, alpha, n, T)
    std = np.diff(x, axis=1).std(axis=1)                   # (n, 2)
    std = np.where(std > 0, std, 1.0)
    logK = (np.log(0.5) - np.log(std).sum(axis=1)) if model == "fbm" else np.full(n, np.nan)
    return (x - x[:, :1]) / std[:, None, :], logK


def two_segment_batch(rng: np.random.Generator, n: int, T: int, models=MODELS,
                      noise_levels=NOISE_LEVELS, scale_log10: tuple[float, float] = (0.0, 0.0),
                      jump_log10: tuple[float, float] = (-1.0, 1.0), min_segment: int = 5):
    """``n`` trajectories of ``T`` points with one changepoint (AnDi 1 task 3 style, 2D): the
    first displacement of the second segment is ``cp`` ~ U[min_segment, T−1−min_segment];
    each segment has its own model and α (uniform, as :func:`andi1_batch`), is normalized to
    unit step std, and the second one's steps are multiplied by 10^U(``jump_log10``) (a jump
    of D by that factor squared); then AnDi 1's normalization, noise and a global scale.

    Returns a dict: ``positions`` ``(n, T, 2)``; ``cp`` ``(n,)``; per displacement
    ``step_alpha`` ``(n, T−1)``, ``step_logK`` ``(n, T−1)`` (ln K of fBM segments in the
    returned units, NaN otherwise); ``noise`` ``(n,)``.
    """
    if T < 2 * min_segment + 2:
        raise ValueError(f"T={T} is too short for two segments of >= {min_segment} steps")
    models = [m if isinstance(m, str) else MODELS[int(m)] for m in models]
    cp = rng.integers(min_segment, T - 1 - min_segment + 1, size=n)
    pos = np.empty((n, T, 2))
    step_alpha = np.empty((n, T - 1))
    step_logK = np.empty((n, T - 1))
    for i in range(n):
        c = int(cp[i])
        segs = []
        for _lo_pt, npts in ((0, c + 1), (c, T - c)):
            m = models[int(rng.integers(len(models)))]
            a = float(rng.choice(alpha_grid(m)))
            x, lk = _normalized_segment(rng, m, a, 1, npts)
            segs.append((x[0], a, lk[0]))
        f = 10 ** rng.uniform(*jump_log10)
        (xa, aa, ka), (xb, ab, kb) = segs
        pos[i, :c + 1] = xa
        pos[i, c + 1:] = xa[-1] + f * xb[1:]
        step_alpha[i, :c], step_alpha[i, c:] = aa, ab
        step_logK[i, :c], step_logK[i, c:] = ka, kb + 2 * np.log(f)
    std = np.diff(pos, axis=1).std(axis=1)
    std = np.where(std > 0, std, 1.0)
    noise = rng.choice(np.asarray(noise_levels, float), size=n)
    pos = andi1_noise(rng, pos, noise)
    scale = 10 ** rng.uniform(*scale_log10, size=n)
    pos *= scale[:, None, None]
    step_logK += (2 * np.log(scale) - np.log(std).sum(axis=1))[:, None]
    return {"positions": pos, "cp": cp, "step_alpha": step_alpha, "step_logK": step_logK,
            "noise": noise}
