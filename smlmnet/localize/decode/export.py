"""Turn a trained localizer into a model folder: tune the detection threshold and the
uncertainty scale on one split of simulated windows, report metrics and calibration on
another, and write the folder through the registry (weights, hash, generated card)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from smlmnet.localize.decode.post import confidence_scales, detect_emitters, uncertainty_scale_at
from smlmnet.localize.decode.targets import middle_frame_targets
from smlmnet.metrics.localization import match_per_frame, smlm_metrics

log = logging.getLogger(__name__)


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
                                  "sx": det["sigma_x"].numpy(), "sy": det["sigma_y"].numpy(),
                                  "p": det["p"].numpy()}))
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


def matched_errors(outs, true, threshold, pixel_size_nm):
    """Matched detections at ``threshold``: their p and per-axis raw z = error / σ̂, (n, 2)."""
    a = pixel_size_nm
    d = detections(outs, threshold, threshold)
    t = pd.DataFrame({"frame": true["frame"], "x [nm]": true["x"] * a, "y [nm]": true["y"] * a})
    e = pd.DataFrame({"frame": d["frame"], "x [nm]": d["x"] * a, "y [nm]": d["y"] * a})
    pairs = match_per_frame(t, e, 250.0)
    m = d.loc[pairs["est_index"]]
    z = np.stack([pairs["dx [nm]"].to_numpy() / (m["sx"].to_numpy() * a),
                  pairs["dy [nm]"].to_numpy() / (m["sy"].to_numpy() * a)], axis=1)
    return m["p"].to_numpy(), z


def calibration(outs, true, threshold, pixel_size_nm, scale: float = 1.0,
                by_p: dict | None = None):
    """Normalized errors z = (x̂ − x)/(k·σ̂) over matched detections, k the single ``scale``
    or ``by_p``'s p-dependent one: their std and coverage (68.3 % / 95.4 % of |z| below 1 / 2
    for a calibrated Gaussian), and the robust scale 1.4826·median|z| that makes the core of z
    unit-variance."""
    p, z_raw = matched_errors(outs, true, threshold, pixel_size_nm)
    z = (z_raw / uncertainty_scale_at(p, scale, by_p)[:, None]).ravel()
    return {"z_std": float(np.std(z)), "z_mean": float(np.mean(z)),
            "fraction_within_1sigma": float(np.mean(np.abs(z) < 1)),
            "fraction_within_2sigma": float(np.mean(np.abs(z) < 2)),
            "robust_scale": float(1.4826 * np.median(np.abs(z))),
            "n_matched": int(len(p))}


def training_ranges(sim_cfg, randomization, net=None) -> dict:
    """What the training data covered, for the model folder and the domain guard: the
    randomization's ranges, or those of a fixed preset (PSF σ ± 10 %, the photon and
    background specs with the background pattern's variation, density, camera)."""
    from smlmnet.simulate.params import param_bounds

    # a robust-normalized network is blind to gain and offset: it needs no camera calibration
    needs_camera = getattr(net, "normalization", "median") != "robust"
    if randomization is not None:
        return {**randomization.training_ranges(), "camera_calibration_needed": needs_camera}
    a = sim_cfg.fov.pixel_size_nm
    sigma_px = sim_cfg.psf.sigma / a
    bg_lo, bg_hi = param_bounds(sim_cfg.background.photons_per_px, "background")
    v = sim_cfg.background.variation
    d_lo, d_hi = param_bounds(sim_cfg.particles.density_per_um2, "density") if \
        sim_cfg.particles.n is None else (0.0, 0.0)
    return {"pixel_size_nm": [0.9 * a, 1.1 * a],
            "psf_sigma_px": [round(0.9 * sigma_px, 3), round(1.1 * sigma_px, 3)],
            "photons": list(param_bounds(sim_cfg.photophysics.photons_per_frame, "photons")),
            "background_photons_per_px": [bg_lo * (1 - min(v, 1)), bg_hi * (1 + v)],
            "density_per_px2": [0.0, d_hi * (a / 1000) ** 2],
            "cameras": [sim_cfg.camera.model],
            "camera_calibration_needed": needs_camera,
            "degradations": {"eight_bit_clipped": False, "offset_subtracted": False,
                             "hot_pixels": False}}


