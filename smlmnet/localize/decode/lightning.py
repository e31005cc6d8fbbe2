"""Thin LightningModule around :class:`~smlmnet.localize.decode.net.DecodeNet`.

Training targets come from :class:`~smlmnet.models.datasets.SimulatedMovieDataset` windows
(:func:`~smlmnet.localize.decode.targets.middle_frame_targets`): the emitters of the middle
frame and the expected background. Validation reports the SMLM
2016 metrics (Jaccard, RMSE, efficiency) of the post-processed detections and logs an
example image (input, p map, true and detected emitters) to loggers that take images.
"""

from __future__ import annotations

import logging
import math

import lightning as L
import numpy as np
import pandas as pd
import torch

from smlmnet.localize.decode.loss import decode_loss
from smlmnet.localize.decode.net import DecodeNet
from smlmnet.localize.decode.post import detect_emitters
from smlmnet.localize.decode.targets import middle_frame_targets
from smlmnet.metrics.localization import smlm_metrics
from smlmnet.models.optim import adamw_warmup_cosine

log = logging.getLogger(__name__)


class LocalizerModule(L.LightningModule):
    """Args: net (a DecodeNet, built by Hydra), lr (peak learning rate), weight_decay,
    bg_weight, detection threshold for validation, pixel_size_nm (for metrics in nm)."""

    def __init__(self, net: DecodeNet, lr: float = 1e-3, weight_decay: float = 0.05,
                 bg_weight: float = 1.0, threshold: float = 0.6, pixel_size_nm: float = 100.0,
                 init_from: str | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        # the network's constructor arguments, so that a checkpoint rebuilds it
        self.hparams["net_config"] = net.config()
        self.net = net
        if init_from:
            self._init_from(init_from)

    def _init_from(self, name_or_path: str) -> None:
        """Start from a model folder's weights (fine-tuning; same network arguments)."""
        from smlmnet.models.registry import init_net_from

        info = init_net_from(self.net, name_or_path)
        log.info("initialized from %s (sha256 %s)", name_or_path,
                 str(info.get("weights_sha256"))[:12])

    def forward(self, frames):
        return self.net(frames)

    def _loss(self, batch):
        out = self.net(batch["frames"])
        em, mask = middle_frame_targets(batch, self.net.n_frames)
        bg = batch["background"]
        terms = decode_loss(out, em, mask, bg, self.net.encode_photons, self.hparams.bg_weight)
        return out, terms

    def training_step(self, batch, batch_idx):
        _, terms = self._loss(batch)
        finite = torch.isfinite(terms["loss"])
        self.log("train/nonfinite_loss", (~finite).float(), batch_size=batch["frames"].shape[0])
        if not finite:
            # NaN guard that is safe under DDP: every rank must run backward through the same
            # parameters (returning None would leave the other ranks waiting in all-reduce), so
            # a non-finite batch contributes an exact zero gradient instead of being skipped
            log.warning("non-finite loss at step %d: zero gradient for this batch",
                        self.global_step)
            return sum(p.sum() for p in self.parameters()) * 0.0
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, prog_bar=True,
                      batch_size=batch["frames"].shape[0])
        return terms["loss"]

    def validation_step(self, batch, batch_idx):
        out, terms = self._loss(batch)
        B = batch["frames"].shape[0]
        self.log_dict({f"val/{k}": v for k, v in terms.items()}, batch_size=B, sync_dist=True)
        det = detect_emitters(out, self.hparams.threshold)
        em, mask = middle_frame_targets(batch, self.net.n_frames)
        a = self.hparams.pixel_size_nm
        b, i = torch.nonzero(mask, as_tuple=True)
        true = pd.DataFrame({"frame": b.cpu().numpy(), "x [nm]": em[b, i, 0].cpu().numpy() * a,
                             "y [nm]": em[b, i, 1].cpu().numpy() * a})
        est = pd.DataFrame({"frame": det["batch"].cpu().numpy(),
                            "x [nm]": det["x"].cpu().numpy() * a,
                            "y [nm]": det["y"].cpu().numpy() * a})
        m = smlm_metrics(true, est)
        for key, name in (("jaccard [%]", "jaccard"), ("efficiency [%]", "efficiency")):
            self.log(f"val/{name}", m[key], batch_size=B, sync_dist=True)
        if math.isfinite(m["rmse_lateral [nm]"]):
            self.log("val/rmse_nm", m["rmse_lateral [nm]"], batch_size=B, sync_dist=True)
        if batch_idx == 0:
            self._log_example(batch, out, det, em, mask)

    def _log_example(self, batch, out, det, em, mask):
        logger = self.logger
        if logger is None or not hasattr(logger, "log_image"):
            return
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(1, 2, figsize=(8, 4))
            mid = self.net.n_frames // 2
            ax[0].imshow(batch["frames"][0, mid].cpu(), cmap="gray",
                         extent=(0, out["p"].shape[2], out["p"].shape[1], 0))
            ax[1].imshow(out["p"][0].detach().cpu(), vmin=0, vmax=1,
                         extent=(0, out["p"].shape[2], out["p"].shape[1], 0))
            t = em[0][mask[0]].cpu()
            d = det["batch"] == 0
            for a in ax:
                a.scatter(t[:, 0], t[:, 1], s=40, facecolors="none", edgecolors="lime")
                a.scatter(det["x"][d].cpu(), det["y"][d].cpu(), s=12, c="red", marker="x")
            ax[0].set_title("input (middle frame), true ○ detected ×")
            ax[1].set_title("detection probability p")
            fig.canvas.draw()
            image = np.asarray(fig.canvas.buffer_rgba())[..., :3]
            plt.close(fig)
            logger.log_image(key="val/example", images=[image], step=self.global_step)
        except Exception as err:  # never fail training because of a plot
            log.warning("could not log the example image: %s", err)

    def configure_optimizers(self):
        """AdamW with warm-up + cosine over the planned optimizer steps
        (:func:`smlmnet.models.optim.adamw_warmup_cosine`)."""
        return adamw_warmup_cosine(self)

    def export_model_folder(self, cfg, datamodule, run_dir):
        """Write a model folder after training (``train.py export_pretrained=DIR``)."""
        from smlmnet.localize.decode.export import export_trained

        return export_trained(cfg, self, datamodule, run_dir)
