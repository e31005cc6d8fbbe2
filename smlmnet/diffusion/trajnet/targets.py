"""Simulated AnDi 1 trajectories → training batches, streamed on the fly.

Every batch holds trajectories of one length T (so no compute is spent on padding during
training), T drawn uniformly in [min_length, max_length] like AnDi 1's length mix; its size
is ``tokens_per_batch // (T − 1)`` (capped at ``max_batch``), so every batch costs about the
same. Batch ``i`` of epoch ``e`` is simulated from its own seed ``(seed, e, i)`` (the seeds of
:func:`smlmnet.models.datasets.item_seed`), so the stream does not depend on the number of
DataLoader workers or distributed ranks: each worker/rank takes every k-th batch.

Changepoints: with ``changepoint_probability`` a trajectory (of ≥ 12 points) is replaced by
a two-segment one (:func:`~smlmnet.simulate.andi1.two_segment_batch`: each segment with its own
model and α, a jump of D); it has per-step targets only (its per-trajectory ``alpha`` is NaN and
``model`` −1, so the per-trajectory losses skip it).

Gaps: with probability ``gap_probability`` a batch loses a fraction U(0, ``max_gap_rate``) of
its frames (not the first or last); the two displacements that touch a lost frame are masked
(zeroed, ``mask`` False), as :mod:`.infer` does for a track with missing frames.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset

from smlmnet.models.datasets import _rank_and_world, item_seed, shard_indices
from smlmnet.simulate import andi2
from smlmnet.simulate.andi1 import MODELS, NOISE_LEVELS, andi1_batch, two_segment_batch


def displacement_batch(positions: np.ndarray, present: np.ndarray | None = None):
    """Displacements ``(B, T−1, 2)`` float32 and their mask ``(B, T−1)`` bool from positions
    ``(B, T, 2)`` on a frame grid; ``present`` ``(B, T)`` marks observed frames (a step is
    valid when both of its frames are observed; invalid steps are zeroed)."""
    disp = np.diff(positions, axis=1)
    if present is None:
        mask = np.ones(disp.shape[:2], bool)
    else:
        mask = present[:, 1:] & present[:, :-1]
    disp = np.where(mask[..., None], disp, 0.0)
    return disp.astype(np.float32), mask


class AnDi1Stream(IterableDataset):
    """Batches of simulated AnDi 1 trajectories (2D, all five models).

    Args:
        length: batches per epoch (``None``: endless).
        seed: base seed.
        tokens_per_batch: displacements per batch (batch size = this // (T − 1)).
        max_batch: cap on trajectories per batch.
        min_length, max_length: trajectory lengths (points), drawn uniformly per batch.
        models, noise_levels: as :func:`smlmnet.simulate.andi1.andi1_batch`.
        scale_log10: every trajectory is multiplied by 10^U(range) (unit-free training).
        gap_probability, max_gap_rate: missing-frame augmentation (see module docstring).
        changepoint_probability: share of two-segment trajectories (see module docstring).
        jump_log10: range of log10 of the step-size factor between the two segments.
        full_length: normalize and noise single-segment trajectories at this length before
            cutting them to T, like andi-datasets' challenge generator (``None``: at T).

    Each item (already a batch; use ``DataLoader(batch_size=None)``) is a dict of tensors:
    ``disp`` ``(B, T−1, 2)`` float32, ``mask`` ``(B, T−1)`` bool, ``alpha`` ``(B,)``,
    ``model`` ``(B,)`` int64, ``log_k`` ``(B,)`` float32 (ln K in the displacements' units²
    per frame^α, NaN where undefined), ``noise`` ``(B,)``, ``seed`` int64; per displacement
    ``step_alpha`` ``(B, T−1)``, ``step_log_k`` ``(B, T−1)`` and ``cp`` ``(B,)`` int64 (first
    displacement of the second segment, −1 for a single-segment trajectory).
    """

    def __init__(self, length: int | None = 1000, seed: int = 0, tokens_per_batch: int = 8192,
                 max_batch: int = 256, min_length: int = 10, max_length: int = 1000,
                 models=MODELS, noise_levels=NOISE_LEVELS,
                 scale_log10: tuple[float, float] = (-2.0, 2.0), gap_probability: float = 0.0,
                 max_gap_rate: float = 0.1, changepoint_probability: float = 0.0,
                 jump_log10: tuple[float, float] = (-1.0, 1.0),
                 full_length: int | None = None) -> None:
        super().__init__()
        if not 2 <= min_length <= max_length:
            raise ValueError(f"need 2 <= min_length <= max_length; got {min_length}, "
                             f"{max_length}")
        self.length, self.seed = length, int(seed)
        self.tokens_per_batch, self.max_batch = int(tokens_per_batch), int(max_batch)
        self.min_length, self.max_length = int(min_length), int(max_length)
        self.models = [str(m) for m in models]
        self.noise_levels = [float(s) for s in noise_levels]
        self.scale_log10 = tuple(float(v) for v in scale_log10)
        self.gap_probability, self.max_gap_rate = float(gap_probability), float(max_gap_rate)
        self.changepoint_probability = float(changepoint_probability)
        self.jump_log10 = tuple(float(v) for v in jump_log10)
        self.full_length = int(full_length) if full_length else None
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.length is None:
            raise TypeError("an endless AnDi1Stream has no length")
        rank, world = _rank_and_world()
        return len(range(rank, self.length, world))

    def make_batch(self, index: int) -> dict[str, torch.Tensor]:
        s = item_seed(self.seed, self.epoch, index)
        rng = np.random.default_rng(s)
        T = int(rng.integers(self.min_length, self.max_length + 1))
        B = int(max(1, min(self.max_batch, self.tokens_per_batch // (T - 1))))
        b = andi1_batch(rng, B, T, self.models, self.noise_levels, self.scale_log10,
                        self.full_length)
        step_alpha = np.repeat(b["alpha"][:, None], T - 1, axis=1)
        step_log_k = np.repeat(b["logK"][:, None], T - 1, axis=1)
        cp = np.full(B, -1, np.int64)
        if self.changepoint_probability > 0 and T >= 12:
            two = np.flatnonzero(rng.random(B) < self.changepoint_probability)
            if two.size:
                t = two_segment_batch(rng, two.size, T, self.models, self.noise_levels,
                                      self.scale_log10, self.jump_log10)
                b["positions"][two] = t["positions"]
                b["alpha"][two], b["logK"][two], b["model"][two] = np.nan, np.nan, -1
                step_alpha[two], step_log_k[two], cp[two] = (t["step_alpha"], t["step_logK"],
                                                            t["cp"])
        disp, mask = displacement_batch(b["positions"], self._gaps(rng, B, T))
        return {"disp": torch.from_numpy(disp), "mask": torch.from_numpy(mask),
                "alpha": torch.from_numpy(b["alpha"].astype(np.float32)),
                "model": torch.from_numpy(b["model"].astype(np.int64)),
                "log_k": torch.from_numpy(b["logK"].astype(np.float32)),
                "noise": torch.from_numpy(b["noise"].astype(np.float32)),
                "step_alpha": torch.from_numpy(step_alpha.astype(np.float32)),
                "step_log_k": torch.from_numpy(step_log_k.astype(np.float32)),
                "cp": torch.from_numpy(cp),
                "seed": torch.tensor(s, dtype=torch.int64)}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return (self.make_batch(i) for i in shard_indices(self.length))

    def _gaps(self, rng, B: int, T: int) -> np.ndarray | None:
        """Observed frames ``(B, T)`` (missing-frame augmentation) or ``None``."""
        if self.gap_probability > 0 and T > 4 and rng.random() < self.gap_probability:
            rate = rng.uniform(0, self.max_gap_rate)
            present = rng.random((B, T)) >= rate
            present[:, [0, -1]] = True
            return present
        return None


def andi2_step_targets(alpha: np.ndarray, K: np.ndarray, state: np.ndarray) -> dict:
    """Per-displacement targets from AnDi 2 per-frame labels ``(B, T)`` (the label at frame
    t describes displacement t−1 → t): ``step_alpha``, ``step_K``, ``step_state`` and
    ``step_cp`` (1 at the first step of every new segment, step ≥ 1) ``(B, T−1)``; and per
    trajectory ``alpha``/``K`` ``(B,)`` (NaN when the track has a changepoint)."""
    sa, sk, ss = alpha[:, 1:], K[:, 1:], state[:, 1:]
    change = np.zeros(sa.shape, bool)
    change[:, 1:] = (np.diff(sa, axis=1) != 0) | (np.diff(sk, axis=1) != 0) | (
        np.diff(ss, axis=1) != 0)
    single = ~change.any(1)
    return {"step_alpha": sa, "step_K": sk, "step_state": ss, "step_cp": change,
            "alpha": np.where(single, sa[:, 0], np.nan), "K": np.where(single, sk[:, 0], np.nan)}


class AnDi2Stream(AnDi1Stream):
    """Batches of simulated AnDi 2 trajectories (2D, :mod:`smlmnet.simulate.andi2`): each batch
    is one experiment of one model (uniform among ``models``) with ``B`` particles, tracks of
    T points (T uniform in [min_length, max_length], B = tokens_per_batch // (T − 1)),
    localization noise std U(``sigma_noise``) px, a random start (``burn_in``), then every
    track multiplied by 10^U(``scale_log10``) (K by its square). ``ranges``: keyword arguments
    of :func:`smlmnet.simulate.andi2.draw_experiment`. Gaps as :class:`AnDi1Stream`.

    Items: as :class:`AnDi1Stream` (``model`` = index in :data:`andi2.MODELS`, ``log_k`` and
    ``alpha`` per trajectory only for tracks without a changepoint, ``cp`` −1) plus
    ``step_state`` ``(B, T−1)`` int64 and ``step_cp`` ``(B, T−1)`` float (all changepoints);
    ``step_log_k`` is NaN on immobile steps (K = 0).
    """

    classes = andi2.MODELS

    def __init__(self, length: int | None = 1000, seed: int = 0, tokens_per_batch: int = 8192,
                 max_batch: int = 256, min_length: int = 10, max_length: int = 200,
                 models=andi2.MODELS, sigma_noise=(andi2.SIGMA_NOISE, andi2.SIGMA_NOISE),
                 scale_log10: tuple[float, float] = (0.0, 0.0), gap_probability: float = 0.0,
                 max_gap_rate: float = 0.1, burn_in: int = 50, ranges: dict | None = None):
        super().__init__(length, seed, tokens_per_batch, max_batch, min_length, max_length,
                         models=models, noise_levels=(), scale_log10=scale_log10,
                         gap_probability=gap_probability, max_gap_rate=max_gap_rate)
        unknown = set(self.models) - set(andi2.MODELS)
        if unknown:
            raise ValueError(f"unknown AnDi 2 model(s) {sorted(unknown)}")
        self.sigma_noise = tuple(float(v) for v in sigma_noise)
        self.burn_in = int(burn_in)
        self.ranges = {k: tuple(float(x) for x in v) for k, v in (ranges or {}).items()}

    def make_batch(self, index: int) -> dict[str, torch.Tensor]:
        s = item_seed(self.seed, self.epoch, index)
        rng = np.random.default_rng(s)
        T = int(rng.integers(self.min_length, self.max_length + 1))
        B = int(max(2, min(self.max_batch, self.tokens_per_batch // (T - 1))))
        b = andi2.andi2_batch(rng, B, T, self.models, self.sigma_noise, self.burn_in,
                              **self.ranges)
        scale = 10 ** rng.uniform(*self.scale_log10, size=B)
        pos = b["positions"] * scale[:, None, None]
        t = andi2_step_targets(b["alpha"], b["K"] * scale[:, None] ** 2, b["state"])
        with np.errstate(divide="ignore"):
            step_log_k = np.where(t["step_K"] > 0, np.log(t["step_K"]), np.nan)
            log_k = np.where(t["K"] > 0, np.log(t["K"]), np.nan)
        disp, mask = displacement_batch(pos, self._gaps(rng, B, T))
        f32 = lambda x: torch.from_numpy(np.asarray(x, np.float32))  # noqa: E731
        return {"disp": torch.from_numpy(disp), "mask": torch.from_numpy(mask),
                "alpha": f32(t["alpha"]), "model": torch.full((B,), b["model"]),
                "log_k": f32(log_k), "noise": f32(b["noise"] * scale),
                "step_alpha": f32(t["step_alpha"]), "step_log_k": f32(step_log_k),
                "step_state": torch.from_numpy(t["step_state"].astype(np.int64)),
                "step_cp": f32(t["step_cp"]), "cp": torch.full((B,), -1),
                "seed": torch.tensor(s, dtype=torch.int64)}
