"""Simulated localization tables (no movie rendering) and the linker's training targets.

A table is what a localizer would return for a sptPALM-like experiment: the project's motion
models (:func:`smlmnet.simulate.trajectories.simulate_trajectories`: Brownian, confined,
directed, two-state switching, immobile) sampled once per frame, the project's photophysics
(:func:`smlmnet.simulate.photophysics.blinking_mask`, exponential activation/bleaching),
missed detections, uniformly scattered false positives (``track_id`` −1) and Gaussian
localization noise of the photon-limited precision (Mortensen et al. 2010 with EMCCD excess
noise), reported with a noisy uncertainty estimate as real localizers do.

Training items are windows of ``W`` frames over a square patch whose side is chosen so that
the window holds about ``target_tokens`` localizations (dense training batches at every
density). The label of a localization is its *parent*: the previous localization of its track
inside the window when it lies at most ``G`` frames earlier (a gap of up to ``G − 1`` missed
or dark frames), otherwise "no parent" (−1).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
from torch.utils.data import IterableDataset

from smlmnet.data import contracts as C
from smlmnet.link.transformer.graph import window_neighbours
from smlmnet.models.datasets import _rank_and_world, item_seed, shard_indices
from smlmnet.simulate.config import SimulationConfig
from smlmnet.simulate.photophysics import blinking_mask
from smlmnet.simulate.trajectories import simulate_trajectories

UNCERTAINTY = "uncertainty_xy [nm]"
PHOTONS = C.PHOTONS

#: default ranges of the training simulation (physical units)
DEFAULT_RANGES = {
    "D_um2_s": [0.001, 10.0],            # per-item centre of the D distribution (log-uniform)
    "density_on_per_um2": [0.05, 2.0],   # detected emitters per µm² per frame (log-uniform)
    "frame_time_s": 0.02,
    "pixel_size_nm": 100.0,
    "photons": [100.0, 3000.0],          # mean photons of an emitter (log-uniform per emitter)
    "psf_sigma_nm": [100.0, 160.0],
    "background_photons_per_px": [1.0, 40.0],
    "blink_on_frames": [3.0, 100.0],     # up to effectively non-blinking dyes
    "blink_off_frames": [0.5, 3.0],
    "detection_probability": [0.75, 1.0],
    "false_positive_fraction": [0.0, 0.1],
    "lifetime_frames": [5.0, 300.0],      # mean frames before bleaching (long tracks too)
    "motions": ["brownian", "confined", "directed", "switching", "immobile"],
}


#: named regimes of the training mixture (range overrides). ``persistent``: tracks that last
#: the whole movie, do not blink and come with (almost) no false positives (quantum dots,
#: bright stable dyes, AnDi-style fields); under DEFAULT_RANGES alone such windows are rare
#: (lifetime, blinking and false positives would all have to be drawn near their ends), so
#: the network's prior says "tracks end"
REGIMES = {
    "persistent": {"lifetime_frames": [300.0, 3000.0], "blink_on_frames": [1000.0, 10000.0],
                   "false_positive_fraction": [0.0, 0.01]},
}


def regime_overrides(regime: dict) -> dict:
    """The range overrides of one ``regimes`` entry (its ``ranges``, else ``REGIMES[name]``)."""
    name = regime.get("name")
    over = regime.get("ranges")
    if over is None:
        if name not in REGIMES:
            raise ValueError(f"unknown regime {name!r}: give its ranges or one of "
                             f"{sorted(REGIMES)}")
        over = REGIMES[name]
    unknown = set(over) - set(DEFAULT_RANGES)
    if unknown:
        raise ValueError(f"regime {name!r}: unknown ranges {sorted(unknown)}")
    return dict(over)


def regime_ranges(rng: np.random.Generator, ranges: dict,
                  regimes: list[dict] | None) -> dict:
    """The ranges of one training item: ``ranges``, or with probability ``probability`` one
    regime's overrides on top of them (``regimes``: ``[{"name", "probability", "ranges"}]``,
    probabilities summing to ≤ 1; ``ranges`` defaults to :data:`REGIMES` ``[name]``). Draws
    from ``rng`` only when there are regimes, so a configuration without them keeps its item
    stream."""
    if not regimes:
        return ranges
    total = sum(float(r["probability"]) for r in regimes)
    if not 0 <= total <= 1 + 1e-9:
        raise ValueError(f"regime probabilities must sum to at most 1; got {total}")
    overrides = [regime_overrides(r) for r in regimes]   # every entry checked, drawn or not
    u, acc = float(rng.random()), 0.0
    for r, over in zip(regimes, overrides):
        acc += float(r["probability"])
        if u < acc:
            return {**ranges, **over}
    return ranges


def localization_precision_nm(photons: np.ndarray, psf_sigma_nm: float, bg_per_px: float,
                              pixel_nm: float = 100.0) -> np.ndarray:
    """Per-axis localization precision (nm) of a Gaussian spot with ``photons`` photons on a
    background of ``bg_per_px`` photons/pixel (Mortensen 2010, ×√2 for EMCCD excess noise)."""
    n = np.maximum(photons, 1.0)
    sa2 = psf_sigma_nm**2 + pixel_nm**2 / 12
    var = sa2 / n * (16 / 9 + 8 * np.pi * sa2 * bg_per_px / (n * pixel_nm**2))
    return np.sqrt(2 * var)


def _loguniform(rng, lo, hi, size=None):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


def _motions(rng: np.random.Generator, D_lo: float, D_hi: float, allowed) -> list[dict]:
    """A random mixture of motion populations around a log-uniform centre D (µm²/s)."""
    Dc = float(_loguniform(rng, D_lo, D_hi))
    spread = {"low": max(D_lo, Dc / 3), "high": min(D_hi, Dc * 3), "log": True}
    pool = {
        "brownian": {"model": "brownian", "D_um2_s": spread},
        "confined": {"model": "confined", "D_um2_s": spread,
                     "radius_um": {"low": 0.1, "high": 0.8}, "shape": "disk"},
        "directed": {"model": "directed", "D_um2_s": spread, "alpha": 1.0,
                     "speed_um_s": {"low": 0.2, "high": 3.0}},
        "switching": {"model": "multistate", "states": [
            {"D_um2_s": {"low": Dc, "high": min(D_hi, 10 * Dc) if 10 * Dc > Dc else Dc},
             "alpha": 1.0, "motion_class": "free"},
            {"D_um2_s": {"low": max(D_lo, Dc / 30), "high": max(D_lo, Dc / 3)}, "alpha": 1.0,
             "motion_class": "confined"}],
            "transition_matrix": [[0.9, 0.1], [0.1, 0.9]]},
        "immobile": {"model": "immobile"},
    }
    names = [m for m in allowed if m in pool]
    k = int(rng.integers(1, min(3, len(names)) + 1))
    chosen = rng.choice(len(names), size=k, replace=False)
    out = []
    for c in chosen:
        m = dict(pool[names[c]])
        m["weight"] = float(rng.uniform(0.2, 1.0)) * (0.3 if names[c] == "immobile" else 1.0)
        out.append(m)
    return out


def simulate_table(rng: np.random.Generator, n_frames: int, side_um: float,
                   density_on_per_um2: float, motions: list[dict] | None = None,
                   ranges: dict | None = None, fixed: dict | None = None) -> pd.DataFrame:
    """A localization table over a ``side_um`` × ``side_um`` field and ``n_frames`` frames.

    Args:
        rng: the item's generator (everything is drawn from it).
        density_on_per_um2: expected detected localizations (false positives excluded) per
            µm² per frame.
        motions: ``particles.motions`` entries of a :class:`SimulationConfig` (``None``: a
            random mixture from ``ranges``).
        ranges: :data:`DEFAULT_RANGES` overrides. fixed: fixed values (e.g.
            ``{"blink_on_frames": 8, "detection_probability": 0.9}``) instead of draws.

    Returns:
        Columns ``frame``, ``x [nm]``, ``y [nm]``, ``photons [photon]``,
        ``uncertainty_xy [nm]``, ``track_id`` (−1 for false positives), sorted by frame.
    """
    R = {**DEFAULT_RANGES, **(ranges or {})}
    F = {**(fixed or {})}

    def draw(key, log=False):
        if key in F:
            return float(F[key])
        lo, hi = R[key]
        return float(_loguniform(rng, lo, hi) if log else rng.uniform(lo, hi))

    dt, a = float(R["frame_time_s"]), float(R["pixel_size_nm"])
    if motions is None:
        motions = _motions(rng, *R["D_um2_s"], R["motions"])
    on_mean, off_mean = draw("blink_on_frames", True), draw("blink_off_frames", True)
    p_det, fp_frac = draw("detection_probability"), draw("false_positive_fraction")
    lifetime = draw("lifetime_frames", True)
    psf, bg = draw("psf_sigma_nm"), draw("background_photons_per_px", True)
    margin = 1.0
    area = (side_um + 2 * margin) ** 2
    # visibility of candidate particles: activated at a uniform time, bleach, blink, detected
    n_cand = max(16, int(4 * density_on_per_um2 * area * 2 + 16))

    def visibility(n):
        start = rng.integers(-int(3 * lifetime) - 1, n_frames, n)
        life = rng.exponential(lifetime, n)
        age = np.arange(n_frames)[None, :] - start[:, None]
        alive = (age >= 0) & (age < life[:, None])
        cfg = type("P", (), {"blink_on_frames": on_mean, "blink_off_frames": off_mean})
        on = blinking_mask(rng, cfg, n, n_frames)
        return alive & on & (rng.random((n, n_frames)) < p_det)

    vis = visibility(n_cand)
    per_particle = vis.sum() / n_cand  # detected frames per particle (inside + margin)
    frac_inside = side_um**2 / area
    want = density_on_per_um2 * side_um**2 * n_frames
    n = int(np.clip(round(want / max(per_particle * frac_inside, 1e-9)), 1, 200000))
    if n > n_cand:
        vis = np.concatenate([vis, visibility(n - n_cand)])
    vis = vis[:n]
    npx = max(1, int(round(side_um * 1000 / a)))
    side_um = npx * a / 1000
    sim = SimulationConfig.from_dict({
        "n_frames": n_frames, "frame_time_s": dt, "substeps": 1,
        "fov": {"shape_px": [npx, npx], "pixel_size_nm": a, "margin_um": margin},
        "particles": {"n": n, "motions": motions}})
    traj = simulate_trajectories(sim, rng)
    pos = traj.positions_um[:, :n_frames] * 1000.0  # (n, F, 2) nm
    inside = ((pos >= 0) & (pos < side_um * 1000)).all(-1)
    pid, f = np.nonzero(vis & inside)
    mean_ph = _loguniform(rng, *R["photons"], n) if "photons" not in F else np.full(n, F["photons"])
    ph = mean_ph[pid] * rng.gamma(1 / 0.3**2, 0.3**2, pid.size)
    sig = localization_precision_nm(ph, psf, bg, a)
    xy = pos[pid, f] + rng.normal(0, 1, (pid.size, 2)) * sig[:, None]
    track = pid.astype(np.int64)
    # false positives: uniform in space and time, dim
    n_fp = int(rng.poisson(fp_frac * pid.size))
    if n_fp:
        f_fp = rng.integers(0, n_frames, n_fp)
        xy_fp = rng.uniform(0, side_um * 1000, (n_fp, 2))
        ph_fp = _loguniform(rng, R["photons"][0] * 0.5, R["photons"][0] * 3, n_fp)
        f = np.concatenate([f, f_fp])
        xy = np.concatenate([xy, xy_fp])
        ph = np.concatenate([ph, ph_fp])
        sig = np.concatenate([sig, localization_precision_nm(ph_fp, psf, bg, a)])
        track = np.concatenate([track, np.full(n_fp, -1)])
    # what a localizer reports: noisy photon counts and uncertainty estimates
    ph_rep = ph * np.exp(rng.normal(0, 0.15, ph.size))
    sig_rep = sig * np.exp(rng.normal(0, 0.2, sig.size))
    df = pd.DataFrame({C.FRAME: f.astype(np.int64), C.X_NM: xy[:, 0], C.Y_NM: xy[:, 1],
                       PHOTONS: ph_rep, UNCERTAINTY: sig_rep, C.TRACK_ID: track})
    return df.sort_values([C.FRAME, C.X_NM], kind="stable").reset_index(drop=True)


def parent_labels(frames: np.ndarray, track: np.ndarray, max_gap: int) -> np.ndarray:
    """Index of each row's parent: the previous row of the same track (``track ≥ 0``) when it
    lies at most ``max_gap`` frames earlier, else −1. Rows must be sorted by frame, at most
    one row per track and frame."""
    n = len(frames)
    parent = np.full(n, -1, np.int64)
    real = np.flatnonzero(track >= 0)
    if real.size < 2:
        return parent
    order = real[np.lexsort((frames[real], track[real]))]
    same = track[order[1:]] == track[order[:-1]]
    dt = frames[order[1:]] - frames[order[:-1]]
    ok = same & (dt > 0) & (dt <= max_gap)
    parent[order[1:][ok]] = order[:-1][ok]
    return parent


class SimulatedLinkingDataset(IterableDataset):
    """Stream of training windows (localization tables of ``window`` frames), simulated on the
    fly, reproducible and sharded over DataLoader workers and DDP ranks exactly as
    :class:`smlmnet.models.datasets.SimulatedMovieDataset` (item seed from
    ``(seed, epoch, index)``).

    Args:
        window: frames per item (W). max_gap: G (largest frame difference of an edge).
        neighbours: arguments of :func:`~smlmnet.link.transformer.graph.window_neighbours`
            besides window and max_gap (``cutoff_nm``, ``k_same``, ``k_near``, ``k_far``;
            take them from the net: :meth:`LinkerNet.neighbour_kwargs`).
        length: items per epoch (``None``: endless). seed: base seed.
        target_tokens: ``[lo, hi]`` localizations per window (the patch side follows from the
            drawn density); max_tokens: hard cap (extra rows are dropped at random before the
            labels are computed, which looks like missed detections).
        ranges: overrides of :data:`DEFAULT_RANGES`. regimes: a mixture of named range
            overrides (:func:`regime_ranges`, e.g. :data:`PERSISTENT_REGIME`).
        shift_nm: the window's coordinate origin is moved by a uniform draw in ± this.

    Each item: ``xy`` ``(N, 2)`` float32 nm relative to the patch centre, ``frame`` ``(N,)``
    int64 offset in ``[0, W)``, ``photons`` ``(N,)``, ``sigma`` ``(N,)`` nm, ``parent``
    ``(N,)`` int64 (−1: none), ``nbr`` ``(N, K)`` int64 neighbour table, ``seed``.
    """

    def __init__(self, window: int = 8, max_gap: int = 3, neighbours: dict | None = None,
                 length: int | None = 1024, seed: int = 0, target_tokens=(64, 192),
                 max_tokens: int = 256, ranges: dict | None = None,
                 shift_nm: float = 10000.0, regimes: list[dict] | None = None) -> None:
        super().__init__()
        self.shift_nm = float(shift_nm)
        self.window, self.max_gap = int(window), int(max_gap)
        self.neighbours = {"cutoff_nm": 1500.0, **(dict(neighbours) if neighbours else {})}
        self.length, self.seed = length, int(seed)
        self.target_tokens = (int(target_tokens[0]), int(target_tokens[1]))
        self.max_tokens = int(max_tokens)
        self.ranges = {**DEFAULT_RANGES, **(dict(ranges) if ranges else {})}
        self.regimes = [{"name": r.get("name"), "probability": float(r["probability"]),
                         "ranges": regime_overrides(r)} for r in (regimes or [])]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.length is None:
            raise TypeError("an endless SimulatedLinkingDataset has no length")
        rank, world = _rank_and_world()
        return len(range(rank, self.length, world))

    def make_item(self, index: int) -> dict[str, torch.Tensor]:
        s = item_seed(self.seed, self.epoch, index)
        rng = np.random.default_rng(s)
        W = self.window
        ranges = regime_ranges(rng, self.ranges, self.regimes)
        rho = float(_loguniform(rng, *ranges["density_on_per_um2"]))
        tokens = rng.uniform(*self.target_tokens)
        side = float(np.clip(np.sqrt(tokens / (rho * W)), 2.0, 60.0))
        df = simulate_table(rng, W, side, rho, ranges=ranges)
        if len(df) > self.max_tokens:
            keep = np.sort(rng.choice(len(df), self.max_tokens, replace=False))
            df = df.iloc[keep].reset_index(drop=True)
        # a random origin: absolute positions in the window carry no information, and the
        # net sees the coordinate range of large fields (up to ± shift_nm + side/2)
        centre = side * 500.0 + rng.uniform(-self.shift_nm, self.shift_nm, 2)
        return table_item(df, W, self.max_gap, self.neighbours, centre, s)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return (self.make_item(i) for i in shard_indices(self.length))


def table_item(df: pd.DataFrame, window: int, max_gap: int, neighbours: dict,
               centre_nm, seed: int = 0) -> dict[str, torch.Tensor]:
    """One training item from a frame-sorted window table (frames in ``[0, window)``, with
    ``track_id``): tensors of :class:`SimulatedLinkingDataset`."""
    frames = df[C.FRAME].to_numpy(np.int64)
    parent = parent_labels(frames, df[C.TRACK_ID].to_numpy(), max_gap)
    xy = df[[C.X_NM, C.Y_NM]].to_numpy(np.float64) - centre_nm
    nbr = window_neighbours(frames, xy, window, max_gap, **neighbours)
    return {"xy": torch.tensor(xy, dtype=torch.float32), "frame": torch.tensor(frames),
            "photons": torch.tensor(df[PHOTONS].to_numpy(np.float32)),
            "sigma": torch.tensor(df[UNCERTAINTY].to_numpy(np.float32)),
            "parent": torch.tensor(parent), "nbr": torch.tensor(nbr),
            "seed": torch.tensor(seed, dtype=torch.int64)}


def collate_windows(items: list[dict]) -> dict[str, torch.Tensor]:
    """Concatenate items into one flat batch of ``T`` tokens: parent and neighbour indices
    are shifted to batch positions (−1 stays −1); ``window`` ``(T,)`` says which item a token
    came from; ``seed`` ``(B,)``."""
    out = {k: [] for k in ("xy", "frame", "photons", "sigma", "parent", "nbr", "window")}
    offset = 0
    for b, it in enumerate(items):
        n = len(it["frame"])
        for k in ("xy", "frame", "photons", "sigma"):
            out[k].append(it[k])
        out["parent"].append(torch.where(it["parent"] >= 0, it["parent"] + offset,
                                         it["parent"]))
        out["nbr"].append(torch.where(it["nbr"] >= 0, it["nbr"] + offset, it["nbr"]))
        out["window"].append(torch.full((n,), b, dtype=torch.long))
        offset += n
    batch = {k: torch.cat(v) for k, v in out.items()}
    batch["seed"] = torch.stack([it["seed"] for it in items])
    return batch
