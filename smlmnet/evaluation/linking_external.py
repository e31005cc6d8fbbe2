"""Linking on data that smlmnet did not simulate: the transformer linker against the tuned LAP.

Two sections, every linker on the same localizations:

- **AnDi 2 fields** (``fields_root``, written by
  ``benchmarks/external/make_andi2_linking_fields.py`` in andi-datasets' own environment):
  crowded fields of simultaneous trajectories from andi-datasets' phenomenological models
  (single state, multi-state, immobile traps, dimerization, confinement). The motion is
  andi-datasets'; the observation is added here (``observation``: pixel size, frame time,
  missed detections, Gaussian localization error), seeded per file. The LAP is tuned per
  (model, particles) on the tuning seed's field (never a report seed).
- **andi-datasets movies** (``movies_root``, the transfer benchmark's ``andi`` renderer):
  localized once as ``smlmnet analyze`` does (``localizer``), then linked; scored against the
  renderer's trajectories.

Scores: the particle tracking challenge's α, β, JSC_θ (gate ``gate_nm``); per (model,
particles) the mean ± 95 % t-interval over seeds and the paired difference transformer − LAP.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.utils import instantiate

from smlmnet.data import contracts as C
from smlmnet.evaluation.linking import _ci95
from smlmnet.evaluation.report import write_report
from smlmnet.link import LAPLinker
from smlmnet.link.transformer.targets import PHOTONS, UNCERTAINTY
from smlmnet.metrics.tracking import tracking_metrics

logger = logging.getLogger(__name__)


def observe_field(truth: pd.DataFrame, obs, seed: int) -> pd.DataFrame:
    """Localization table of a field of true positions (``x [nm]``, ``y [nm]``, ``frame``,
    ``track_id``): each point detected with probability ``obs.detection_probability``, moved
    by Gaussian error of ``obs.localization_error_nm`` per axis; constant photons and
    uncertainty columns. Frame-sorted; ``track_id`` kept as truth."""
    rng = np.random.default_rng(seed)
    keep = rng.random(len(truth)) < float(obs.detection_probability)
    out = truth[keep].copy()
    s = float(obs.localization_error_nm)
    out[C.X_NM] += rng.normal(0, s, len(out))
    out[C.Y_NM] += rng.normal(0, s, len(out))
    out[PHOTONS] = float(obs.photons)
    out[UNCERTAINTY] = s
    return out.sort_values(C.FRAME, kind="stable").reset_index(drop=True)


def read_field(path: Path, pixel_size_nm: float) -> pd.DataFrame:
    """One AnDi 2 field CSV (px, frames) as a truth table in nm."""
    df = pd.read_csv(path)
    return pd.DataFrame({C.FRAME: df["frame"].astype(np.int64),
                         C.TRACK_ID: df["track_id"].astype(np.int64),
                         C.X_NM: df["x [px]"] * pixel_size_nm,
                         C.Y_NM: df["y [px]"] * pixel_size_nm,
                         "state": df["state"].astype(int)})


def tune_lap(truth_locs: pd.DataFrame, radii, gaps, gate_nm: float) -> tuple[float, int]:
    """(search radius nm, max gap) of the LAP with the best PTC α on a tuning table."""
    locs = truth_locs.drop(columns=[C.TRACK_ID])
    best = max(((float(r), int(g)) for r in radii for g in gaps),
               key=lambda rg: tracking_metrics(truth_locs, LAPLinker(*rg).link(locs),
                                               gate_nm)["alpha"])
    return best


def _scores(truth, tracks, gate_nm) -> dict:
    m = tracking_metrics(truth, tracks, gate_nm)
    return {"alpha": m["alpha"], "beta": m["beta"], "JSC_theta": m["jsc_theta"]}


def run_fields(cfg, learned: dict) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Per-seed rows, the per-cell summary and the paired Δα table of the AnDi 2 fields."""
    root = Path(cfg.fields_root)
    meta = json.loads((root / "fields.json").read_text())
    obs, px, gate = cfg.observation, float(cfg.observation.pixel_size_nm), float(cfg.gate_nm)
    cells: dict[tuple, dict] = {}
    for f in meta["files"]:
        if not (root / f["file"]).is_file():
            logger.warning("missing field %s", f["file"])
            continue
        cell = cells.setdefault((f["model"], int(f["n"])), {"tune": None, "report": []})
        if f["tuning"]:
            cell["tune"] = f["file"]
        else:
            cell["report"].append((int(f["seed"]), f["file"]))
    rows, times = [], {}
    for (model, n), cell in cells.items():
        if cell["tune"] is None or not cell["report"]:
            continue
        tag = zlib.crc32(f"{model}/{n}".encode())
        tune = observe_field(read_field(root / cell["tune"], px), obs, tag)
        radius, gap = tune_lap(tune, cfg.lap_search_radius_nm, cfg.lap_max_gap, gate)
        linkers = {"LAP": LAPLinker(radius, gap), **learned}
        for seed, name in cell["report"]:
            truth = read_field(root / name, px)
            locs = observe_field(truth, obs, [seed, tag])
            area = float(np.ptp(truth[C.X_NM]) * np.ptp(truth[C.Y_NM])) / 1e6
            for key, linker in linkers.items():
                t0 = time.perf_counter()
                tracks = linker.link(locs.drop(columns=[C.TRACK_ID, "state"]))
                el = time.perf_counter() - t0
                k, t = times.get(key, (0, 0.0))
                times[key] = (k + len(locs), t + el)
                rows.append({"model": model, "particles": n,
                             "particles/µm²": round(n / max(area, 1e-9), 2), "linker": key,
                             "settings": (f"tuned: {radius:g} nm, gap {gap}" if key == "LAP"
                                          else "shipped"),
                             "seed": seed, "localizations": len(locs),
                             **_scores(truth, tracks, gate), "time [s]": el})
    raw = pd.DataFrame(rows)
    summary, deltas = [], []
    for (model, n, key), g in raw.groupby(["model", "particles", "linker"], sort=False):
        row = {"model": model, "particles": n, "particles/µm²": g["particles/µm²"].mean(),
               "linker": key, "settings": g["settings"].iloc[0], "seeds": len(g),
               "localizations/seed": int(g["localizations"].mean())}
        for m in ("alpha", "beta", "JSC_theta"):
            mean, hw = _ci95(g[m])
            row[m], row[f"{m} ±95%"] = round(mean, 4), round(hw, 4)
        summary.append(row)
    for name in learned:
        for (model, n), g in raw.groupby(["model", "particles"], sort=False):
            a = g[g["linker"] == name].set_index("seed")["alpha"]
            b = g[g["linker"] == "LAP"].set_index("seed")["alpha"]
            mean, hw = _ci95((a - b.reindex(a.index)).dropna())
            deltas.append({"linker": name, "model": model, "particles": n,
                           "Δα vs tuned LAP": round(mean, 4), "±95%": round(hw, 4),
                           "≥ −0.01": bool(mean >= -0.01)})
    speed = pd.DataFrame([{"linker": k, "localizations": n, "time [s]": round(t, 3),
                           "localizations/s": round(n / t) if t > 0 else np.nan}
                          for k, (n, t) in times.items()])
    return pd.DataFrame(summary), pd.DataFrame(deltas), speed


