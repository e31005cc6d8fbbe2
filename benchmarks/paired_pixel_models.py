"""Paired comparison of two models' columns in a ``pixel_diffusion`` per-seed table.

    python benchmarks/paired_pixel_models.py benchmarks/results/mivit_blur_moments/grid/\
pixel_diffusion_per_seed.csv ctrl_s0 bm_s0

Per evaluation seed, the mean over a group of grid cells of (B − A) in RMSE of ln D; printed as
the mean over seeds ± the half-width of a 95 % t-interval, for all cells, the blurred ones, D 1
and D 5 µm²/s with blur, and the stroboscopic ones (groups absent from the table are skipped).

With ``--ratio``, per grid cell instead: the ratio B / A of the two RMSEs per seed, mean ± 95 %
t half-width over seeds (e.g. a pixel method against ``mle_sigma_known``, the goal ≤ 0.8):

    python benchmarks/paired_pixel_models.py benchmarks/results/pixel_diffusion/\
pixel_diffusion_per_seed.csv mle_sigma_known blur_likelihood --ratio
"""

from __future__ import annotations

import argparse

import pandas as pd

from smlmnet.evaluation.transfer import t_interval


def groups(d: pd.DataFrame) -> dict[str, pd.DataFrame]:
    blur = d["exposure/frame"] > 0
    D = d["D [um^2/s]"]
    return {"all cells": d, "with blur": d[blur], "D 1 with blur": d[blur & (D == 1)],
            "D 5 with blur": d[blur & (D == 5)], "stroboscopic": d[~blur]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("per_seed_csv")
    ap.add_argument("a", help="reference column")
    ap.add_argument("b", help="compared column")
    ap.add_argument("--ratio", action="store_true", help="per cell: B / A per seed")
    args = ap.parse_args()
    d = pd.read_csv(args.per_seed_csv)
    if args.ratio:
        keys = ["D [um^2/s]", "exposure/frame", "length"]
        for cell, g in d.groupby(keys, sort=True):
            mean, lo, hi, n = t_interval((g[args.b] / g[args.a]).to_numpy())
            mark = "≤ 0.8" if hi <= 0.8 else ("≤ 0.8 on average" if mean <= 0.8 else "")
            print(f"D {cell[0]:g}, f {cell[1]:g}, L {cell[2]:d}: {args.b} / {args.a} = "
                  f"{mean:.3f} ± {(hi - lo) / 2:.3f} over {n} seeds {mark}")
        return
    for name, g in groups(d).items():
        if g.empty:
            continue
        diff = (g[args.b] - g[args.a]).groupby(g["seed"]).mean()
        mean, lo, hi, n = t_interval(diff.to_numpy())
        print(f"{args.b} − {args.a}, {name} ({len(g) // n} cells): {mean:+.4f} ± "
              f"{(hi - lo) / 2:.4f} over {n} seeds")


if __name__ == "__main__":
    main()
