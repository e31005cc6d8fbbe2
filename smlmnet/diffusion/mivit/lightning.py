"""Thin Lightning wrappers: :class:`PixelDiffusionModule` (optimizer, logging) around a
network of :mod:`.net` and :class:`PixelTubeletDataModule` (simulated tubelet streams)."""

from __future__ import annotations

import lightning as L
import torch.nn as nn
from omegaconf import DictConfig, ListConfig, OmegaConf

from smlmnet.diffusion.mivit.loss import physics_consistency_loss, supervised_loss
from smlmnet.diffusion.mivit.targets import TubeletStream
from smlmnet.models.datamodule import StreamDataModule
from smlmnet.models.optim import adamw_warmup_cosine

NET_INPUTS = ("x", "features", "cond", "mask")


def net_forward(net: nn.Module, batch: dict):
    """The one call of a network on a batch of :func:`~.targets.to_network_batch` (training,
    validation, inference and benchmarks)."""
    return net(*(batch[k] for k in NET_INPUTS))


class PixelDiffusionModule(L.LightningModule):
    """Args: net (built by Hydra), lr (peak), weight_decay, w_frame / w_s2 / w_alpha (loss
    weights), w_ssl: weight of the self-supervised physics-consistency term (0: off),
    init_from: a model folder or shipped name whose weights start the training (its network
    may lack the α branch, which then starts fresh), train_only: parameter-name prefixes that
    train (e.g. ``[net.alpha_head]``); all others are frozen (None: all train)."""

    def __init__(self, net: nn.Module, lr: float = 2e-3, weight_decay: float = 0.01,
                 w_frame: float = 0.3, w_s2: float = 0.1, w_ssl: float = 0.0,
                 w_alpha: float = 1.0, init_from: str | None = None,
                 train_only: list[str] | None = None):
        super().__init__()
        if isinstance(train_only, (DictConfig, ListConfig)):
            train_only = OmegaConf.to_container(train_only)
        self.save_hyperparameters(ignore=["net"])
        self.hparams["net_config"] = net.config()
        self.net = net
        if init_from:
            from smlmnet.models.registry import init_net_from

            info = init_net_from(net, init_from, new_parts=("alpha_head",))
            self.hparams["init_weights_sha256"] = info.get("weights_sha256")
        if train_only:
            prefixes = tuple(str(p) for p in train_only)
            names = [n for n, _ in self.named_parameters()]
            if not any(n.startswith(prefixes) for n in names):
                raise ValueError(f"train_only={list(prefixes)} matches no parameter")
            for n, p in self.named_parameters():
                p.requires_grad_(n.startswith(prefixes))

    def forward(self, batch):
        return net_forward(self.net, batch)

    def _step(self, batch):
        out = net_forward(self.net, batch)
        h = self.hparams
        terms = supervised_loss(out, batch, h.w_frame, h.w_s2, h.get("w_alpha", 1.0))
        if h.w_ssl > 0:
            ssl = physics_consistency_loss(out["log_d"], out["log_s2"], batch["loc_px"],
                                           batch["mask"], batch["blur_R"])
            terms["ssl"] = ssl
            terms["loss"] = terms["loss"] + h.w_ssl * ssl
        return out, terms

    def training_step(self, batch, batch_idx):
        _, terms = self._step(batch)
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, prog_bar=True,
                      batch_size=len(batch["x"]))
        return terms["loss"]

    def validation_step(self, batch, batch_idx):
        _, terms = self._step(batch)
        self.log_dict({f"val/{k}": v for k, v in terms.items()}, batch_size=len(batch["x"]),
                      sync_dist=True)

    def configure_optimizers(self):
        """AdamW with warm-up + cosine (:func:`smlmnet.models.optim.adamw_warmup_cosine`)."""
        return adamw_warmup_cosine(self)

    def export_model_folder(self, cfg, datamodule, run_dir):
        """``train.py export_pretrained=DIR``: write a model folder (kind
        ``pixel_diffusion``)."""
        from smlmnet.diffusion.mivit.export import export_trained

        return export_trained(cfg, self, datamodule, run_dir)


class PixelTubeletDataModule(StreamDataModule):
    """Three tubelet streams with their own seeds: training (``seed``, new batches every
    epoch), validation (``seed + 1``, fixed) and test (``seed + 2``, fixed: the numbers a
    model folder reports). ``simulator`` holds the keyword arguments of
    :class:`~.targets.TubeletSimulator`."""

    def __init__(self, train_batches: int = 200, val_batches: int = 10, batch_size: int = 128,
                 seed: int = 0, num_workers: int = 0, simulator: dict | None = None):
        super().__init__()
        if isinstance(simulator, DictConfig):
            simulator = OmegaConf.to_container(simulator, resolve=True)
        simulator = dict(simulator or {})
        self.save_hyperparameters()
        kw = dict(batch_size=batch_size, simulator=simulator)
        self.train_set = TubeletStream(length=train_batches, seed=seed, **kw)
        self.val_set = TubeletStream(length=val_batches, seed=seed + 1, **kw)
        self.test_set = TubeletStream(length=val_batches, seed=seed + 2, **kw)

    def training_ranges(self) -> dict:
        return self.train_set.simulator.ranges()
