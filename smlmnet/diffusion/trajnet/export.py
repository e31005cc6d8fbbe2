"""Write a trained trajectory network as a model folder (kind ``trajectory``)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from smlmnet.simulate.andi2 import STATES

log = logging.getLogger(__name__)


CP_THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


@torch.no_grad()
def collect(net, dataset) -> list[tuple[dict, dict]]:
    net.eval()
    return [(batch, net(batch["disp"], batch["mask"])) for batch in dataset]


def changepoint_scan(outs, thresholds=CP_THRESHOLDS) -> list[dict]:
    """Changepoint RMSE and Jaccard (AnDi scorer, 10-frame gate) of peak picking at each
    threshold, over every trajectory of the collected batches (single- and two-segment)."""
    from smlmnet.diffusion.trajnet.infer import pick_changepoints
    from smlmnet.metrics.diffusion import changepoint_scores

    probs, true = [], []
    for batch, out in outs:
        p = torch.sigmoid(out["step_cp_logit"]).masked_fill(~batch["mask"], 0).numpy()
        probs += list(p)
        if "step_cp" in batch:          # several changepoints per track (AnDi 2 streams)
            true += [np.flatnonzero(r).tolist() for r in batch["step_cp"].numpy()]
        else:
            true += [[int(c)] if c >= 0 else [] for c in batch["cp"].tolist()]
    rows = []
    for th in thresholds:
        pred = [pick_changepoints(p, th) for p in probs]
        rmse, jsc = changepoint_scores(true, pred)
        rows.append({"threshold": th, "cp_rmse": rmse, "cp_jaccard": jsc})
    return rows


def score_stream(net, dataset, outs=None) -> dict:
    """α MAE, model micro-F1 and ln K MAE (fBM only) of ``net`` on the single-segment
    trajectories of an :class:`~.targets.AnDi1Stream`'s batches, the α MAE of those of ≤ 20
    points, and with per-step outputs the per-step α MAE over all trajectories."""
    outs = outs if outs is not None else collect(net, dataset)
    a_err, short_err, hits, k_err, n, step_err = [], [], [], [], [], []
    for batch, out in outs:
        single = torch.isfinite(batch["alpha"])
        if "step_alpha" in out:
            m = batch["mask"]
            step_err.append((out["step_alpha"] - batch["step_alpha"])[m].abs())
        batch = {k: (v[single] if torch.is_tensor(v) and v.ndim and len(v) == len(single)
                     else v) for k, v in batch.items()}
        out = {k: v[single] for k, v in out.items()}
        if not single.any():
            continue
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
            "log_k_mae_fbm": float(cat(k_err).mean()) if len(cat(k_err)) else float("nan"),
            **({"step_alpha_mae": float(cat(step_err).mean())} if step_err else {})}


def export_trained(cfg, module, datamodule, run_dir) -> Path:
    """After ``train.py``: load the best validation checkpoint, score it on the independent
    test batches (seed + 2) and write the model folder ``cfg.export_pretrained``."""
    from smlmnet.models.registry import load_best_checkpoint, model_info_header, write_model_folder

    net = module.net.cpu()   # scored and saved on the CPU, wherever it trained
    best, exported_step = load_best_checkpoint(module)
    if best:
        log.info("exporting the best validation checkpoint %s", best)
    outs_test = collect(net, datamodule.test_set)
    test = score_stream(net, datamodule.test_set, outs_test)
    extra = {}
    if getattr(net, "per_step", False):
        scan = changepoint_scan(collect(net, datamodule.val_set))
        chosen = max(scan, key=lambda r: r["cp_jaccard"])
        report = changepoint_scan(outs_test, (chosen["threshold"],))[0]
        test.update({"cp_rmse": report["cp_rmse"], "cp_jaccard": report["cp_jaccard"]})
        extra = {"thresholds": {"changepoint": chosen["threshold"]}, "threshold_scan": scan,
                 "tuning_split": f"{len(datamodule.val_set)} validation batches (seed "
                                 f"{datamodule.val_set.seed})"}
    info = {**model_info_header(cfg, net, "trajectory"),
            "epochs": int(module.current_epoch),
            "exported_step": exported_step,
            "global_steps": int(module.global_step),
            "train_items": int(cfg.data.train_batches),
            "training_ranges": datamodule.training_ranges(),
            "model_classes": list(getattr(datamodule.train_set, "classes", None)
                                  or datamodule.train_set.models),
            **({"state_classes": list(STATES)} if getattr(net, "n_states", 0) else {}),
            "validation_split": f"{len(datamodule.test_set)} independent test batches (seed "
                                f"{datamodule.test_set.seed}), "
                                f"{datamodule.hparams.get('kind', 'andi1')} mix, lengths "
                                f"{datamodule.test_set.min_length}–"
                                f"{datamodule.test_set.max_length} (one length per batch, batch "
                                "size ∝ 1/(T−1): short tracks dominate this per-track average; "
                                "evaluate.py benchmark=andi1 draws lengths per track)",
            "validation": test,
            **extra,
            "limits": str(cfg.get("model_limits") or "")}
    folder = write_model_folder(cfg.export_pretrained, net.state_dict(), info)
    log.info("exported %s: test %s", folder, test)
    return folder
