"""On-the-fly training data: simulated movies streamed as torch tensors.

Every item is simulated from ``config`` with its own seed derived from
``(seed, epoch, item index)``, so the stream is reproducible and independent of the number
of DataLoader workers and of distributed ranks (each worker/rank takes every k-th index).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from smlmnet.data import contracts as C
from smlmnet.data.camera import adu_to_photons
from smlmnet.data.windows import movie_end_window
from smlmnet.simulate.config import SimulationConfig
from smlmnet.simulate.movie import simulate
from smlmnet.simulate.randomize import DomainRandomization


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def shard_indices(length: int | None) -> Iterator[int]:
    """Item indices of this data-loader worker on this rank: ``0..length-1`` (endless when
    ``length`` is None) dealt round-robin over every worker of every rank, so no two
    processes draw the same item."""
    info = get_worker_info()
    worker, n_workers = (info.id, info.num_workers) if info is not None else (0, 1)
    rank, world = _rank_and_world()
    index, step = rank * n_workers + worker, world * n_workers
    while length is None or index < length:
        yield index
        index += step


def item_seed(seed: int, epoch: int, index: int) -> int:
    """Seed of item ``index`` in ``epoch`` (a 63-bit integer)."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


class SimulatedMovieDataset(IterableDataset):
    """Stream of short simulated movies with emitter targets.

    Args:
        config: simulation config (its ``seed`` is ignored; ``seed`` below is used).
        n_frames: frames per item (e.g. 3 for a DECODE-style window); ``None`` keeps
            ``config.n_frames``.
        shape_px: ``(H, W)`` per item; ``None`` keeps the config's field of view.
        length: items per epoch; ``None`` streams forever.
        seed: base seed of the stream.
        max_emitters: size of the padded emitter table (an item with more emitters is an
            error, not a silent truncation).
        in_photons: convert ADU to photons with the camera's mean response (float32).
        randomization: draw every item's PSF, brightness, background, density, motion and
            camera from these ranges and degrade its frames like an exported file (see
            :mod:`smlmnet.simulate.randomize`); targets follow the degradation (photons and
            background in the input's units).
        edge_probability: share of items that look like a window at either end of a movie as
            inference builds it (:func:`smlmnet.data.windows.pad_movie_ends`: the frames
            before the first or after the last frame are copies of it), half at the start and
            half at the end, so that training sees the windows inference feeds the network at
            a movie's ends (without them a network has never seen an exact copy of a frame's
            noise; the stage-1 generalist put false positives into the first frame of noisy
            movies, and 15 % of such windows in its fine-tuning did not remove them).
            Targets are unchanged (the middle frame's emitters).

    Each item is a dict of tensors:
        ``frames`` ``(T, H, W)`` float32; ``background`` ``(H, W)`` float32 expected
        background photons; ``emitters`` ``(max_emitters, 5)`` float32 rows
        ``[frame, x_px, y_px, photons, track_id]`` for every emitter that is on, in continuous
        pixel units (centre of pixel 0 at 0.5, see :mod:`smlmnet.data.contracts`);
        ``emitter_mask`` ``(max_emitters,)`` bool; ``seed`` int64.
    """

    def __init__(self, config: SimulationConfig, n_frames: int | None = 3,
                 shape_px: tuple[int, int] | None = None, length: int | None = None,
                 seed: int = 0, max_emitters: int = 256, in_photons: bool = True,
                 randomization: DomainRandomization | dict | None = None,
                 edge_probability: float = 0.0) -> None:
        super().__init__()
        if not isinstance(config, SimulationConfig):
            config = SimulationConfig.from_dict(config)
        changes = {}
        if n_frames is not None:
            changes["n_frames"] = int(n_frames)
        if shape_px is not None:
            changes["fov"] = dataclasses.replace(config.fov, shape_px=tuple(shape_px))
        self.config = dataclasses.replace(config, **changes)
        self.config.validate()
        if length is not None and length < 1:
            raise ValueError(f"length must be >= 1 or None; got {length}")
        if max_emitters < 1:
            raise ValueError(f"max_emitters must be >= 1; got {max_emitters}")
        self.length = length
        self.seed = int(seed)
        self.max_emitters = int(max_emitters)
        self.in_photons = in_photons
        if randomization is not None and not isinstance(randomization, DomainRandomization):
            randomization = DomainRandomization.from_dict(randomization)
        self.randomization = randomization
        if not 0.0 <= edge_probability <= 1.0:
            raise ValueError(f"edge_probability must be in [0, 1]; got {edge_probability}")
        self.edge_probability = float(edge_probability)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use a fresh set of items in each epoch (call from the training loop)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Items this process yields per epoch: under DDP each rank takes every
        ``world``-th index, so a rank's length is ``len(range(rank, length, world))`` (ranks
        differ by at most one item; DataLoader workers split a rank's share further)."""
        if self.length is None:
            raise TypeError("an endless SimulatedMovieDataset has no length")
        rank, world = _rank_and_world()
        return len(range(rank, self.length, world))

    def make_item(self, index: int) -> dict[str, torch.Tensor]:
        """Simulate item ``index`` of the current epoch."""
        s = item_seed(self.seed, self.epoch, index)
        cfg = dataclasses.replace(self.config, seed=s)
        rng = np.random.default_rng([s, 1])  # the randomization's own stream
        randomization = self.randomization.pick(rng) if self.randomization is not None \
            else None
        if randomization is not None:
            cfg = randomization.sample_config(cfg, rng)
        result = simulate(cfg)
        frames = result.movie.frames
        frames = adu_to_photons(frames, cfg.camera) if self.in_photons else \
            frames.astype(np.float32)
        background = result.background_photons.astype(np.float32)
        k = 1.0
        if randomization is not None:
            frames, k, c, (lo, hi) = randomization.degrade(frames, rng)
            background = np.clip(background * k + c, lo, hi).astype(np.float32)
        if self.edge_probability > 0:
            # its own stream: items of models trained without edge windows are unchanged
            edge_rng = np.random.default_rng([s, 2])
            if edge_rng.random() < self.edge_probability:
                frames = movie_end_window(frames, at_start=bool(edge_rng.random() < 0.5))
        em = result.emitters[result.emitters[C.ON]]
        if len(em) > self.max_emitters:
            raise ValueError(
                f"item {index} has {len(em)} emitters, more than max_emitters="
                f"{self.max_emitters}; raise max_emitters"
            )
        a = self.config.fov.pixel_size_nm
        table = np.zeros((self.max_emitters, 5), np.float32)
        table[: len(em)] = np.stack([
            em[C.FRAME].to_numpy(), em[C.X_NM].to_numpy() / a, em[C.Y_NM].to_numpy() / a,
            em[C.PHOTONS].to_numpy() * k, em[C.TRACK_ID].to_numpy()], axis=1)
        mask = np.zeros(self.max_emitters, bool)
        mask[: len(em)] = True
        return {
            "frames": torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)),
            "background": torch.from_numpy(background),
            "emitters": torch.from_numpy(table),
            "emitter_mask": torch.from_numpy(mask),
            "seed": torch.tensor(s, dtype=torch.int64),
        }

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return (self.make_item(i) for i in shard_indices(self.length))
