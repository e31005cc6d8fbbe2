"""Write a trained pixel-diffusion network as a model folder (kind ``pixel_diffusion``)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from smlmnet.diffusion.mivit.lightning import net_forward

log = logging.getLogger(__name__)


@torch.no_grad()
def score_stream(net, dataset) -> dict:
    """RMSE and median |error| of ln D, the share of |z| < 2 of the predicted σ, and the
    ln σ_loc² MAE over the batches of a :class:`~.targets.TubeletStream`."""
    net.eval()
    err, z, s2 = [], [], []
    for batch in dataset:
        out = net_forward(net, batch)
        e = (out["log_d"] - batch["log_d"]).numpy()
        err.append(e)
        z.append(e / np.exp(0.5 * out["log_var"].numpy()))
        s2.append(np.abs((out["log_s2"] - batch["log_s2"]).numpy()))
    e, z = np.concatenate(err), np.concatenate(z)
    return {"tubelets": int(len(e)), "log_d_rmse": float(np.sqrt(np.mean(e**2))),
            "log_d_median_abs_error": float(np.median(np.abs(e))),
            "share_abs_z_below_2": float(np.mean(np.abs(z) < 2)),
            "log_sigma2_mae": float(np.concatenate(s2).mean())}


def export_trained(cfg, module, datamodule, run_dir) -> Path:
    """After ``train.py``: load the best validation checkpoint (if any), score it on the
    independent test batches (seed + 2) and write the model folder ``cfg.export_pretrained``."""
    from smlmnet.models.registry import load_best_checkpoint, model_info_header, write_model_folder

    net = module.net.cpu()   # scored and saved on the CPU, wherever it trained
    best = load_best_checkpoint(module)
    if best:
        log.info("exporting the best validation checkpoint %s", best)
    test = score_stream(net, datamodule.test_set)
    ts = datamodule.test_set
    info = {**model_info_header(cfg, net, "pixel_diffusion"),
            "epochs": int(module.current_epoch),
            "global_steps": int(module.global_step),
            "train_items": int(cfg.data.train_batches) * int(cfg.data.batch_size),
            "training_ranges": datamodule.training_ranges(),
            "output_units": "ln D_px with D_px = D·Δt/a² (px²/frame); D [µm²/s] = "
                            "exp(log_d)·(a/1000)²/Δt",
            "validation_split": f"{len(ts)} independent test batches of {ts.batch_size} "
                                f"tubelets (seed {ts.seed}) from the training ranges",
            "validation": test,
            "limits": str(cfg.get("model_limits") or "")}
    folder = write_model_folder(cfg.export_pretrained, net.state_dict(), info)
    log.info("exported %s: test %s", folder, test)
    return folder
