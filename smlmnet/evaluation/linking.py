"""Linking benchmarks: PTC scores on simulated sptPALM movies at several densities (all
linkers on the same localizations), and link time on ~10⁵ localizations."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
from hydra.utils import instantiate

from smlmnet.data import contracts as C
from smlmnet.evaluation.report import write_report
from smlmnet.localize import SpotFitLocalizer
from smlmnet.metrics.tracking import tracking_metrics
from smlmnet.simulate import load_config, simulate

logger = logging.getLogger(__name__)


def _linkers(cfg):
    out = {}
    for name, spec in cfg.methods.items():
        try:
            linker = instantiate(spec)
            if spec.get("_target_", "").startswith("smlmnet.peers"):
                linker.link(pd.DataFrame({C.FRAME: [0, 1], C.X_NM: [0.0, 1.0],
                                          C.Y_NM: [0.0, 0.0]}))  # import check
            out[name] = linker
        except ImportError as err:
            logger.warning("skipping %s: %s", name, err)
    return out


def synthetic_localizations(rng, n_locs, n_frames, track_frames, D_nm2_per_frame, field_nm,
                            loc_nm, detect_prob):
    """sptPALM-like stream: Brownian particles that appear at random frames and live
    ``track_frames`` frames, detected with probability ``detect_prob`` (gaps), positions with
    Gaussian localization error. About ``n_locs`` rows."""
    n_part = int(np.ceil(n_locs / (track_frames * detect_prob)))
    start = rng.integers(-track_frames + 1, n_frames, n_part)
    steps = rng.normal(0, np.sqrt(2 * D_nm2_per_frame), (n_part, track_frames, 2))
    pos = rng.uniform(0, field_nm, (n_part, 1, 2)) + np.cumsum(steps, axis=1)
    frame = start[:, None] + np.arange(track_frames)[None, :]
    keep = (rng.random((n_part, track_frames)) < detect_prob) & (frame >= 0) & (
        frame < n_frames)
    pid, k = np.nonzero(keep)
    xy = pos[pid, k] + rng.normal(0, loc_nm, (pid.size, 2))
    return pd.DataFrame({C.FRAME: frame[pid, k], C.X_NM: xy[:, 0], C.Y_NM: xy[:, 1],
                         C.TRACK_ID: pid})


def run(cfg, out_dir) -> pd.DataFrame:
    linkers = _linkers(cfg)
    rows = []
    for density in cfg.densities:
        sim = simulate(load_config(cfg.simulation.preset, list(cfg.simulation.overrides) +
                                   [f"particles.density_per_um2={density}"]))
        true = sim.emitters[sim.emitters["on"]]
        locs = SpotFitLocalizer("mle", psf_sigma_nm=sim.config.psf.sigma).localize(sim.movie)
        gate = cfg.gate_px * sim.config.fov.pixel_size_nm
        on_density = len(true) / sim.config.n_frames / np.prod(sim.config.fov_size_um)
        sources = {"localizations": locs, "true positions": true.drop(columns=C.TRACK_ID)}
        for source, table in sources.items():
            for name, linker in linkers.items():
                t0 = time.perf_counter()
                tracks = linker.link(table)
                el = time.perf_counter() - t0
                m = tracking_metrics(true, tracks, gate)
                rows.append({"emitters/µm² on": round(on_density, 3), "input": source,
                             "linker": name, "alpha": m["alpha"], "beta": m["beta"],
                             "JSC": m["jsc"], "JSC_theta": m["jsc_theta"],
                             "tracks": m["n_est_tracks"], "true tracks": m["n_true_tracks"],
                             "time [s]": el})
    table = pd.DataFrame(rows)
    # scaling: ~1e5 localizations
    rng = np.random.default_rng(cfg.seed)
    big = synthetic_localizations(rng, cfg.scaling.n_locs, cfg.scaling.n_frames,
                                  cfg.scaling.track_frames, cfg.scaling.D_nm2_per_frame,
                                  cfg.scaling.field_nm, cfg.scaling.loc_nm,
                                  cfg.scaling.detect_prob)
    srows = []
    for name, linker in linkers.items():
        if name in cfg.scaling.skip:
            continue
        t0 = time.perf_counter()
        tracks = linker.link(big.drop(columns=C.TRACK_ID))
        el = time.perf_counter() - t0
        m = tracking_metrics(big, tracks, cfg.gate_px * 100.0)
        srows.append({"linker": name, "localizations": len(big), "time [s]": el,
                      "alpha": m["alpha"], "JSC_theta": m["jsc_theta"]})
    scaling = pd.DataFrame(srows)
    if len(scaling):
        ref = scaling.loc[scaling["linker"] == "smlmnet LAP", "time [s]"]
        if len(ref):
            scaling["time / smlmnet LAP"] = scaling["time [s]"] / ref.iloc[0]
    notes = [
        f"Movies: '{cfg.simulation.preset}' preset with overrides "
        f"{list(cfg.simulation.overrides)} ({sim.config.n_frames} frames of "
        f"{sim.config.fov.shape_px[0]}×{sim.config.fov.shape_px[1]} px, "
        f"{sim.config.fov.pixel_size_nm:g} nm pixels, {sim.config.camera.model} camera, PSF σ "
        f"{sim.config.psf.sigma:g} nm; blinking, so tracks have gaps), localized "
        "once with smlmnet's MLE; every linker gets the same localizations (and, as a "
        "reference, the true positions). Equivalent settings: search radius "
        f"{cfg.search_radius_nm:g} nm = trackpy search_range, laptrack cutoff = radius², "
        f"gaps of up to {cfg.max_gap} frames (trackpy memory = {cfg.max_gap}, laptrack "
        f"gap_closing_max_frame_count = {cfg.max_gap + 1}). PTC metrics with a "
        f"{cfg.gate_px:g} px gate.",
        f"Scaling: {len(big)} synthetic localizations ({cfg.scaling.n_frames} frames, "
        f"Brownian tracks of {cfg.scaling.track_frames} frames appearing at random times, "
        f"{100 * (1 - cfg.scaling.detect_prob):.0f} % missed detections). "
        f"Skipped there: {', '.join(cfg.scaling.skip) or 'none'}.",
    ]
    write_report(out_dir, "linking", "Linking: smlmnet vs trackpy and laptrack", table, notes,
                 {"Link time on ~10⁵ localizations": scaling}, config=cfg)
    return table
