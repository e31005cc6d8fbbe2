"""The generalist localizer against the MLE fit and the specialist on smlmnet's own movies.

A grid of PSF widths × cameras (each point: several seeds of a movie with hundreds of distinct
emitters), a low-density regime with ≥ 1000 distinct emitters over the seeds, and the
specialist's own preset. Every method runs on the same movies; each cell is the mean over
seeds with a 95 % Student-t interval. Speed is frames/s of the whole movie → table, with its
ratio to the MLE fit measured on the same movies in the same run.
"""

from __future__ import annotations

import time

import pandas as pd
from hydra.utils import instantiate

from smlmnet.evaluation.report import write_report
from smlmnet.evaluation.transfer import t_interval
from smlmnet.metrics.localization import smlm_metrics
from smlmnet.simulate import load_config, simulate

CAMERAS = {
    "emccd": ["camera.model=emccd", "camera.qe=0.9", "camera.baseline_adu=100",
              "camera.e_per_adu=45", "camera.read_noise_e=74.4", "camera.em_gain=300"],
    "scmos": ["camera.model=scmos", "camera.qe=0.8", "camera.baseline_adu=100",
              "camera.e_per_adu=0.5", "camera.read_noise_e=1.6", "camera.em_gain=1"],
    "poisson": ["camera.model=poisson"],
}


def _methods(cfg, names, sigma_nm: float) -> dict:
    out = {}
    for name, spec in cfg.methods.items():
        if name not in names:
            continue
        spec = dict(spec)
        if spec.get("_target_", "").endswith("SpotFitLocalizer"):
            spec["psf_sigma_nm"] = sigma_nm  # the classical fit gets the true PSF σ
        out[name] = instantiate(spec)
    return out


def _score(method, movie, true, tol) -> dict:
    t0 = time.perf_counter()
    est = method.localize(movie)
    el = time.perf_counter() - t0
    m = smlm_metrics(true, est, tol)
    return {"jaccard [%]": m["jaccard [%]"], "rmse [nm]": m["rmse_lateral [nm]"],
            "efficiency [%]": m["efficiency [%]"], "frames/s": movie.n_frames / el}


def run(cfg, out_dir) -> pd.DataFrame:
    """Run every regime of ``cfg.regimes`` over ``cfg.seeds`` (see module docstring)."""
    import torch

    torch.set_num_threads(int(cfg.get("torch_threads", 1)))
    rows = []
    for regime in cfg.regimes:
        points = [(s, c) for s in regime.get("psf_sigma_px", [None])
                  for c in regime.get("cameras", [None])]
        for sigma_px, camera in points:
            per_seed = []
            n_true = 0
            for seed in cfg.seeds:
                overrides = [*regime.overrides, f"seed={seed}"]
                if sigma_px is not None:
                    overrides.append(f"psf.sigma_nm={sigma_px * 100.0}")
                if camera is not None:
                    overrides += CAMERAS[camera]
                sim = simulate(load_config(regime.preset, overrides))
                true = sim.emitters[sim.emitters["on"]].reset_index(drop=True)
                n_true += int(true["track_id"].nunique())
                sigma_nm = sim.config.psf.sigma
                names = list(regime.get("methods") or cfg.methods)
                for name, method in _methods(cfg, names, sigma_nm).items():
                    per_seed.append({"method": name, **_score(method, sim.movie, true,
                                                              cfg.tolerance_nm)})
            df = pd.DataFrame(per_seed)
            mle_fps = df.loc[df["method"] == cfg.baseline, "frames/s"].mean()
            for name, g in df.groupby("method", sort=False):
                row = {"regime": regime.name,
                       "PSF σ [px]": sigma_px if sigma_px is not None else "preset",
                       "camera": camera or "preset", "method": name, "seeds": len(g),
                       "distinct emitters": n_true}
                for col in ("jaccard [%]", "rmse [nm]", "efficiency [%]"):
                    m, lo, hi, _ = t_interval(g[col])
                    row[col] = m
                    row[f"{col} ±95%"] = hi - m
                row["frames/s"] = float(g["frames/s"].mean())
                row[f"speed / {cfg.baseline}"] = row["frames/s"] / mle_fps
                rows.append(row)
    table = pd.DataFrame(rows)
    notes = [f"Seeds {list(cfg.seeds)}; ± is the half-width of the 95 % Student-t interval over "
             "seeds. The MLE gets each movie's true PSF σ; the networks get nothing but the "
             "movie (camera from its metadata). 'distinct emitters' counts tracks over all "
             f"seeds of a point. Matching tolerance {cfg.tolerance_nm:g} nm (SMLM 2016). "
             f"torch threads {cfg.get('torch_threads', 1)}; frames/s include ADU conversion "
             "and post-processing."]
    write_report(out_dir, "generalist", "Generalist vs MLE vs specialist on smlmnet movies",
                 table, notes, config=cfg)
    return table
