"""Write a trained trajectory network as a model folder (kind ``trajectory``)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)


@torch.no_grad()
def score_stream(net, dataset) -> dict:
    """α MAE, model micro-F1 and ln K MAE (fBM only) of ``net`` on the batches of an
    :class:`~.targets.AnDi1Stream`, plus the α MAE of trajectories of ≤ 20 points."""
    net.eval()
    a_err, short_err, hits, k_err, n = [], [], [], [], []
    for batch in dataset:
        out = net(batch["disp"], batch["mask"])
        err = (out["alpha"] - batch["alpha"]).abs()
        a_err.append(err)
        if batch["disp"].shape[1] + 1 <= 20:
            short_err.append(err)
        hits.append((out["model_logits"].argmax(1) == batch["model"]).float())
        ok = torch.isfinite(batch["log_k"])
        k_err.append((out["log_k_rel"] + out["log_s2"] - batch["log_k"])[ok].abs())
        n.append(len(err))
    cat = lambda xs: torch.cat(xs).numpy() if xs else np.array([])  # noqa: E731
    return {"trajectories": int(sum(n)), "alpha_mae": float(cat(a_err).mean()),
            "alpha_mae_le20_points": float(cat(short_err).mean()) if short_err else float("nan"),
            "model_f1_micro": float(cat(hits).mean()),
            "log_k_mae_fbm": float(cat(k_err).mean()) if len(cat(k_err)) else float("nan")}


def export_trained(cfg, module, datamodule, run_dir) -> Path:
    """After ``train.py``: load the best validation checkpoint, score it on the independent
    test batches (seed + 2) and write the model folder ``cfg.export_pretrained``."""
    from smlmnet.io.provenance import provenance, reproduce_command
    from smlmnet.models.registry import write_model_folder

    net = module.net
    best = getattr(getattr(module.trainer, "checkpoint_callback", None), "best_model_path", "")
    if best:
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        net.load_state_dict({k[len("net."):]: v for k, v in state.items()
                             if k.startswith("net.")})
        log.info("exporting the best validation checkpoint %s", best)
    test = score_stream(net, datamodule.test_set)
    net_cfg = {"_target_": f"{type(net).__module__}.{type(net).__name__}", **net.config()}
    info = {"name": cfg.model_name or Path(cfg.export_pretrained).name,
            "kind": "trajectory",
            "description": str(cfg.get("model_description") or ""),
            "net": net_cfg,
            "training_command": reproduce_command(),
            "provenance": provenance(),
            "trained_on": str(cfg.get("trained_on") or "see training_command"),
            "epochs": int(module.current_epoch),
            "global_steps": int(module.global_step),
            "train_items": int(cfg.data.train_batches),
            "training_ranges": datamodule.training_ranges(),
            "model_classes": list(datamodule.train_set.models),
            "validation_split": f"{len(datamodule.test_set)} independent test batches (seed "
                                f"{datamodule.test_set.seed}), AnDi 1 mix, lengths "
                                f"{datamodule.test_set.min_length}–"
                                f"{datamodule.test_set.max_length}",
            "validation": test,
            "limits": str(cfg.get("model_limits") or "")}
    folder = write_model_folder(cfg.export_pretrained, net.state_dict(), info)
    log.info("exported %s: test %s", folder, test)
    return folder
