"""Benchmark smlmnet.calibrate: true vs estimated gain, offset and PSF σ.

Grid: camera (sCMOS, EMCCD) × mean background (1, 10, 100, 1000 photons/px) × 3 seeds.
Each movie: 64×64 px, 100 frames, 100 nm pixels, a background gradient along x from 0.1× to
1.9× the mean (the lever arm of the photon-transfer fit), PSF σ 120 nm, 0.1 emitters/µm²
(half immobile, half Brownian D = 0.3 µm²/s) of 2000 photons. sCMOS: QE 0.9, 0.5 e-/ADU,
1.6 e- read noise, offset 100 ADU. EMCCD (SMLM-2016-like): QE 0.9, 45 e-/ADU, EM gain 300
(0.15 e-/ADU effective), 74.4 e- read noise, offset 100 ADU. The camera model is declared,
no other metadata is used. Writes ``benchmarks/results/calibrate/calibrate.md`` and ``.csv``.

    python benchmarks/bench_calibrate.py            # ~2 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

CAMERAS = {
    "scmos": ["camera.model=scmos", "camera.e_per_adu=0.5", "camera.read_noise_e=1.6",
              "camera.baseline_adu=100", "camera.em_gain=1", "camera.spurious_charge=0",
              "camera.qe=0.9"],
    "emccd": ["camera.model=emccd", "camera.qe=0.9", "camera.e_per_adu=45",
              "camera.em_gain=300", "camera.read_noise_e=74.4", "camera.baseline_adu=100"],
}


def run_one(camera: str, bg: float, seed: int, n_frames: int) -> dict:
    from smlmnet.calibrate import calibrate_movie
    from smlmnet.data.contracts import Movie
    from smlmnet.simulate import load_config, simulate

    cfg = load_config("sptpalm_membrane", [
        f"seed={seed}", f"n_frames={n_frames}", "fov.shape_px=[64,64]",
        f"background.photons_per_px={bg}", "background.pattern=gradient",
        "background.variation=0.9", "particles.density_per_um2=0.1",
        "photophysics.activation=start", "photophysics.bleach_lifetime_frames=null",
        "photophysics.photons_per_frame=2000", "psf.sigma_nm=120",
        "particles.motions=[{model: immobile, weight: 0.5}, "
        "{model: brownian, weight: 0.5, D_um2_s: 0.3}]", *CAMERAS[camera]])
    r = simulate(cfg)
    c = cfg.camera
    e_true = c.e_per_adu / (c.em_gain if c.model == "emccd" else 1.0)
    t0 = time.perf_counter()
    cal = calibrate_movie(Movie(r.movie.frames, 100.0, cfg.frame_time_s), camera)
    dt = time.perf_counter() - t0
    return {
        "camera": camera, "bg [photons/px]": bg, "seed": seed,
        "e/ADU true": e_true, "e/ADU est": cal.e_per_adu,
        "gain err [%]": None if cal.e_per_adu is None else 100 * (cal.e_per_adu / e_true - 1),
        "gain SE [%]": None if cal.gain_rel_se is None else 100 * cal.gain_rel_se,
        "offset true [ADU]": c.baseline_adu, "offset est [ADU]": cal.offset_adu,
        "offset SE [ADU]": cal.offset_se_adu,
        "offset err [ADU]": None if cal.offset_adu is None else cal.offset_adu - c.baseline_adu,
        "offset source": cal.offset_source.split(" (")[0] + (
            " k3" if "third" in cal.offset_source else
            " var-intercept" if "intercept" in cal.offset_source else ""),
        "PSF true [nm]": 120.0, "PSF est [nm]": cal.psf_sigma_nm,
        "PSF SE [nm]": cal.psf_sigma_se_nm,
        "PSF err [%]": None if cal.psf_sigma_nm is None else 100 * (cal.psf_sigma_nm / 120 - 1),
        "PSF molecules": cal.n_psf_molecules, "time [s]": dt,
    }


def _f(v, spec):
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--n-frames", type=int, default=100)
    p.add_argument("--out", default="benchmarks/results/calibrate")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    rows = []
    for camera in CAMERAS:
        for bg in (1.0, 10.0, 100.0, 1000.0):
            for seed in range(args.seeds):
                rows.append(run_one(camera, bg, seed, args.n_frames))
                print({k: rows[-1][k] for k in ("camera", "bg [photons/px]", "seed",
                                                  "gain err [%]", "offset err [ADU]",
                                                  "PSF err [%]")}, flush=True)
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "calibrate.csv", index=False)
    from smlmnet.io.provenance import provenance, provenance_markdown

    lines = [
        "# smlmnet.calibrate: true vs estimated camera gain, offset and PSF σ",
        "",
        *provenance_markdown(provenance(["benchmarks/bench_calibrate.py", *(argv or
                                                                              sys.argv[1:])])),
        __doc__.split("\n\n")[1].replace("\n", " "),
        "Gain = photo-electrons per ADU (EMCCD: effective, EM gain included). Offset source:"
        " `movie k3` = third-cumulant intercept (free of read noise), `movie var-intercept` ="
        " variance intercept with zero read noise assumed (a lower bound, flagged low"
        " reliability). PSF σ: median of bright isolated stationary spots; – = no usable"
        " spot.",
        "",
        "| camera | bg [ph/px] | seed | e⁻/ADU true | e⁻/ADU est | gain err [%] (SE) | "
        "offset est [ADU] ± SE | offset err [ADU] | offset source | PSF σ est [nm] ± SE | "
        "PSF err [%] | molecules | time [s] |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['camera']} | {r['bg [photons/px]']:g} | {r['seed']} | {r['e/ADU true']:.4g} |"
            f" {_f(r['e/ADU est'], '.4g')} | {_f(r['gain err [%]'], '+.2f')} "
            f"({_f(r['gain SE [%]'], '.2f')}) | {_f(r['offset est [ADU]'], '.2f')} ± "
            f"{_f(r['offset SE [ADU]'], '.2f')} | {_f(r['offset err [ADU]'], '+.2f')} | "
            f"{r['offset source']} | {_f(r['PSF est [nm]'], '.1f')} ± "
            f"{_f(r['PSF SE [nm]'], '.1f')} | {_f(r['PSF err [%]'], '+.1f')} | "
            f"{r['PSF molecules']} | {r['time [s]']:.1f} |")
    g = df.groupby(["camera", "bg [photons/px]"], sort=False)
    lines += ["", "Summary over seeds (max |error|):", "",
              "| camera | bg [ph/px] | gain max abs err [%] | offset max abs err [ADU] | "
              "PSF σ max abs err [%] |", "|---|---|---|---|---|"]
    for (cam, bg), d in g:
        def mx(col, d=d):
            v = pd.to_numeric(d[col], errors="coerce").abs()
            return _f(float(v.max()) if v.notna().any() else None, ".2f")
        lines.append(f"| {cam} | {bg:g} | {mx('gain err [%]')} | {mx('offset err [ADU]')} | "
                     f"{mx('PSF err [%]')} |")
    (out / "calibrate.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'calibrate.md'} and calibrate.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
