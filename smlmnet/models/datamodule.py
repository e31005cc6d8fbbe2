"""DataModule that simulates training windows on the fly from a simulation preset."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from smlmnet.data.datasets import SimulatedMovieDataset
from smlmnet.simulate.config import load_config


class SimulatedWindowsDataModule(L.LightningDataModule):
    """Windows of ``n_frames`` frames of ``shape_px`` simulated from ``preset`` (+ overrides).

    Training items are new every epoch (the dataset's epoch enters every item's seed);
    validation items are fixed (seed ``seed + 1``), so validation metrics are comparable
    across epochs.
    """

    def __init__(self, preset: str = "decode_sptpalm", overrides: list | None = None,
                 n_frames: int = 3, shape_px: tuple = (40, 40), batch_size: int = 32,
                 train_items: int = 2048, val_items: int = 256, num_workers: int = 0,
                 seed: int = 0, max_emitters: int = 256):
        super().__init__()
        # plain Python values (not OmegaConf objects): checkpoints stay loadable with
        # torch.load(weights_only=True)
        overrides = [str(o) for o in (overrides or [])]
        shape_px = [int(v) for v in shape_px]
        self.save_hyperparameters()
        self.config = load_config(preset, list(overrides or []))
        self.train_set = SimulatedMovieDataset(self.config, n_frames, tuple(shape_px),
                                               train_items, seed, max_emitters)
        self.val_set = SimulatedMovieDataset(self.config, n_frames, tuple(shape_px),
                                             val_items, seed + 1, max_emitters)

    def _loader(self, dataset, persistent: bool):
        h = self.hparams
        return DataLoader(dataset, batch_size=h.batch_size, num_workers=h.num_workers,
                          persistent_workers=persistent and h.num_workers > 0)

    def train_dataloader(self):
        # called every epoch (trainer.reload_dataloaders_every_n_epochs=1): fresh items
        if self.trainer is not None:
            self.train_set.set_epoch(self.trainer.current_epoch)
        return self._loader(self.train_set, persistent=False)

    def val_dataloader(self):
        return self._loader(self.val_set, persistent=True)
