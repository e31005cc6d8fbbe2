"""The five phenomenological models of the AnDi 2 challenge, in 2D, vectorized and seeded.

Muñoz-Gil et al., *Quantitative evaluation of methods to analyze motion changes in
single-particle experiments*, Nat Commun 16 (2025); conventions learned from andi-datasets'
``models_phenom`` documentation (the code here is written independently). Trajectories only.

Units: positions in px, time in frames. Every diffusive segment is fractional Brownian motion
with per-dimension MSD 2Kτ^α (2D MSD = 4Kτ^α), K in px²/frame^α; a new segment starts with
new fractional noise (no memory across a change). Per-frame labels follow andi-datasets: the
label at frame t (α, K, state) describes the displacement t−1 → t; states
(:data:`STATES`): 0 immobile (α = K = 0), 1 confined, 2 free, 3 directed (α ≥ 1.9).
A changepoint is a frame c ≥ 1 whose label differs from frame c−1's.

Models (:data:`MODELS`), with the challenge's defaults (:func:`draw_experiment`):

- ``single_state``: one (α, K) per particle.
- ``multi_state``: Markov switching between (α, K) states with transition matrix M per frame.
- ``immobile_traps``: ``n_traps`` point traps of radius ``r``; a free particle closer than r
  to a trap binds with probability ``Pb`` per frame (immobile until it unbinds with ``Pu``).
- ``dimerization``: two free particles closer than 2r bind with ``Pb`` and move together with
  the dimer state's (α, K) (of the first particle) until the pair unbinds with ``Pu``.
- ``confinement``: circular compartments of radius r; inside, the particle has the confined
  (α, K); leaving a compartment succeeds with probability ``trans``, otherwise the step is
  mirrored back inside (radial mirror, a simplification of andi-datasets' specular bounce).

All particles live in a reflecting box [0, L]² (the challenge: L = 1.8 × 128 px, N = 50
particles per experiment, which fixes the densities of traps, compartments and partners).
Localization noise: Gaussian, std σ px per coordinate (challenge: 0.12).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from smlmnet.simulate.fbm import fgn_2d

MODELS = ("single_state", "multi_state", "immobile_traps", "dimerization", "confinement")
STATES = ("immobile", "confined", "free", "directed")
ALPHA_BOUNDS = (0.0, 1.999)        # andi-datasets' bound on α
K_BOUNDS = (1e-12, 1e6)            # andi-datasets' bound on K (its "D")
ALPHA_DIRECTED = 1.9               # free motion with α ≥ this is labelled directed
FOV_L = 128.0                      # challenge field of view, px
BOX_L = 1.8 * FOV_L                # simulated environment, px
N_EXPERIMENT = 50                  # particles per challenge experiment
SIGMA_NOISE = 0.12                 # localization noise std, px per coordinate
K_FAST = 1.0                       # baseline K, px²/frame


def truncated_normal(rng: np.random.Generator, mean, var, size, bounds) -> np.ndarray:
    """Gaussian (``mean``, variance ``var``) truncated to ``bounds``; ``var`` 0 → the mean."""
    mean = np.broadcast_to(np.asarray(mean, float), size)
    sd = np.sqrt(np.broadcast_to(np.asarray(var, float), size))
    out = mean.copy()
    ok = sd > 0
    if ok.any():
        lo, hi = (bounds[0] - mean[ok]) / sd[ok], (bounds[1] - mean[ok]) / sd[ok]
        out[ok] = stats.truncnorm.rvs(lo, hi, loc=mean[ok], scale=sd[ok], random_state=rng)
    return np.clip(out, *bounds)


def draw_experiment(rng: np.random.Generator, model: str, alpha_single=(0.5, 1.5),
                    alpha_fast=(0.8, 1.2), alpha_gap=(0.2, 0.6), slow_factor=(0.01, 0.1),
                    k_fast: float = K_FAST) -> dict:
    """One experiment's parameters as the AnDi 2 challenge draws them (andi-datasets'
    ``_get_dic_andi2``): ``alphas`` / ``Ks`` ``(n_states, 2)`` rows of (mean, variance) for
    the per-particle truncated normals, plus the model's geometry/kinetics (``M``, ``r``,
    ``Pb``, ``Pu``, ``n_traps``, ``n_compartments``, ``trans``). ``alpha_single``: range of
    the mean α (single state, traps); ``alpha_fast`` and ``alpha_gap``: the first state's α
    and how much lower the second's is; ``slow_factor``: K_slow/K_fast range."""
    if model not in MODELS:
        raise ValueError(f"unknown AnDi 2 model {model!r}; choose from {MODELS}")
    if model in ("single_state", "immobile_traps"):
        p = {"alphas": np.array([[rng.uniform(*alpha_single), 0.01]]),
             "Ks": np.array([[k_fast, 0.01 * k_fast]])}
    else:
        fast = k_fast * (1 + 0.01 * rng.standard_normal())
        slow = fast * rng.uniform(*slow_factor)
        a1 = rng.uniform(*alpha_fast)
        a2 = a1 - rng.uniform(*alpha_gap)
        p = {"alphas": np.array([[a1, 0.01], [a2, 0.01]]),
             "Ks": np.array([[fast, 0.01 * fast], [slow, 0.01 * slow]])}
    p.update({"multi_state": {"M": np.array([[0.99, 0.01], [0.01, 0.99]])},
              "immobile_traps": {"r": 0.4, "Pb": 1.0, "Pu": 0.01, "n_traps": 300},
              "dimerization": {"r": 0.6, "Pb": 1.0, "Pu": 0.01},
              "confinement": {"r": 5.0, "n_compartments": 30, "trans": 0.1},
              "single_state": {}}[model])
    return p


