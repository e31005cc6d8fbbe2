"""Thin Lightning wrappers of the transformer linker: the module (loss, optimizer, logging)
and the data module (simulated localization windows streamed on the fly)."""

from __future__ import annotations

import lightning as L
import torch

from smlmnet.link.transformer.loss import linking_loss
from smlmnet.link.transformer.net import LinkerNet
from smlmnet.link.transformer.targets import SimulatedLinkingDataset, collate_windows
from smlmnet.models.datamodule import StreamDataModule
from smlmnet.models.optim import adamw_warmup_cosine


class LinkerModule(L.LightningModule):
    """Args: net (a :class:`LinkerNet`, built by Hydra), lr (peak of warm-up + cosine),
    weight_decay, bce_weight and pos_weight of :func:`linking_loss`, init_from (a model folder
    or shipped name whose weights start the training: fine-tuning, same network arguments)."""

    def __init__(self, net: LinkerNet, lr: float = 1e-3, weight_decay: float = 0.01,
                 bce_weight: float = 0.1, pos_weight: float = 2.0,
                 init_from: str | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.hparams["net_config"] = net.config()
        self.net = net
        if init_from:
            from smlmnet.models.registry import init_net_from

            init_net_from(self.net, init_from)

    def _step(self, batch):
        out = self.net(batch["xy"], batch["frame"], batch["photons"], batch["sigma"],
                       batch["nbr"])
        return linking_loss(out, batch["parent"], self.hparams.bce_weight,
                            self.hparams.pos_weight)

    def training_step(self, batch, batch_idx):
        terms = self._step(batch)
        B = batch["seed"].shape[0]
        if not torch.isfinite(terms["loss"]):
            # DDP-safe: every rank still runs backward through the same parameters
            return sum(p.sum() for p in self.parameters()) * 0.0
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, prog_bar=True, batch_size=B)
        return terms["loss"]

    def validation_step(self, batch, batch_idx):
        terms = self._step(batch)
        self.log_dict({f"val/{k}": v for k, v in terms.items()}, batch_size=batch["seed"].shape[0],
                      sync_dist=True)

    def configure_optimizers(self):
        """AdamW with warm-up + cosine over the planned optimizer steps
        (:func:`smlmnet.models.optim.adamw_warmup_cosine`)."""
        return adamw_warmup_cosine(self)

    def export_model_folder(self, cfg, datamodule, run_dir):
        """Write a model folder after training (``train.py export_pretrained=DIR``)."""
        from smlmnet.link.transformer.export import export_trained

        return export_trained(cfg, self, datamodule, run_dir)


class LinkingDataModule(StreamDataModule):
    """Simulated localization windows: training items (``seed``, new every epoch), fixed
    validation items (``seed + 1``) and fixed test items (``seed + 2``).

    Args:
        window, max_gap: W and G (must match the net). neighbours: cut-off and neighbours
        per frame (must match the net). batch_size, train_items, val_items,
        num_workers, seed. target_tokens, max_tokens, ranges, regimes: see
        :class:`~smlmnet.link.transformer.targets.SimulatedLinkingDataset`.
    """

    def __init__(self, window: int = 8, max_gap: int = 3, neighbours: dict | None = None,
                 batch_size: int = 16,
                 train_items: int = 4096, val_items: int = 256, num_workers: int = 1,
                 seed: int = 0, target_tokens=(64, 192), max_tokens: int = 256,
                 ranges: dict | None = None, regimes: list | None = None) -> None:
        super().__init__()
        if regimes is not None:
            from omegaconf import DictConfig, ListConfig, OmegaConf

            if isinstance(regimes, (DictConfig, ListConfig)):
                regimes = OmegaConf.to_container(regimes, resolve=True)
            regimes = [dict(r) for r in regimes]
        if ranges is not None:
            from omegaconf import DictConfig, OmegaConf

            if isinstance(ranges, DictConfig):
                ranges = OmegaConf.to_container(ranges, resolve=True)
            ranges = dict(ranges)
        if neighbours is not None:
            from omegaconf import DictConfig, OmegaConf

            if isinstance(neighbours, DictConfig):
                neighbours = OmegaConf.to_container(neighbours, resolve=True)
            neighbours = dict(neighbours)
        target_tokens = [int(v) for v in target_tokens]
        self.save_hyperparameters()
        common = dict(window=window, max_gap=max_gap, neighbours=neighbours,
                      target_tokens=target_tokens,
                      max_tokens=max_tokens, ranges=ranges, regimes=regimes)
        self.train_set = SimulatedLinkingDataset(length=train_items, seed=seed, **common)
        self.val_set = SimulatedLinkingDataset(length=val_items, seed=seed + 1, **common)
        self.test_set = SimulatedLinkingDataset(length=val_items, seed=seed + 2, **common)

    collate_fn = staticmethod(collate_windows)

    def _batch_size(self):
        return self.hparams.batch_size
