"""DataModule that simulates training windows on the fly from a simulation preset."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from smlmnet.models.datasets import SimulatedMovieDataset
from smlmnet.simulate.config import load_config


class StreamDataModule(L.LightningDataModule):
    """Base of the data modules that stream simulated datasets: subclasses set ``train_set``
    (with ``set_epoch``: new items every epoch), ``val_set``, ``test_set`` and the
    hyperparameter ``num_workers``. By default the datasets yield whole batches
    (``DataLoader(batch_size=None)``); a subclass whose datasets yield items overrides
    :meth:`_batch_size` (and sets ``collate_fn``)."""

    collate_fn = None

    def _batch_size(self) -> int | None:
        return None

    def _loader(self, dataset, persistent: bool):
        n = self.hparams.num_workers
        return DataLoader(dataset, batch_size=self._batch_size(), collate_fn=self.collate_fn,
                          num_workers=n, persistent_workers=persistent and n > 0)

    def train_dataloader(self):
        # called every epoch (trainer.reload_dataloaders_every_n_epochs=1): fresh items
        if self.trainer is not None:
            self.train_set.set_epoch(self.trainer.current_epoch)
        return self._loader(self.train_set, persistent=False)

    def val_dataloader(self):
        return self._loader(self.val_set, persistent=True)

    def test_dataloader(self):
        return self._loader(self.test_set, persistent=False)


class SimulatedWindowsDataModule(StreamDataModule):
    """Windows of ``n_frames`` frames of ``shape_px`` simulated from ``preset`` (+ overrides),
    optionally domain-randomized (``randomization``: ranges of
    :class:`~smlmnet.simulate.randomize.DomainRandomization`, ``{}`` for its defaults).

    ``edge_probability``: share of windows built like those at a movie's first or last frame
    (see :class:`~smlmnet.models.datasets.SimulatedMovieDataset`).

    Three streams with their own seeds: training items (``seed``; new every epoch, the epoch
    enters every item's seed), fixed validation items (``seed + 1``: checkpoint selection and
    threshold tuning) and fixed test items (``seed + 2``: the numbers a model folder reports).
    """

    def __init__(self, preset: str = "decode_sptpalm", overrides: list | None = None,
                 n_frames: int = 3, shape_px: tuple = (40, 40), batch_size: int = 32,
                 train_items: int = 2048, val_items: int = 256, num_workers: int = 0,
                 seed: int = 0, max_emitters: int = 256, randomization: dict | None = None,
                 edge_probability: float = 0.0):
        super().__init__()
        # plain Python values (not OmegaConf objects): checkpoints stay loadable with
        # torch.load(weights_only=True)
        overrides = [str(o) for o in (overrides or [])]
        shape_px = [int(v) for v in shape_px]
        if randomization is not None:
            from omegaconf import DictConfig, OmegaConf

            if isinstance(randomization, DictConfig):
                randomization = OmegaConf.to_container(randomization, resolve=True)
            randomization = dict(randomization)
        self.save_hyperparameters()
        self.config = load_config(preset, list(overrides or []))
        common = dict(config=self.config, n_frames=n_frames, shape_px=tuple(shape_px),
                      max_emitters=max_emitters, randomization=randomization,
                      edge_probability=float(edge_probability))
        self.train_set = SimulatedMovieDataset(length=train_items, seed=seed, **common)
        self.val_set = SimulatedMovieDataset(length=val_items, seed=seed + 1, **common)
        self.test_set = SimulatedMovieDataset(length=val_items, seed=seed + 2, **common)

    def _batch_size(self):
        return self.hparams.batch_size