def tune_and_report(net, tuning_set, report_set, pixel_size_nm: float) -> dict:
    """Tune the detection threshold (best efficiency) and the uncertainty scale (a single one
    and one per detection-probability bin, :func:`confidence_scales`) on ``tuning_set``;
    report metrics and calibration on the independent ``report_set``."""
    a = pixel_size_nm
    outs, true = collect_validation(net, tuning_set)
    scan = evaluate_thresholds(outs, true, a)
    th = float(scan.loc[scan["efficiency [%]"].idxmax(), "threshold"])
    scale = calibration(outs, true, th, a)["robust_scale"]
    by_p = confidence_scales(*matched_errors(outs, true, th, a))
    outs_r, true_r = collect_validation(net, report_set)
    report = evaluate_thresholds(outs_r, true_r, a, grid=(th,)).iloc[0]
    return {"thresholds": {"threshold": th, "second_threshold": th},
            "threshold_scan": [{k: (round(float(v), 4)) for k, v in r.items()}
                               for _, r in scan.iterrows()],
            "uncertainty_scale": float(scale),
            "uncertainty_scale_by_p": by_p,
            "validation": {k: float(v) for k, v in report.items()},
            "uncertainty_calibration": calibration(outs_r, true_r, th, a, scale, by_p),
            "uncertainty_calibration_single_scale": calibration(outs_r, true_r, th, a, scale),
            "uncertainty_calibration_raw": calibration(outs_r, true_r, th, a)}


def export_trained(cfg, module, datamodule, run_dir) -> Path:
    """After ``train.py``: load the best validation checkpoint, tune thresholds and the
    uncertainty scale on the validation windows, report on independent test windows, and
    write a model folder (``export_pretrained=DIR``)."""
    from smlmnet.models.registry import load_best_checkpoint, model_info_header, write_model_folder

    net = module.net.cpu()   # scored and saved on the CPU, wherever it trained
    best, exported_step = load_best_checkpoint(module)
    if best:
        log.info("exporting the best validation checkpoint %s", best)
    a = float(cfg.model.pixel_size_nm)
    results = tune_and_report(net, datamodule.val_set, datamodule.test_set, a)
    randomization = datamodule.train_set.randomization
    sim_cfg = datamodule.train_set.config
    info = {**model_info_header(cfg, net, "localizer"),
            "simulation_preset": cfg.data.preset,
            "simulation_overrides": list(cfg.data.overrides),
            "domain_randomization": randomization.to_dict() if randomization else None,
            "window_shape_px": list(cfg.data.shape_px),
            "edge_probability": datamodule.train_set.edge_probability,
            "pixel_size_nm": a,
            "epochs": int(module.current_epoch) + 1,
            "exported_step": exported_step,
            "train_items": int(cfg.data.train_items),
            "global_steps": int(module.global_step),
            "training_ranges": training_ranges(sim_cfg, randomization, net),
            "initialized_from": cfg.model.get("init_from"),
            "tuning_split": f"{len(datamodule.val_set)} validation windows (seed "
                            f"{datamodule.val_set.seed})",
            "validation_split": f"{len(datamodule.test_set)} independent test windows (seed "
                                f"{datamodule.test_set.seed})",
            **results,
            "limits": str(cfg.get("model_limits") or "")}
    folder = write_model_folder(cfg.export_pretrained, net.state_dict(), info)
    log.info("exported %s: threshold %.2f, test %s", folder, info["thresholds"]["threshold"],
             info["validation"])
    return folder


def recalibrate(name_or_path: str, output: str | Path, items: int = 512, seed: int = 1,
                shape_px: tuple[int, int] | None = None) -> Path:
    """Recompute a model's threshold and uncertainty scale on fresh simulated windows from
    its own training distribution (tuning: ``seed``, report: ``seed + 1``) and write them,
    with a copy of the weights, to the NEW folder ``output`` (a model folder is never
    rewritten in place)."""
    from smlmnet.io.provenance import reproduce_command
    from smlmnet.models.datasets import SimulatedMovieDataset
    from smlmnet.models.registry import load, write_model_folder
    from smlmnet.simulate.config import load_config

    loc = load(name_or_path)
    info = dict(loc.info)
    cfg = load_config(info["simulation_preset"], info.get("simulation_overrides") or [])
    shape = tuple(shape_px or info["window_shape_px"])
    rnd = info.get("domain_randomization")
    sets = [SimulatedMovieDataset(cfg, loc.net.n_frames, shape, items, seed + i,
                                  randomization=rnd,
                                  edge_probability=float(info.get("edge_probability") or 0.0))
            for i in (0, 1)]
    results = tune_and_report(loc.net, sets[0], sets[1], float(info["pixel_size_nm"]))
    info.update(results)
    info["tuning_split"] = f"{items} windows (seed {seed})"
    info["validation_split"] = f"{items} independent windows (seed {seed + 1})"
    info["recalibration_command"] = reproduce_command()
    info.pop("weights_sha256", None)
    return write_model_folder(output, loc.net.state_dict(), info)
