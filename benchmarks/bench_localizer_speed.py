"""Localizer throughput: the shipped networks vs the MLE fit, measured in the same run.

Movies of the ``sptpalm_membrane`` preset (EMCCD, 100 nm pixels) at 64×64 and 128×128 px; each
localizer turns the whole movie into a localization table (ADU conversion, batching and
post-processing included) ``--repeats`` times and the median time counts. torch threads 1 and
2 are both measured (on 2 cores, one thread often wins: the second competes with the OS and
with data reading). Speed is quoted as frames/s and as a ratio to the MLE fit on the same
movie, because absolute rates depend on the machine and its load.

    python benchmarks/bench_localizer_speed.py          # ~2 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from smlmnet.evaluation.report import write_report
from smlmnet.localize import SpotFitLocalizer
from smlmnet.pretrained import list_models, load
from smlmnet.simulate import load_config, simulate

OUT = Path(__file__).resolve().parent / "results" / "localizer_speed"


def timed(loc, movie, repeats: int) -> float:
    """Median wall-clock seconds of ``repeats`` runs after one warm-up on 3 frames."""
    loc.localize(type(movie)(np.asarray(movie.frames[:3]), movie.pixel_size_nm,
                             movie.frame_time_s, movie.exposure_time_s, movie.camera))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        loc.localize(movie)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv=None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    models = [m for m in list_models() if load(m).__class__.__name__ == "DecodeLocalizer"]
    rows = []
    for size in args.sizes:
        movie = simulate(load_config("sptpalm_membrane", [
            f"n_frames={args.frames}", f"fov.shape_px=[{size},{size}]", "seed=3"])).movie
        mle = SpotFitLocalizer("mle", psf_sigma_nm=110.0)
        for threads in args.threads:
            torch.set_num_threads(threads)
            t_mle = timed(mle, movie, args.repeats)
            rows.append({"size [px]": f"{size}×{size}", "torch threads": threads,
                         "localizer": "mle", "frames/s": args.frames / t_mle,
                         "speed / mle": 1.0})
            for name in models:
                t = timed(load(name), movie, args.repeats)
                rows.append({"size [px]": f"{size}×{size}", "torch threads": threads,
                             "localizer": name, "frames/s": args.frames / t,
                             "speed / mle": t_mle / t})
    table = pd.DataFrame(rows)
    write_report(args.out, "localizer_speed", "Localizer throughput vs the MLE fit", table,
                 [f"{args.frames}-frame sptpalm_membrane movies (seed 3), median of "
                  f"{args.repeats} runs after a warm-up; whole movie → localization table. "
                  "The MLE fit is numpy (torch threads do not apply to it); its rate is "
                  "re-measured next to every network so that each ratio comes from the same "
                  "machine state."], argv=None)
    print(table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
