"""Turn a trained localizer into a shipped model: tune the detection threshold on the
validation windows, measure metrics and uncertainty calibration, and write the folder."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from smlmnet.localize.decode_post import detect_emitters
from smlmnet.metrics.localization import match_per_frame, smlm_metrics
from smlmnet.models.localizer_module import middle_frame_targets


@torch.inference_mode()
def collect_validation(net, dataset, device="cpu"):
    """Network maps and true middle-frame emitters of every validation window."""
    net.eval().to(device)
    outs, trues = [], []
    loader = torch.utils.data.DataLoader(dataset, batch_size=32)
    offset = 0
    for batch in loader:
        out = net(batch["frames"].to(device))
        em, mask = middle_frame_targets(batch, net.n_frames)
        b, i = torch.nonzero(mask, as_tuple=True)
        trues.append(pd.DataFrame({"frame": (b + offset).numpy(), "x": em[b, i, 0].numpy(),
                                   "y": em[b, i, 1].numpy(), "photons": em[b, i, 2].numpy()}))
        outs.append(({k: v.cpu() for k, v in out.items()}, offset))
        offset += batch["frames"].shape[0]
    return outs, pd.concat(trues, ignore_index=True)


def detections(outs, threshold, second_threshold):
    rows = []
    for out, offset in outs:
        det = detect_emitters(out, threshold, second_threshold)
        rows.append(pd.DataFrame({"frame": det["batch"].numpy() + offset,
                                  "x": det["x"].numpy(), "y": det["y"].numpy(),
                                  "sx": det["sigma_x"].numpy(), "sy": det["sigma_y"].numpy()}))
    return pd.concat(rows, ignore_index=True)


def evaluate_thresholds(outs, true, pixel_size_nm, grid=np.arange(0.3, 0.96, 0.05)):
    """Efficiency for every threshold (first and second threshold tied)."""
    a = pixel_size_nm
    t = pd.DataFrame({"frame": true["frame"], "x [nm]": true["x"] * a, "y [nm]": true["y"] * a})
    rows = []
    for th in grid:
        d = detections(outs, th, th)
        e = pd.DataFrame({"frame": d["frame"], "x [nm]": d["x"] * a, "y [nm]": d["y"] * a})
        m = smlm_metrics(t, e)
        rows.append({"threshold": round(float(th), 2), **{k: m[k] for k in (
            "jaccard [%]", "rmse_lateral [nm]", "efficiency [%]", "recall", "precision")}})
    return pd.DataFrame(rows)


def calibration(outs, true, threshold, pixel_size_nm):
    """Std of the normalized errors (x̂ − x)/σ̂ over matched detections (1 = calibrated)."""
    a = pixel_size_nm
    d = detections(outs, threshold, threshold)
    t = pd.DataFrame({"frame": true["frame"], "x [nm]": true["x"] * a, "y [nm]": true["y"] * a})
    e = pd.DataFrame({"frame": d["frame"], "x [nm]": d["x"] * a, "y [nm]": d["y"] * a})
    pairs = match_per_frame(t, e, 250.0)
    sx = d.loc[pairs["est_index"], "sx"].to_numpy() * a
    sy = d.loc[pairs["est_index"], "sy"].to_numpy() * a
    zx = pairs["dx [nm]"].to_numpy() / sx
    zy = pairs["dy [nm]"].to_numpy() / sy
    z = np.concatenate([zx, zy])
    return {"z_std": float(np.std(z)), "z_mean": float(np.mean(z)),
            "fraction_within_1sigma": float(np.mean(np.abs(z) < 1)),
            "n_matched": int(len(pairs))}


def export_trained(cfg, module, datamodule, run_dir) -> Path:
    from smlmnet.pretrained import export_model

    net = module.net
    a = float(cfg.model.pixel_size_nm)
    outs, true = collect_validation(net, datamodule.val_set)
    table = evaluate_thresholds(outs, true, a)
    best = table.loc[table["efficiency [%]"].idxmax()]
    th = float(best["threshold"])
    calib = calibration(outs, true, th, a)
    net_kwargs = {k: v for k, v in OmegaConf.to_container(cfg.model.net, resolve=True).items()
                  if not k.startswith("_")}
    command = "python " + " ".join(shlex.quote(x) for x in [Path(sys.argv[0]).name] +
                                   sys.argv[1:])
    info = {"name": cfg.model_name or Path(cfg.export_pretrained).name,
            "kind": "decode_localizer",
            "training_command": command,
            "simulation_preset": cfg.data.preset,
            "simulation_overrides": list(cfg.data.overrides),
            "window_shape_px": list(cfg.data.shape_px),
            "pixel_size_nm": a,
            "thresholds": {"threshold": th, "second_threshold": th},
            "validation": {k: float(v) for k, v in best.items()},
            "uncertainty_calibration": calib,
            "epochs": int(module.current_epoch) + 1}
    card = "\n".join([
        f"# {info['name']}: DECODE-style localizer", "",
        f"Trained with `{command}` on windows of {cfg.data.n_frames} frames of "
        f"{cfg.data.shape_px[0]}×{cfg.data.shape_px[1]} px simulated on the fly from the "
        f"`{cfg.data.preset}` preset (configs/simulation/{cfg.data.preset}.yaml), "
        f"{info['epochs']} epochs of {cfg.data.train_items} windows.", "",
        "## Validation (fixed simulated windows, SMLM 2016 metrics, 250 nm)", "",
        "| threshold | Jaccard [%] | RMSE [nm] | efficiency [%] | recall | precision |",
        "|---|---|---|---|---|---|",
        *(f"| {r['threshold']:.2f} | {r['jaccard [%]']:.1f} | {r['rmse_lateral [nm]']:.1f} | "
          f"{r['efficiency [%]']:.1f} | {r['recall']:.3f} | {r['precision']:.3f} |"
          for _, r in table.iterrows()), "",
        f"Chosen threshold: {th:.2f} (best efficiency).", "",
        "## Uncertainty calibration", "",
        f"(x̂ − x)/σ̂ over {calib['n_matched']} matched emitters: std {calib['z_std']:.3f} "
        f"(1 = calibrated), mean {calib['z_mean']:+.3f}, "
        f"{100 * calib['fraction_within_1sigma']:.1f} % within 1σ (68.3 % for a Gaussian).", "",
        "## Use and limits", "",
        "Expects movies like the training preset: EMCCD or photon-converted frames, 100 nm "
        "pixels, PSF σ ≈ 110 nm, 20 ms frames. Other pixel sizes or PSF widths need a model "
        "trained on a matching preset (`data.preset=...`).",
    ])
    folder = Path(cfg.export_pretrained)
    export_model(net, net_kwargs, folder, info, card)
    print(f"exported {folder}: threshold {th:.2f}, validation {dict(best)}, calibration {calib}")
    return folder
