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


THRESHOLD_GRID = tuple(np.round(np.arange(0.3, 0.96, 0.05), 2))


def evaluate_thresholds(outs, true, pixel_size_nm, grid=THRESHOLD_GRID):
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


def calibration(outs, true, threshold, pixel_size_nm, scale: float = 1.0):
    """Normalized errors z = (x̂ − x)/(scale·σ̂) over matched detections: their std and
    coverage (68.3 % / 95.4 % of |z| below 1 / 2 for a calibrated Gaussian), and the robust
    scale 1.4826·median|z| that makes the core of z unit-variance."""
    a = pixel_size_nm
    d = detections(outs, threshold, threshold)
    t = pd.DataFrame({"frame": true["frame"], "x [nm]": true["x"] * a, "y [nm]": true["y"] * a})
    e = pd.DataFrame({"frame": d["frame"], "x [nm]": d["x"] * a, "y [nm]": d["y"] * a})
    pairs = match_per_frame(t, e, 250.0)
    sx = d.loc[pairs["est_index"], "sx"].to_numpy() * a
    sy = d.loc[pairs["est_index"], "sy"].to_numpy() * a
    zx = pairs["dx [nm]"].to_numpy() / (scale * sx)
    zy = pairs["dy [nm]"].to_numpy() / (scale * sy)
    z = np.concatenate([zx, zy])
    return {"z_std": float(np.std(z)), "z_mean": float(np.mean(z)),
            "fraction_within_1sigma": float(np.mean(np.abs(z) < 1)),
            "fraction_within_2sigma": float(np.mean(np.abs(z) < 2)),
            "robust_scale": float(1.4826 * np.median(np.abs(z))),
            "n_matched": int(len(pairs))}


def model_card(info: dict, table: pd.DataFrame, train_items: int, n_frames: int) -> str:
    """The MODEL_CARD.md text of a shipped localizer."""
    th = info["thresholds"]["threshold"]
    raw, calib = info["uncertainty_calibration_raw"], info["uncertainty_calibration"]
    shape = info["window_shape_px"]
    return "\n".join([
        f"# {info['name']}: DECODE-style localizer", "",
        f"Trained with `{info['training_command']}` on windows of {n_frames} frames of "
        f"{shape[0]}×{shape[1]} px simulated on the fly from the `{info['simulation_preset']}` "
        f"preset (configs/simulation/{info['simulation_preset']}.yaml), {info['epochs']} "
        f"epochs of {train_items} windows (new windows every epoch).", "",
        "## Validation (fixed simulated windows, SMLM 2016 metrics, 250 nm)", "",
        "| threshold | Jaccard [%] | RMSE [nm] | efficiency [%] | recall | precision |",
        "|---|---|---|---|---|---|",
        *(f"| {r['threshold']:.2f} | {r['jaccard [%]']:.1f} | {r['rmse_lateral [nm]']:.1f} | "
          f"{r['efficiency [%]']:.1f} | {r['recall']:.3f} | {r['precision']:.3f} |"
          for _, r in table.iterrows()), "",
        f"Chosen threshold: {th:.2f} (best efficiency).", "",
        "## Uncertainty calibration", "",
        f"The network's σ̂ are multiplied by {info['uncertainty_scale']:.3f} "
        f"(1.4826·median|z| of the raw normalized errors z = (x̂ − x)/σ̂ on the validation "
        f"windows; raw z std {raw['z_std']:.3f}, {100 * raw['fraction_within_1sigma']:.1f} % "
        f"within 1σ). After scaling, over {calib['n_matched']} matched emitters: z std "
        f"{calib['z_std']:.3f}, mean {calib['z_mean']:+.3f}, "
        f"{100 * calib['fraction_within_1sigma']:.1f} % within 1σ (68.3 % for a Gaussian), "
        f"{100 * calib['fraction_within_2sigma']:.1f} % within 2σ (95.4 %). The tails are "
        "heavier than a Gaussian's: overlapping emitters and pairs matched up to 250 nm "
        "apart.", "",
        "## Use and limits", "",
        "Expects movies like the training preset: 100 nm pixels, PSF σ ≈ 110 nm, frames "
        "converted to photons with the camera's parameters (EMCCD in training), emitters with "
        "100–3000 photons over 5–40 photons/px of background. Other pixel sizes or PSF widths "
        "need a model trained on a matching preset (`data.preset=...`).",
    ]) + "\n"


def export_trained(cfg, module, datamodule, run_dir) -> Path:
    from smlmnet.pretrained import export_model

    net = module.net
    a = float(cfg.model.pixel_size_nm)
    outs, true = collect_validation(net, datamodule.val_set)
    table = evaluate_thresholds(outs, true, a)
    best = table.loc[table["efficiency [%]"].idxmax()]
    th = float(best["threshold"])
    raw = calibration(outs, true, th, a)
    # post-hoc calibration: one scale for the predicted σ's, fitted robustly on validation
    scale = raw["robust_scale"]
    calib = calibration(outs, true, th, a, scale)
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
            "uncertainty_scale": scale,
            "validation": {k: float(v) for k, v in best.items()},
            "uncertainty_calibration": calib,
            "epochs": int(module.current_epoch) + 1,
            "train_items": int(cfg.data.train_items),
            "global_steps": int(module.global_step)}
    info["uncertainty_calibration_raw"] = raw
    card = model_card(info, table, cfg.data.train_items, cfg.data.n_frames)
    folder = Path(cfg.export_pretrained)
    export_model(net, net_kwargs, folder, info, card)
    print(f"exported {folder}: threshold {th:.2f}, validation {dict(best)}, calibration {calib}")
    return folder


def recalibrate_shipped(name: str = "decode_sptpalm", val_items: int = 512, seed: int = 1) -> dict:
    """Recompute threshold, metrics and uncertainty scale of a shipped model on the same
    validation windows as training (``seed`` = training seed + 1) and rewrite its
    ``model.yaml`` (keeps the weights). Returns the new description."""
    import yaml

    from smlmnet.data.datasets import SimulatedMovieDataset
    from smlmnet.pretrained import load_model, model_dir
    from smlmnet.simulate.config import load_config

    net, info = load_model(name)
    folder = model_dir(name)
    cfg = load_config(info["simulation_preset"], info.get("simulation_overrides", []))
    val = SimulatedMovieDataset(cfg, net.n_frames, tuple(info["window_shape_px"]), val_items,
                                seed)
    a = float(info["pixel_size_nm"])
    outs, true = collect_validation(net, val)
    table = evaluate_thresholds(outs, true, a)
    best = table.loc[table["efficiency [%]"].idxmax()]
    th = float(best["threshold"])
    raw = calibration(outs, true, th, a)
    calib = calibration(outs, true, th, a, raw["robust_scale"])
    info.update({"thresholds": {"threshold": th, "second_threshold": th},
                 "uncertainty_scale": raw["robust_scale"],
                 "validation": {k: float(v) for k, v in best.items()},
                 "uncertainty_calibration": calib, "uncertainty_calibration_raw": raw})
    (folder / "model.yaml").write_text(yaml.safe_dump(info, sort_keys=False))
    info.setdefault("epochs", "?")
    (folder / "MODEL_CARD.md").write_text(model_card(info, table, info.get("train_items", 0),
                                                     net.n_frames))
    return info