def run_movies(cfg, learned: dict) -> pd.DataFrame:
    """andi-datasets movies: localized once (``cfg.localizer``), linked by the LAP (the
    ``smlmnet analyze`` default settings) and the learned linkers."""
    from smlmnet.evaluation.transfer import find_movies, load_truth, make_localizer
    from smlmnet.io.tiff import read_movie_tiff

    m = cfg.movies
    rows = []
    for renderer, folder in find_movies(m.root, [m.renderer]):
        movie = read_movie_tiff(folder / "movie.tif", float(m.pixel_size_nm),
                                float(m.frame_time_s), lazy=False)
        truth = load_truth(folder, movie.pixel_size_nm).rename(columns={"emitter": C.TRACK_ID})
        loc, _, _ = make_localizer(str(m.localizer), m, renderer, movie)
        locs = loc.localize(movie).sort_values(C.FRAME, kind="stable").reset_index(drop=True)
        linkers = {"LAP (analyze default: 500 nm, gap 2)": LAPLinker(500.0, 2), **learned}
        for key, linker in linkers.items():
            tracks = linker.link(locs)
            rows.append({"movie": folder.name, "particles": int(truth[C.TRACK_ID].nunique()),
                         "localizations": len(locs), "linker": key,
                         **_scores(truth, tracks, float(cfg.gate_nm))})
    return pd.DataFrame(rows)


def run(cfg, out_dir) -> pd.DataFrame:
    if cfg.get("torch_threads"):
        import torch

        torch.set_num_threads(int(cfg.torch_threads))
    learned = {name: instantiate(spec) for name, spec in (cfg.learned or {}).items()}
    summary, deltas, speed = run_fields(cfg, learned)
    extra = {"AnDi 2 fields: transformer minus tuned LAP, PTC α (paired over seeds)": deltas,
             "AnDi 2 fields: speed (same run)": speed}
    notes = [
        f"AnDi 2 fields: andi-datasets' models_phenom trajectories from {cfg.fields_root} "
        "(benchmarks/external/make_andi2_linking_fields.py; its fields.json gives the "
        "versions and parameters), observed here with "
        f"{dict(cfg.observation)}; LAP tuned per (model, particles) over search radius "
        f"{list(cfg.lap_search_radius_nm)} nm × max gap {list(cfg.lap_max_gap)} on the "
        "tuning seed; the transformer with its shipped threshold and gap closing. PTC gate "
        f"{cfg.gate_nm:g} nm. Mean ± 95 % t-interval over seeds."]
    if cfg.get("movies") and cfg.movies.get("enabled", True) and Path(
            cfg.movies.root).is_dir():
        extra["andi-datasets movies (localized once, same localizations for every linker)"] = \
            run_movies(cfg, learned)
        notes.append(
            f"Movies: every movie of {cfg.movies.root}/{cfg.movies.renderer} (andi-datasets' "
            "deeptrack renderer), localized with "
            f"'{cfg.movies.localizer}' as in the transfer benchmark, at "
            f"{cfg.movies.pixel_size_nm:g} nm pixels.")
    write_report(out_dir, "linking_external",
                 "Linking on external data: andi-datasets' AnDi 2 models and movies",
                 summary, notes, extra, config=cfg)
    return summary
