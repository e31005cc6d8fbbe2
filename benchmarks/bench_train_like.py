"""Does `smlmnet train-localizer --like movie.tif` beat the generalist on that microscope?

Fine-tunes the shipped generalist on windows simulated like one external movie (calibrated from
the movie alone: no truth, no renderer settings are used), then scores the fine-tuned model,
the generalist and the MLE fit (PSF σ from the same calibration) on that movie and on the other
movies of the same renderer (held out: same microscope, other fields of view), with SMLM-2016
metrics against the renderer's truth. Movies come from ``benchmarks/external`` (see
benchmarks/README.md); nothing is written into them.

    python benchmarks/bench_train_like.py --renderer picasso --like picasso_bg032_s3
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from smlmnet.calibrate import calibrate_tiff
from smlmnet.evaluation.report import write_report
from smlmnet.finetune import train_like
from smlmnet.io.tiff import read_movie_tiff
from smlmnet.localize import SpotFitLocalizer
from smlmnet.metrics.localization import smlm_metrics
from smlmnet.pretrained import load, read_info

OUT = Path(__file__).resolve().parent / "results" / "train_like"


def score(loc, movie, truth, tol=250.0) -> dict:
    t0 = time.perf_counter()
    est = loc.localize(movie)
    el = time.perf_counter() - t0
    m = smlm_metrics(truth, est, tol)
    return {"jaccard [%]": m["jaccard [%]"], "rmse [nm]": m["rmse_lateral [nm]"],
            "efficiency [%]": m["efficiency [%]"], "found / true": len(est) / len(truth),
            "frames/s": movie.n_frames / el}


def main(argv=None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default="/work/ext_data")
    p.add_argument("--renderer", default="picasso")
    p.add_argument("--like", default="picasso_bg032_s3")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--base-model", default="decode_generalist",
                   help="model to fine-tune and to compare with (name or folder)")
    p.add_argument("--pixel-size-nm", type=float, default=None,
                   help="for files that do not state it (andi: 100)")
    p.add_argument("--frame-time-s", type=float, default=None)
    p.add_argument("--out", default=str(OUT))
    p.add_argument("overrides", nargs="*", help="train.py overrides passed to train-localizer, "
                   "e.g. model.lr=1e-4")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    root = Path(args.data_root) / args.renderer
    movies = sorted(d for d in root.iterdir() if (d / "movie.tif").is_file()
                    and not d.name.startswith("_"))
    work = Path(tempfile.mkdtemp(prefix="smlmnet_like_"))
    t0 = time.perf_counter()
    model_dir = train_like(root / args.like / "movie.tif", work / "model", steps=args.steps,
                           base_model=args.base_model, pixel_size_nm=args.pixel_size_nm,
                           frame_time_s=args.frame_time_s, overrides=tuple(args.overrides))
    train_min = (time.perf_counter() - t0) / 60
    tuned, generalist = load(model_dir), load(args.base_model)
    fit = read_info(model_dir).get("movie_threshold") or {}
    t_sim = fit.get("simulation_threshold", tuned.threshold)
    variants = [("fine-tuned (train-localizer --like)", tuned)]
    if abs(t_sim - tuned.threshold) > 1e-9:  # also the threshold the simulations gave
        variants.append((f"fine-tuned, simulated threshold {t_sim:.2f} (--simulation-threshold)",
                         load(model_dir, threshold=t_sim, second_threshold=t_sim)))
    rows = []
    for folder in movies:
        movie = read_movie_tiff(folder / "movie.tif", args.pixel_size_nm, args.frame_time_s,
                                lazy=True)
        truth = pd.read_csv(folder / "truth.csv")
        sigma = calibrate_tiff(folder / "movie.tif", pixel_size_nm=args.pixel_size_nm,
                               frame_time_s=args.frame_time_s).psf_sigma_nm or 130.0
        role = "its movie" if folder.name == args.like else "held out (same renderer)"
        for name, loc in (*variants, (f"{Path(args.base_model).name} (base)", generalist),
                          (f"mle (calibrated σ {sigma:.0f} nm)", SpotFitLocalizer(
                              "mle", psf_sigma_nm=sigma))):
            rows.append({"movie": folder.name, "role": role, "localizer": name,
                         "true locs": len(truth), **score(loc, movie, truth)})
    table = pd.DataFrame(rows)
    for col in ("jaccard [%]", "rmse [nm]"):
        table[col] = table[col].astype(float)
    write_report(args.out, "train_like", "train-localizer --like vs the generalist", table, [
        f"Fine-tuned for {args.steps} optimizer steps from {args.base_model} on windows "
        f"(train.py overrides: {' '.join(args.overrides) or 'none'}) "
        f"simulated like `{args.renderer}/{args.like}` (calibrated from the movie alone), "
        f"{train_min:.1f} min on this machine including calibration and export. Scored "
        "against the renderer's truth (SMLM 2016, 250 nm). The fine-tuned model folder is "
        f"kept at {model_dir}.",
        f"Detection threshold: {fit.get('rule', 'as exported')} (on the first "
        f"{fit.get('frames', '?')} frames of its movie, no truth used)."])
    shutil.copy2(model_dir / "MODEL_CARD.md", Path(args.out) / "fine_tuned_MODEL_CARD.md")
    print(table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
