"""Turn a trained transformer linker into a model folder: tune the edge-probability threshold
on one split of simulated localization tables (best mean PTC α), report PTC scores beside the
LAP's on an independent split, and write the folder through the registry (weights, hash,
generated card)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from smlmnet.data import contracts as C
from smlmnet.link.transformer.targets import DEFAULT_RANGES, regime_ranges, simulate_table

log = logging.getLogger(__name__)

THRESHOLD_GRID = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
GATE_NM = 500.0  # PTC gate ε = 5 px of 100 nm


def validation_tables(seed: int, n_tables: int = 12, n_frames: int = 30,
                      locs_per_table: int = 3000, ranges: dict | None = None,
                      regimes: list[dict] | None = None) -> list:
    """Localization tables drawn from the training distribution (random motion mixture,
    density, blinking, noise, false positives, the regime mixture), one generator per table
    from ``seed``."""
    base = {**DEFAULT_RANGES, **(ranges or {})}
    out = []
    for k in range(n_tables):
        rng = np.random.default_rng([seed, 7919, k])
        R = regime_ranges(rng, base, regimes)
        rho = float(np.exp(rng.uniform(*np.log(R["density_on_per_um2"]))))
        side = float(np.clip(np.sqrt(locs_per_table / (rho * n_frames)), 3.0, 25.0))
        out.append(simulate_table(rng, n_frames, side, rho, ranges=R))
    return out


def score_tables(tables, link_fn) -> dict:
    """Mean PTC α, β, JSC_θ of ``link_fn(table without track_id) -> tracks`` over tables
    (the truth is each table's rows with ``track_id ≥ 0``)."""
    from smlmnet.metrics.tracking import tracking_metrics

    rows = []
    for t in tables:
        est = link_fn(t.drop(columns=C.TRACK_ID))
        m = tracking_metrics(t[t[C.TRACK_ID] >= 0], est, GATE_NM)
        rows.append({"alpha": m["alpha"], "beta": m["beta"], "JSC_theta": m["jsc_theta"]})
    return {k: float(v) for k, v in pd.DataFrame(rows).mean().items()}


def tune_threshold(linker, tables, grid=THRESHOLD_GRID) -> tuple[float, list[dict]]:
    """Threshold of best mean α over ``tables`` (edge probabilities computed once per table)
    and the scan."""
    from smlmnet.metrics.tracking import tracking_metrics

    cache = []
    for t in tables:
        locs = t.drop(columns=C.TRACK_ID).reset_index(drop=True)
        cache.append((t, locs, linker.edge_probabilities(locs)))
    scan = []
    for th in grid:
        ms = []
        for t, locs, edges in cache:
            est = locs.assign(**{C.TRACK_ID: linker.tracks_from_edges(len(locs), edges, th)})
            m = tracking_metrics(t[t[C.TRACK_ID] >= 0], est, GATE_NM)
            ms.append((m["alpha"], m["beta"], m["jsc_theta"]))
        a, b, j = np.mean(ms, axis=0)
        scan.append({"threshold": float(th), "alpha": round(float(a), 4),
                     "beta": round(float(b), 4), "JSC_theta": round(float(j), 4)})
    best = max(scan, key=lambda r: r["alpha"])["threshold"]
    return float(best), scan


def export_trained(cfg, module, datamodule, run_dir) -> Path:
    """After ``train.py``: load the best validation checkpoint, tune the threshold on
    validation tables (seed + 1), report on independent tables (seed + 2) beside the LAP, and
    write a model folder (``export_pretrained=DIR``)."""
    from smlmnet.link.base import LAPLinker
    from smlmnet.link.transformer.infer import TransformerLinker
    from smlmnet.models.registry import load_best_checkpoint, model_info_header, write_model_folder

    net = module.net.cpu()   # scored and saved on the CPU, wherever it trained
    best, exported_step = load_best_checkpoint(module)
    if best:
        log.info("exporting the best validation checkpoint %s", best)
    ranges = {**DEFAULT_RANGES, **(datamodule.train_set.ranges or {})}
    seed = int(cfg.seed)
    regimes = datamodule.train_set.regimes
    tune = validation_tables(seed + 1, ranges=ranges, regimes=regimes)
    report = validation_tables(seed + 2, ranges=ranges, regimes=regimes)
    linker = TransformerLinker(net)
    th, scan = tune_threshold(linker, tune)
    linker.threshold = th
    ours = score_tables(report, linker.link)
    lap = score_tables(report, LAPLinker(500.0, 2).link)
    info = {**model_info_header(cfg, net, "linker", (
                "Transformer linker for single-molecule tracking (Trackastra-style association "
                "with gap edges for blinking): windows of localizations, sparse neighbour "
                "attention, parental/child softmax, global assignment on -log p.")),
            "epochs": int(module.current_epoch) + 1,
            "exported_step": exported_step,
            "global_steps": int(module.global_step),
            "train_items": int(cfg.data.train_items),
            "pixel_size_nm": float(ranges["pixel_size_nm"]),
            "frame_time_s": float(ranges["frame_time_s"]),
            "training_ranges": {k: v for k, v in ranges.items()},
            "training_regimes": regimes,
            "thresholds": {"threshold": th},
            "threshold_scan": scan,
            "tuning_split": f"{len(tune)} simulated tables of 30 frames from the training "
                            f"distribution (seed {seed + 1})",
            "validation_split": f"{len(report)} independent tables (seed {seed + 2}); LAP "
                                "(500 nm, gaps of 2) on the same tables: " + ", ".join(
                                    f"{k} {v:.3f}" for k, v in lap.items()),
            "validation": {**ours, **{f"LAP {k}": v for k, v in lap.items()}},
            "limits": str(cfg.get("model_limits") or (
                "Trained on simulated localization tables (20 ms frames, 100 nm pixels, D "
                "0.001-10 um^2/s, 0.05-2 detected emitters/um^2 per frame); frame times far "
                "from 20 ms change the displacement scale the network expects. Needs frame-"
                "sorted tables; photons and uncertainty_xy [nm] improve it (defaults 1000 "
                "photons, 20 nm when absent)."))}
    folder = write_model_folder(cfg.export_pretrained, net.state_dict(), info)
    log.info("exported %s: threshold %.2f, report %s, LAP %s", folder, th, ours, lap)
    return folder
