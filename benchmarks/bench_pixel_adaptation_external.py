"""Label-free adaptation of MiViT to an external renderer's movies (AnDi), scored on other
movies of that renderer.

    python benchmarks/bench_pixel_adaptation_external.py \
        --adapt-root /work/ext_data/andi_pixel_bm --out benchmarks/results/pixel_adaptation_external
    python evaluate.py benchmark=pixel_diffusion_external \
        benchmark.data_root=/work/ext_data/andi_pixel_s33 \
        "benchmark.models={mivit: mivit_pixel_diffusion, mivit_ssl: M/mivit_ssl, \
         mivit_labels: M/mivit_labels, mivit_source_only: M/mivit_source_only}"

(``M`` = ``<out>/models``), then the paired summary over the scored seeds:

    python benchmarks/bench_pixel_adaptation_external.py --summarize \
        <run dir>/pixel_diffusion_external_per_seed.csv --out <run dir>

The *adaptation* movies (``--adapt-root``, e.g. AnDi seeds 3201–3205) are read, calibrated
from their own pixels and localized exactly as the ``pixel_diffusion_external`` benchmark
does (:func:`smlmnet.evaluation.pixel_diffusion_external.analyze_movies`), then linked by
``smlmnet analyze``'s LAP linker (no truth: a user's movie has none) and cut into the
network's tubelets. From the shipped weights, with the same source batches (the model's
training ranges) and the same draws of those tubelets, for ``--steps`` AdamW steps each:

- ``mivit_ssl``: the blur-likelihood teacher's posterior of ln D on each tubelet is the
  target (:func:`smlmnet.diffusion.mivit.adapt.adapt_unlabeled`; no label is read);
- ``mivit_labels``: the movie's true D as the target (a teacher with zero variance): the
  reference "trained with labels on that microscope";
- ``mivit_source_only``: the source batches alone (controls for the extra steps).

The three model folders go to ``<out>/models/``; ``<out>/pixel_adaptation_external.md``
records the pool and the teacher's error on it. The score is the external benchmark on
*other* movies of the renderer (the second command), so neither the adaptation nor the
labels see a scored molecule.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from smlmnet.diffusion.mivit.adapt import (
    adapt_unlabeled,
    pool_drawer,
    source_ranges,
    teacher_for,
)
from smlmnet.diffusion.mivit.targets import TubeletSimulator
from smlmnet.diffusion.tubelets import um2_s_to_log_d_px
from smlmnet.evaluation.pixel_diffusion_external import analyze_movies, find_movies
from smlmnet.evaluation.report import write_report
from smlmnet.link import LAPLinker
from smlmnet.models.registry import load, write_model_folder

ROOT = Path(__file__).resolve().parents[1]


def movie_pool(est, movies: pd.DataFrame, cfg, linker, min_points: int) -> tuple[dict, list]:
    """The tubelets of every movie's LAP tracks (≥ ``min_points`` localizations), pooled;
    ``log_d_true`` (ln D_px of the movie's D) is added for the labelled reference only."""
    parts, rows = [], []
    for item in analyze_movies(movies, cfg):
        mv, movie = item["row"], item["movie"]
        tracks = linker.link(item["locs"])
        n = tracks.groupby("track_id").size()
        tracks = tracks[tracks["track_id"].isin(n.index[n >= min_points])].reset_index(drop=True)
        tub = est.movie_tubelets(movie, tracks, item["sigma_nm"])
        k = len(tub["track"])
        if k:
            tub["fit_scale"] = np.full(k, float(tub["fit_scale"]))
            tub["log_d_true"] = np.full(k, float(um2_s_to_log_d_px(
                mv["D"], movie.frame_time_s, movie.pixel_size_nm)))
            parts.append(tub)
        rows.append({"movie": mv["folder"].name, "localizations": len(item["locs"]),
                     "tracks": int(tracks["track_id"].nunique()) if len(tracks) else 0,
                     "tubelets": k, "psf σ used [nm]": item["sigma_nm"]})
    read_var = {float(p["read_var"]) for p in parts}
    if len(read_var) > 1:   # the teacher takes one read-noise variance per call
        raise ValueError(f"the movies' cameras differ in read noise {sorted(read_var)}: "
                         "adapt on one camera's movies")
    keys = [key for key, v in parts[0].items() if isinstance(v, np.ndarray) and v.ndim
            and v.shape[0] == len(parts[0]["track"])]
    pool = {key: np.concatenate([p[key] for p in parts]) for key in keys}
    return {**pool, "read_var": read_var.pop()}, rows


GROUPS = {"all cells": lambda t: t["length"] > 0,
          "blurred (exposure/frame > 0)": lambda t: t["exposure/frame"] > 0,
          "blurred, D ≥ 1": lambda t: (t["exposure/frame"] > 0) & (t["D [um^2/s]"] >= 1),
          **{f"D {d:g}": (lambda t, d=d: t["D [um^2/s]"] == d) for d in (0.01, 0.1, 1, 5)}}


def summarize(per_seed_csv: Path, out: Path) -> pd.DataFrame:
    """Per group of cells: the mean RMSE of ln D of each adapted model and of the shipped one
    (mean over cells per scored seed, then over seeds), paired differences with 95 %
    t-intervals over the seeds, and the share of the labelled gap the unlabeled model closes
    ((mivit − ssl) / (mivit − labels), of the means). The intervals are over scored seeds:
    one adaptation run per model."""
    from smlmnet.evaluation.andi1 import ci

    t = pd.read_csv(per_seed_csv)
    rows = []
    for name, sel in GROUPS.items():
        per = t[sel(t)].groupby("seed")[["mivit", "mivit_ssl", "mivit_labels",
                                         "mivit_source_only"]].mean()
        row = {"cells": name, "seeds": len(per),
               **{m: round(float(per[m].mean()), 3) for m in per}}
        for a, b in (("mivit_ssl", "mivit"), ("mivit_labels", "mivit"),
                     ("mivit_ssl", "mivit_source_only")):
            mean, hw = ci((per[a] - per[b]).to_numpy())
            row[f"{a} − {b}"] = f"{mean:+.3f} ± {hw:.3f}"
        gap = per["mivit"].mean() - per["mivit_labels"].mean()
        row["share of the labelled gap closed"] = (
            round(float((per["mivit"].mean() - per["mivit_ssl"].mean()) / gap), 2)
            if gap > 0 else np.nan)
        rows.append(row)
    table = pd.DataFrame(rows)
    write_report(out, "pixel_adaptation_external_summary",
                 "Label-free adaptation to an external renderer: scored on held-out movies",
                 table, [f"From {per_seed_csv}: RMSE of ln D per cell and scored seed. "
                         + (summarize.__doc__ or "").split("\n\n")[0].replace("\n", " ")],
                 config={"per_seed_csv": str(per_seed_csv)})
    return table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--summarize", default=None, metavar="PER_SEED_CSV",
                   help="only summarize a scored run (pixel_diffusion_external_per_seed.csv)")
    p.add_argument("--adapt-root", help="movies to adapt on (render folders)")
    p.add_argument("--model", default="mivit_pixel_diffusion")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--teacher-substeps", type=int, default=8,
                   help="motion sub-steps of the teacher (the external benchmark's "
                        "blur_likelihood uses 8)")
    p.add_argument("--search-radius-nm", type=float, default=1000.0)
    p.add_argument("--max-gap", type=int, default=1)
    p.add_argument("--min-points", type=int, default=4)
    p.add_argument("--out", default="benchmarks/results/pixel_adaptation_external")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.summarize:
        print(summarize(Path(args.summarize), out).to_string())
        return 0
    if not args.adapt_root:
        p.error("--adapt-root is required (or --summarize)")
    torch.set_num_threads(1)
    est = load(args.model)
    cfg = OmegaConf.load(ROOT / "configs" / "benchmark" / "pixel_diffusion_external.yaml")
    movies = find_movies(Path(args.adapt_root))
    if movies.empty:
        raise SystemExit(f"no render folders under {args.adapt_root}")
    linker = LAPLinker(search_radius_nm=args.search_radius_nm, max_gap_frames=args.max_gap)
    pool, movie_rows = movie_pool(est, movies, cfg, linker, args.min_points)
    ranges = est.info["training_ranges"]
    teacher = teacher_for(ranges, substeps=args.teacher_substeps, frames=est.frames,
                          size=est.size)
    draw_teacher, post = pool_drawer(pool, teacher)
    truth = pool["log_d_true"]

    def draw_labels(rng, n):   # the same draws, the truth as a zero-variance target
        sample, _, _ = draw_teacher(rng, n)
        return sample, sample["log_d_true"], np.full(len(sample["log_d_true"]), 1e-6)

    source = TubeletSimulator(frames=est.frames, size=est.size, **source_ranges(ranges))
    runs = {"mivit_ssl": (draw_teacher, 1.0), "mivit_labels": (draw_labels, 1.0),
            "mivit_source_only": (draw_teacher, 0.0)}
    rows = []
    for name, (draw, w) in runs.items():
        net, hist = adapt_unlabeled(est.net, source, draw, args.steps, args.batch, args.lr,
                                    args.seed, "all", w, progress=True, desc=name)
        record = {"method": name, "adapt_root": str(args.adapt_root),
                  "movies": int(len(movies)), "tubelets": int(len(truth)),
                  "steps": args.steps, "batch": args.batch, "lr": args.lr, "seed": args.seed,
                  "target": {"mivit_ssl": "blur-likelihood teacher posterior (no labels)",
                             "mivit_labels": "true D of the movie (labels)",
                             "mivit_source_only": "none (source batches only)"}[name],
                  "teacher": teacher.assumptions(),
                  "linker": f"LAP, search radius {args.search_radius_nm:g} nm, gap "
                            f"{args.max_gap}, tracks ≥ {args.min_points} points"}
        info = {**copy.deepcopy(est.info), "name": name, "adaptation": record,
                "description": f"{args.model} fine-tuned on {len(movies)} movies of "
                               f"{args.adapt_root}: {record['target']}"}
        write_model_folder(out / "models" / name, net.state_dict(), info)
        rows.append({"model": name, "target": record["target"],
                     "first 10 steps: target loss": np.mean([h["distill"] for h in hist[:10]]),
                     "last 10 steps: target loss": np.mean([h["distill"] for h in hist[-10:]])})
    err = post["mean"] - truth
    notes = [f"Adaptation pool: {len(truth)} tubelets of {len(movies)} movies under "
             f"{args.adapt_root} (LAP tracks, no truth). Teacher: {teacher.assumptions()}. "
             f"Its RMSE of ln D on the pool (against each movie's true D, read for this "
             f"line only): {float(np.sqrt(np.mean(err**2))):.3f}; the shipped network's: "
             f"{float(np.sqrt(np.mean((est.predict_tubelets(pool)['log_d'] - truth)**2))):.3f}.",
             "Scored by the pixel_diffusion_external benchmark on other movies (module "
             "docstring)."]
    write_report(out, "pixel_adaptation_external",
                 "Label-free adaptation to an external renderer: the adapted models",
                 pd.DataFrame(rows), notes, config=vars(args),
                 extra_tables={"Adaptation movies": pd.DataFrame(movie_rows)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
