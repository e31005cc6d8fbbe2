"""A pixel-diffusion network behind the table interface of
:class:`smlmnet.diffusion.tubelets.TubeletDiffusionEstimator`: a movie and its tracks (physical
units) in, per-track and per-localization D out. The tubelets get the normalization of
training (:func:`~.targets.to_network_batch`), ``batch_size`` at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from smlmnet.diffusion.mivit.lightning import net_forward
from smlmnet.diffusion.mivit.targets import to_network_batch
from smlmnet.diffusion.tubelets import (  # noqa: F401  (re-exported: the table interface)
    PIXEL_ALPHA,
    PIXEL_ALPHA_STD,
    PIXEL_D,
    PIXEL_D_LOG_STD,
    TubeletDiffusionEstimator,
    combine_log_estimates,
    diffusivity_map,
)


def load_pixel_diffusion(folder, info: dict, device: str = "cpu",
                         **kwargs) -> PixelDiffusionEstimator:
    """Registry loader of kind ``pixel_diffusion``."""
    from smlmnet.models.registry import build_net, load_weights

    net = build_net(info["net"])
    net.load_state_dict(load_weights(Path(folder), info, device))
    return PixelDiffusionEstimator(net, info=info, device=device, **kwargs)


class PixelDiffusionEstimator(TubeletDiffusionEstimator):
    """Per-track and per-localization D from pixel tubelets with a trained network.

    Args:
        net: a network of :mod:`.net`. info: the model folder's ``model.yaml``. device:
            torch device. batch_size: tubelets per forward pass (bounds memory).
        substeps: sub-steps per frame used to turn the exposure fraction into the blur R
            (default: the model's training value).
    """

    def __init__(self, net, info: dict | None = None, device: str = "cpu",
                 batch_size: int = 128, substeps: int | None = None):
        self.net = net.to(device).eval()
        self.info = info or {}
        self.device = device
        self.batch_size = int(batch_size)
        cfg = net.config()
        self.frames = int(cfg.get("frames", 16))
        self.size = int(cfg["size"])
        ranges = self.info.get("training_ranges") or {}
        self.substeps = int(substeps or ranges.get("substeps", 8))

    @torch.no_grad()
    def predict_tubelets(self, sample: dict) -> dict[str, np.ndarray]:
        """Raw outputs for numpy tubelets (keys of :meth:`TubeletSimulator.sample` that
        :func:`~.targets.to_network_batch` reads), ``batch_size`` at a time: ``log_d``,
        ``log_var``, ``log_s2`` ``(B,)``, ``frame_log_d``, ``frame_log_var`` ``(B, T)``
        and, with an α head, ``alpha``, ``alpha_log_var`` ``(B,)``."""
        n = len(sample["mask"])
        parts = []
        for s in range(0, n, self.batch_size):
            chunk = {k: np.asarray(sample[k])[s:s + self.batch_size] for k in
                     ("patches", "mask", "features", "loc_px", "blur_R", "exposure_fraction",
                      "psf_sigma_px")}
            batch = {k: v.to(self.device) for k, v in to_network_batch(chunk).items()}
            out = net_forward(self.net, batch)
            parts.append({k: v.cpu().numpy() for k, v in out.items()})
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}

