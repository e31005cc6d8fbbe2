"""Benchmark the learned localizer's uncertainty calibration on smlmnet's own presets.

What `smlmnet analyze` reports as 1σ, on movies with known truth: the fraction of matched
per-axis errors within the reported uncertainty (68.3 % when calibrated), for the σ scale
measured on simulations like each movie (`--uncertainty-calibration movie`, the default) and
for the scale tuned at training (`model`). Movies: 64×64 px, 40 frames, presets
sptpalm_membrane, dense, decode_sptpalm (the specialist's randomized training ranges) and
andi2_video, written as bare movies (no camera metadata: pixel values read as photons, the
camera and PSF σ found by self-calibration, as for a user's TIFF without metadata). The
external renderers' movies are in benchmarks/results/transfer.

    python benchmarks/bench_uncertainty_calibration.py --seeds 5   # ~15 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from pathlib import Path

import pandas as pd

PRESETS = ("sptpalm_membrane", "dense", "decode_sptpalm", "andi2_video")


def run_one(preset: str, seed: int, n_frames: int) -> list[dict]:
    from smlmnet.evaluation.transfer import uncertainty_coverage
    from smlmnet.guard import prepare_localizer
    from smlmnet.metrics.localization import match_per_frame, smlm_metrics
    from smlmnet.simulate import load_config, simulate

    sim = simulate(load_config(preset, [f"n_frames={n_frames}", "fov.shape_px=[64,64]",
                                        f"seed={seed}"]))
    bare = dataclasses.replace(sim.movie, camera=None)
    truth = sim.emitters[sim.emitters["on"]].reset_index(drop=True)
    rows = []
    for mode in ("movie", "model"):
        loc, _ = prepare_localizer(bare, "auto", uncertainty=mode)
        est = loc.localize(bare)
        used = [d for d in loc.decision if d.get("used")][0]
        cal = used.get("uncertainty_calibration") or {}
        pairs = match_per_frame(truth, est)
        cov, n = uncertainty_coverage(truth, est, pairs)[0], len(pairs)
        rows.append({"preset": preset, "seed": seed, "uncertainty calibration": mode,
                     "localizer": used["localizer"], "matched": n,
                     "jaccard [%]": smlm_metrics(truth, est)["jaccard [%]"],
                     "within 1σ [%]": cov, "scale": cal.get("scale"),
                     "scale source": cal.get("used", "the model's (training) scale")})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--n-frames", type=int, default=40)
    p.add_argument("--presets", nargs="+", default=list(PRESETS))
    p.add_argument("--out", default="benchmarks/results/uncertainty_calibration")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    from smlmnet.evaluation.transfer import t_interval
    from smlmnet.io.provenance import provenance, provenance_markdown

    rows = []
    for preset in args.presets:
        for seed in range(101, 101 + args.seeds):
            rows += run_one(preset, seed, args.n_frames)
            print(rows[-2:], flush=True)
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "uncertainty_calibration.csv", index=False)
    lines = ["# Learned localizer: 1σ coverage on smlmnet's own presets (bare movies)", "",
             *provenance_markdown(provenance(["benchmarks/bench_uncertainty_calibration.py",
                                              *(argv or sys.argv[1:])])),
             __doc__.split("\n\n")[1].replace("\n", " "), "",
             "Mean ± 95 % t-interval over seeds (target 68.3 ± 5 %):", "",
             "| preset | uncertainty calibration | seeds | matched | within 1σ [%] | "
             "per-seed range [%] | scale (movie) |", "|---|---|---|---|---|---|---|"]
    for (preset, mode), d in df.groupby(["preset", "uncertainty calibration"], sort=False):
        mean, lo, hi, n = t_interval(d["within 1σ [%]"])
        hw = (hi - lo) / 2
        sc = pd.to_numeric(d["scale"], errors="coerce")
        lines.append(f"| {preset} | {mode} | {n} | {int(d['matched'].sum())} | "
                     f"{mean:.1f} ± {hw:.1f} | {d['within 1σ [%]'].min():.1f}–"
                     f"{d['within 1σ [%]'].max():.1f} | "
                     f"{'–' if sc.isna().all() else f'{sc.min():.2f}–{sc.max():.2f}'} |")
    (out / "uncertainty_calibration.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'uncertainty_calibration.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
