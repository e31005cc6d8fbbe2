"""Thin LightningModule around :class:`~smlmnet.localize.decode_net.DecodeNet`.

Training targets come from :class:`~smlmnet.data.datasets.SimulatedMovieDataset` windows:
the emitters of the middle frame and the expected background. Validation reports the SMLM
2016 metrics (Jaccard, RMSE, efficiency) of the post-processed detections and logs an
example image (input, p map, true and detected emitters) to loggers that take images.
"""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import pandas as pd
import torch

from smlmnet.localize.decode_loss import decode_loss
from smlmnet.localize.decode_net import DecodeNet
from smlmnet.localize.decode_post import detect_emitters
from smlmnet.metrics.localization import smlm_metrics


def middle_frame_targets(batch: dict, n_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, M, 3)`` x, y, photons of the middle frame's emitters and their mask."""
    em, mask = batch["emitters"], batch["emitter_mask"]
    mid = mask & (em[..., 0] == (n_frames // 2))
    return em[..., 1:4], mid


class LocalizerModule(L.LightningModule):
    """Args: net (a DecodeNet, built by Hydra), lr, weight_decay, bg_weight,
    detection threshold for validation, pixel_size_nm (for metrics in nm)."""

    def __init__(self, net: DecodeNet, lr: float = 2e-4, weight_decay: float = 0.1,
                 bg_weight: float = 1.0, threshold: float = 0.6, pixel_size_nm: float = 100.0,
                 lr_step_epochs: int = 10, lr_gamma: float = 0.9):
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        # the network's constructor arguments, so that a checkpoint rebuilds it
        self.hparams["net_config"] = {"n_frames": net.n_frames, "base": net.base,
                                      "depth": net.depth, "input_scale": net.input_scale,
                                      "photon_scale": net.photon_scale}
        self.net = net

    def forward(self, frames):
        return self.net(frames)

    def _loss(self, batch):
        out = self.net(batch["frames"])
        em, mask = middle_frame_targets(batch, self.net.n_frames)
        bg = batch["background"]
        terms = decode_loss(out, em, mask, bg, self.net.photon_scale, self.net.input_scale,
                            self.hparams.bg_weight)
        return out, terms

    def training_step(self, batch, batch_idx):
        _, terms = self._loss(batch)
        if not torch.isfinite(terms["loss"]):
            # NaN guard: skip the step (Lightning skips the update when None is returned)
            self.log("train/nonfinite_loss", 1.0)
            return None
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
            print(f"could not log the example image: {err}")

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr,
                                weight_decay=self.hparams.weight_decay)
        sched = torch.optim.lr_scheduler.StepLR(opt, self.hparams.lr_step_epochs,
                                                self.hparams.lr_gamma)
        return {"optimizer": opt, "lr_scheduler": sched}
