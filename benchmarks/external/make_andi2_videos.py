"""AnDi 2 video-task movies from andi-datasets' own trajectories and its own video generator.

Runs in andi-datasets' own virtual environment (never smlmnet's), see benchmarks/README.md:

    /work/ext_envs/andi/bin/python benchmarks/external/make_andi2_videos.py \
        --out /work/ext_data/andi2_video --seeds 3001 3002 3003 3004 3005

For each seed and each of the five AnDi 2 models (single_state, multi_state, immobile_traps,
dimerization, confinement), ``--movies`` experiments: parameters from the challenge's own
sampler ``datasets_challenge._get_dic_andi2(model)`` (N = 50 particles, T = 200 frames, box
L = 1.8 × 128 px), trajectories from ``models_phenom().<model>(**dic)``, a 128 × 128 px field
of view at a random origin 5 % of L or more from the box walls, as ``challenge_phenom_dataset``
places it. As in the challenge, only the parts of trajectories inside the field of view are
rendered (elsewhere the particle is moved far outside, ``pad``), with
``utils_videos.transform_to_video`` and its defaults (no motion blur; particle intensity
[500, 20], background 100, NA 1.46, 500 nm, 100 nm pixels: PSF Gaussian σ ≈ 0.72 px). The
movie is stroboscopic: frame t shows the positions of frame t. ``seed_andi`` per movie
(andi-datasets and deeptrack draw from numpy's global generator).

Each movie folder ``<out>/seed<seed>/<model>_<k>/`` gets ``movie.tif`` (uint16 counts, plain
TIFF), ``truth.csv`` (in-view frames only: ``frame``, ``emitter``, ``x [nm]``, ``y [nm]``,
``alpha``, ``K`` (andi-datasets' D: MSD = 4Kτ^α, px²/frame^α), ``state`` (0 immobile,
1 confined, 2 free, 3 directed; the label at frame t describes displacement t−1 → t)) and
``render.json`` (model, parameters, pixel size, frame time, PSF σ, versions). Convention
(``make_andi_movies.py``, checked by ``check_conventions.py``): AnDi's trajectory[..., 0] is
the row and pixel centres are at integers, so x_nm = (col + 0.5)·100, y_nm = (row + 0.5)·100.
``python evaluate.py benchmark=andi2_video benchmark.data_root=<out>`` scores them.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
from andi_seed import seed_andi  # sibling module: numpy's and stochastic's generators

warnings.filterwarnings("ignore")

MODEL_NAMES = {1: "single_state", 2: "multi_state", 3: "immobile_traps", 4: "dimerization",
               5: "confinement"}
PIXEL_NM = 100.0
PSF_SIGMA_NM = 72.0   # Gaussian-fit σ of AnDi's default pupil PSF (benchmarks/results)
PAD = -20.0           # challenge_phenom_dataset's position of particles outside the view


def _jsonable(d):
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in d.items()}


def write_movie(folder: Path, video, trajs_fov, labels, inside, info):
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    frames = np.clip(np.rint(video), 0, 65535).astype(np.uint16)
    info["saturated_pixels"] = int((video > 65535).sum())
    tifffile.imwrite(folder / "movie.tif", frames)
    t, n = np.nonzero(inside)
    rows = np.column_stack([t, n, (trajs_fov[t, n, 1] + 0.5) * PIXEL_NM,
                            (trajs_fov[t, n, 0] + 0.5) * PIXEL_NM, labels[t, n, 0],
                            labels[t, n, 1], labels[t, n, 2]])
    np.savetxt(folder / "truth.csv", rows, delimiter=",", comments="",
               fmt=["%d", "%d", "%.3f", "%.3f", "%.6g", "%.6g", "%d"],
               header="frame,emitter,x [nm],y [nm],alpha,K,state")
    info["true_localizations"] = int(len(t))
    info["particles_in_view"] = int(len(np.unique(n)))
    (folder / "render.json").write_text(json.dumps(info, indent=1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/work/ext_data/andi2_video")
    ap.add_argument("--seeds", type=int, nargs="+", default=[3001, 3002, 3003, 3004, 3005])
    ap.add_argument("--movies", type=int, default=1, help="movies per model and seed")
    ap.add_argument("--models", nargs="+", default=list(MODEL_NAMES.values()))
    ap.add_argument("--frames", type=int, default=None, help="T (default: the challenge's)")
    args = ap.parse_args(argv)

    from andi_datasets.datasets_challenge import _defaults_andi2, _get_dic_andi2
    from andi_datasets.models_phenom import models_phenom
    from andi_datasets.utils_videos import transform_to_video

    d = _defaults_andi2()
    S, L = int(d.FOV_L), float(d.L)
    versions = {p: version(p) for p in ("andi-datasets", "deeptrack", "numpy")}
    out = Path(args.out)
    for seed in args.seeds:
        for k, name in MODEL_NAMES.items():
            if name not in args.models:
                continue
            for m in range(args.movies):
                seed_andi(seed * 100 + k * 10 + m)
                dic = _get_dic_andi2(k)
                dic.pop("model")
                if args.frames:
                    dic["T"] = args.frames
                t0 = time.perf_counter()
                trajs, labels = getattr(models_phenom(), name)(**dic)   # (T, N, 2), (T, N, ≥3)
                lo, hi = int(0.05 * L), int(0.95 * L) - S
                origin = np.random.randint(lo, hi, 2)
                rel = trajs - origin
                inside = ((rel >= 0) & (rel < S)).all(-1)                # (T, N)
                seen = inside.any(0)
                rel, labels, inside = rel[:, seen], labels[:, seen], inside[:, seen]
                arr = np.where(inside[..., None], rel, PAD)
                video = transform_to_video(arr, optics_props={"output_region": [0, 0, S, S]})
                video = np.asarray(video)[..., 0] if np.asarray(video).ndim == 4 else \
                    np.asarray(video)
                info = {"model": name, "seed": seed, "movie": m, "pixel_size_nm": PIXEL_NM,
                        "frame_time_s": 0.1, "psf_sigma_nm": PSF_SIGMA_NM,
                        "fov_origin_px": origin.tolist(), "box_L_px": L,
                        "renderer": "andi_datasets.utils_videos.transform_to_video (defaults, "
                        "no motion blur), in-view parts only", "versions": versions,
                        "parameters": _jsonable(dic),
                        "render_seconds": time.perf_counter() - t0}
                write_movie(out / f"seed{seed}" / f"{name}_{m}", video, rel, labels, inside,
                            info)
                print(f"seed {seed} {name}_{m}: {int(seen.sum())} particles in view, "
                      f"{info['render_seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
