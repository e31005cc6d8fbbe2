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
    err, z, s2, a_err, a_z, a_true = [], [], [], [], [], []
    for batch in dataset:
        out = net_forward(net, batch)
        e = (out["log_d"] - batch["log_d"]).numpy()
        err.append(e)
        z.append(e / np.exp(0.5 * out["log_var"].numpy()))
        s2.append(np.abs((out["log_s2"] - batch["log_s2"]).numpy()))
        if "alpha" in out and "alpha" in batch:
            ea = (out["alpha"] - batch["alpha"]).numpy()
            a_err.append(ea)
            a_z.append(ea / np.exp(0.5 * out["alpha_log_var"].numpy()))
            a_true.append(batch["alpha"].numpy())
    e, z = np.concatenate(err), np.concatenate(z)
    res = {"tubelets": int(len(e)), "log_d_rmse": float(np.sqrt(np.mean(e**2))),
           "log_d_median_abs_error": float(np.median(np.abs(e))),
           "share_abs_z_below_2": float(np.mean(np.abs(z) < 2)),
           "log_sigma2_mae": float(np.concatenate(s2).mean())}
    if a_err:
        ea, za, ta = np.concatenate(a_err), np.concatenate(a_z), np.concatenate(a_true)
        anomalous = ~np.isclose(ta, 1.0)
        res.update({"alpha_mae": float(np.mean(np.abs(ea))),
                    "alpha_mae_anomalous": float(np.mean(np.abs(ea[anomalous])))
                    if anomalous.any() else None,
                    "alpha_share_abs_z_below_2": float(np.mean(np.abs(za) < 2))})
    return res


def _initialization(module) -> dict:
    """What a fine-tuned network started from and what of it trained: ``initialized_from``,
    ``trained_parameters`` (prefixes) and, when some parameters were frozen,
    ``frozen_unchanged``: True if every frozen tensor still equals the start weights (checked
    here, so a model card's claim that e.g. the D backbone is the original one is tested)."""
    from smlmnet.models.registry import load_weights, model_dir, read_info

    h = module.hparams
    if not h.get("init_from"):
        return {}
    out = {"initialized_from": {"model": str(h.init_from),
                                "weights_sha256": h.get("init_weights_sha256")}}
    if h.get("train_only"):
        start = load_weights(model_dir(h.init_from), read_info(h.init_from))
        frozen = [n for n, p in module.net.named_parameters() if not p.requires_grad]
        state = module.net.state_dict()
        out["trained_parameters"] = list(h.train_only)
        out["frozen_unchanged"] = bool(frozen) and all(
            torch.equal(state[n].cpu(), start[n].cpu()) for n in frozen)
    return out


def export_trained(cfg, module, datamodule, run_dir) -> Path:
    """After ``train.py``: load the best validation checkpoint (if any), score it on the
    independent test batches (seed + 2) and write the model folder ``cfg.export_pretrained``."""
    from smlmnet.models.registry import load_best_checkpoint, model_info_header, write_model_folder

    net = module.net.cpu()   # scored and saved on the CPU, wherever it trained
    best, exported_step = load_best_checkpoint(module)
    if best:
        log.info("exporting the best validation checkpoint %s", best)
    test = score_stream(net, datamodule.test_set)
    ts = datamodule.test_set
    info = {**model_info_header(cfg, net, "pixel_diffusion"),
            "epochs": int(module.current_epoch),
            "exported_step": exported_step,
            "global_steps": int(module.global_step),
            "train_items": int(cfg.data.train_batches) * int(cfg.data.batch_size),
            "training_ranges": datamodule.training_ranges(),
            "output_units": "ln D_px with D_px = D·Δt/a² (px²/frame); D [µm²/s] = "
                            "exp(log_d)·(a/1000)²/Δt",
            "validation_split": f"{len(ts)} independent test batches of {ts.batch_size} "
                                f"tubelets (seed {ts.seed}) from the training ranges",
            "validation": test,
            **_initialization(module),
            "limits": str(cfg.get("model_limits") or "")}
    folder = write_model_folder(cfg.export_pretrained, net.state_dict(), info)
    log.info("exported %s: test %s", folder, test)
    return folder