class _NoisePool:
    """Unit 2D fractional Gaussian noise per (particle, state, slot): a segment of state s
    that is particle n's k-th in that state reads slot k mod ``slots`` from its start
    (fresh noise after each change, up to ``slots`` segments per state before reuse)."""

    def __init__(self, rng, alpha: np.ndarray, n_steps: int, slots: int = 4):
        n, ns = alpha.shape
        a = np.repeat(np.clip(alpha, 1e-3, 1.999)[..., None], slots, axis=2).reshape(-1)
        self.g = fgn_2d(rng, a, max(n_steps, 1)).reshape(n, ns, slots, max(n_steps, 1), 2)
        self.slots = slots

    def __call__(self, idx, state, count, t_rel):
        return self.g[idx, state, count % self.slots, t_rel]


def _reflect_box(x: np.ndarray, L: float) -> np.ndarray:
    x = np.abs(x)                                   # mirror at 0
    x = np.where(x > L, 2 * L - x, x)               # mirror at L (steps ≪ L)
    return np.abs(x)


def _per_particle(rng, p: dict, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(α, K) ``(n, n_states)`` per particle from the experiment's (mean, variance) rows."""
    a = np.stack([truncated_normal(rng, m, v, n, ALPHA_BOUNDS) for m, v in p["alphas"]], 1)
    k = np.stack([truncated_normal(rng, m, v, n, K_BOUNDS) for m, v in p["Ks"]], 1)
    return a, k


def _compartments(rng, n: int, r: float, L: float) -> np.ndarray:
    """Up to ``n`` non-overlapping circle centres ``(m, 2)`` inside the box (rejection)."""
    c = [rng.uniform(r, L - r, 2)]
    for _ in range(100 * n):
        if len(c) >= n:
            break
        q = rng.uniform(r, L - r, 2)
        if np.min(np.linalg.norm(np.asarray(c) - q, axis=1)) > 2 * r:
            c.append(q)
    return np.asarray(c)


def simulate(rng: np.random.Generator, model: str, n: int, T: int, params: dict | None = None,
             L: float | None = None) -> dict:
    """``n`` particles of one experiment of ``model`` over ``T`` frames.

    Args:
        params: from :func:`draw_experiment` (drawn with the defaults when ``None``).
        L: box side, px (default: :data:`BOX_L` scaled by √(n/50), the challenge's density).
            ``n_traps`` and ``n_compartments`` are counts per challenge box (BOX_L²): the
            numbers used scale with (L/BOX_L)² (densities are kept).

    Returns a dict: ``positions`` ``(n, T, 2)`` px (no localization noise); per-frame labels
    ``alpha`` ``(n, T)``, ``K`` ``(n, T)`` (px²/frame^α) and ``state`` ``(n, T)`` int
    (index in :data:`STATES`); ``params``; for dimerization also ``partner`` ``(n, T)``
    (the bound partner at each frame, −1 for none).
    """
    p = params if params is not None else draw_experiment(rng, model)
    if model not in MODELS:
        raise ValueError(f"unknown AnDi 2 model {model!r}; choose from {MODELS}")
    L = float(L if L is not None else BOX_L * np.sqrt(n / N_EXPERIMENT))
    a, k = _per_particle(rng, p, n)
    ns = a.shape[1]
    noise = _NoisePool(rng, a, T)
    idx = np.arange(n)
    pos = np.empty((n, T, 2))
    pos[:, 0] = rng.uniform(0, L, (n, 2))
    # diffusive state (column of a/k), −1 = immobile; segment start and per-state counters
    s = np.zeros(n, int)
    if model == "multi_state":
        s = rng.integers(ns, size=n)
    count = np.zeros((n, ns), int)
    start = np.zeros(n, int)
    leader = idx.copy()                # dimerization: whose noise/parameters a particle uses
    partner = np.full(n, -1)           # dimerization: bound partner (−1: none)
    alpha_t, k_t, state_t = np.empty((n, T)), np.empty((n, T)), np.empty((n, T), int)
    partner_t = np.full((n, T), -1)
    traps = centres = None
    if model == "immobile_traps":
        traps = rng.uniform(0, L, (max(1, int(round(p["n_traps"] * (L / BOX_L) ** 2))), 2))
    if model == "confinement":
        m = max(1, int(round(p["n_compartments"] * (L / BOX_L) ** 2)))
        centres = _compartments(rng, m, p["r"], L)

    def inside(x):
        d = np.linalg.norm(x[:, None, :] - centres[None], axis=2)
        return d.min(1) < p["r"], d.argmin(1)

    if model == "confinement":
        conf, comp = inside(pos[:, 0])
        s = conf.astype(int)

    def label(t):
        free = s >= 0
        sc = np.maximum(s, 0)
        alpha_t[:, t] = np.where(free, a[leader, sc], 0.0)
        k_t[:, t] = np.where(free, k[leader, sc], 0.0)
        st = np.where(alpha_t[:, t] >= ALPHA_DIRECTED, 3, 2)
        if model == "confinement":
            st = np.where(s == 1, 1, st)
        state_t[:, t] = np.where(free, st, 0)

    label(0)
    for t in range(1, T):
        new = s.copy()
        rand = rng.random(n)
        if model == "multi_state":
            stay = p["M"][s, s]
            go = rand >= stay
            # two or more states: draw the next one from row s of M without the diagonal
            if go.any():
                row = p["M"][s[go]].copy()
                row[np.arange(go.sum()), s[go]] = 0
                cum = np.cumsum(row / row.sum(1, keepdims=True), 1)
                new[go] = (rng.random(go.sum())[:, None] > cum).sum(1)
        elif model == "immobile_traps":
            unbind = (s < 0) & (rand < p["Pu"])
            near = np.linalg.norm(pos[:, t - 1, None] - traps[None], axis=2).min(1) < p["r"]
            bind = (s >= 0) & near & (rng.random(n) < p["Pb"])
            new[unbind], new[bind] = 0, -1
        elif model == "dimerization":
            leaders = np.flatnonzero(partner > idx)            # one coin per pair
            just = np.zeros(n, bool)
            for i0 in leaders[rng.random(leaders.size) < p["Pu"]]:
                j0 = partner[i0]
                partner[[i0, j0]] = -1
                new[[i0, j0]] = 0
                just[[i0, j0]] = True                           # no rebinding this frame
            cand = np.flatnonzero((partner < 0) & ~just)
            if cand.size > 1:
                x = pos[cand, t - 1]
                d = np.linalg.norm(x[:, None] - x[None], axis=2)
                ii, jj = np.nonzero(np.triu(d < 2 * p["r"], 1))
                for i0, j0 in zip(cand[ii], cand[jj]):
                    if partner[i0] >= 0 or partner[j0] >= 0 or rng.random() >= p["Pb"]:
                        continue
                    partner[i0], partner[j0] = j0, i0
                    new[[i0, j0]] = 1
            leader = np.where(partner >= 0, np.minimum(idx, partner), idx)
        changed = new != s
        s = new
        sc = np.maximum(s, 0)
        count[changed, sc[changed]] += 1
        start[changed] = t
        # partners of a dimer share the leader's segment clock, noise and (α, K)
        step = noise(leader, sc, count[leader, sc], t - start[leader]) * np.sqrt(
            2 * k[leader, sc])[:, None]
        step[s < 0] = 0.0
        x = pos[:, t - 1] + step
        if model == "confinement":
            was = s == 1
            now_in, now_c = inside(x)
            left = was & (np.linalg.norm(x - centres[comp], axis=1) >= p["r"])
            escape = left & (rng.random(n) < p["trans"])
            bounce = left & ~escape
            if bounce.any():                       # radial mirror back into the compartment
                c = centres[comp[bounce]]
                v = x[bounce] - c
                d = np.linalg.norm(v, axis=1, keepdims=True)
                x[bounce] = c + v / d * np.clip(2 * p["r"] - d, 0, p["r"] * (1 - 1e-6))
            enter = ~was & now_in
            comp = np.where(enter | (escape & now_in), now_c, comp)
            new_s = np.where(bounce | (was & ~left), 1, np.where(now_in, 1, 0))
            ch = new_s != s
            s = new_s
            count[ch, s[ch]] += 1
            start[ch] = t
        pos[:, t] = _reflect_box(x, L)
        label(t)
        partner_t[:, t] = partner
    out = {"positions": pos, "alpha": alpha_t, "K": k_t, "state": state_t, "params": p}
    if model == "dimerization":
        out["partner"] = partner_t
    return out


def add_noise(rng: np.random.Generator, positions: np.ndarray, sigma) -> np.ndarray:
    """Positions ``(n, T, 2)`` plus Gaussian localization noise of std ``sigma`` px (scalar or
    ``(n,)``) per coordinate."""
    s = np.broadcast_to(np.asarray(sigma, float), (positions.shape[0],))
    return positions + rng.standard_normal(positions.shape) * s[:, None, None]


def changepoints(alpha: np.ndarray, K: np.ndarray, state: np.ndarray) -> list[list[int]]:
    """Per trajectory, the frames c ≥ 1 whose label (α, K, state) differs from frame c−1's
    (inputs ``(n, T)``, the per-frame labels of :func:`simulate`)."""
    diff = (np.diff(alpha, axis=1) != 0) | (np.diff(K, axis=1) != 0) | (
        np.diff(state, axis=1) != 0)
    return [(np.flatnonzero(r) + 1).tolist() for r in diff]


def segment_labels(alpha, K, state, start: int = 1) -> list[dict]:
    """AnDi 2 per-trajectory label lists (the scorer's ``alphas``, ``Ds``, ``states``,
    ``changepoints`` with the trajectory length last) from per-frame labels ``(n, T)``;
    frames before ``start`` are ignored (frame 0's label describes no observed step)."""
    alpha, K, state = (np.asarray(v)[:, start:] for v in (alpha, K, state))
    T = alpha.shape[1] + start
    out = []
    for i, cps in enumerate(changepoints(alpha, K, state)):
        bounds = [0] + cps
        out.append({"alphas": [float(alpha[i, b]) for b in bounds],
                    "Ds": [float(K[i, b]) for b in bounds],
                    "states": [int(state[i, b]) for b in bounds],
                    "changepoints": [c + start for c in cps] + [T]})
    return out


def andi2_batch(rng: np.random.Generator, n: int, T: int, models=MODELS,
                sigma_noise: tuple[float, float] = (SIGMA_NOISE, SIGMA_NOISE),
                burn_in: int = 0, **ranges) -> dict:
    """``n`` noisy trajectories of ``T`` points from one experiment of one model (uniform among
    ``models``), parameters from :func:`draw_experiment` (``ranges`` forwarded), noise std
    U(``sigma_noise``) px per trajectory. With ``burn_in`` > 0 the first U{0..burn_in} frames
    are dropped, so tracks start in any state (as the challenge's field-of-view cut does).

    Returns a dict: ``positions`` ``(n, T, 2)``, per-frame ``alpha``, ``K``, ``state``
    ``(n, T)``, ``model`` (index in :data:`MODELS`), ``noise`` ``(n,)``.
    """
    models = [str(m) for m in models]
    m = models[int(rng.integers(len(models)))]
    skip = int(rng.integers(burn_in + 1)) if burn_in else 0
    sim = simulate(rng, m, n, T + skip, draw_experiment(rng, m, **ranges))
    noise = rng.uniform(*sigma_noise, size=n)
    cut = {k: sim[k][:, skip:] for k in ("positions", "alpha", "K", "state")}
    cut["positions"] = add_noise(rng, cut["positions"], noise)
    return {**cut, "model": MODELS.index(m), "noise": noise}
