"""Render transfer-benchmark movies with the AnDi challenge's own video generator.

Runs in its own virtual environment (andi-datasets + deeptrack 1.7; see benchmarks/README.md):

    /work/ext_envs/andi/bin/python benchmarks/external/make_andi_movies.py --out /work/ext_data/andi

Trajectories come from andi-datasets' ``models_phenom().single_state`` (fBM, reflecting box),
oversampled ``--oversampling`` times per frame; the video from
``utils_videos.transform_to_video`` with AnDi's default optics (NA 1.46, 500 nm, 100 nm
"resolution": an Airy-like pupil PSF of Gaussian σ ≈ 0.72 px) and its motion-blur path
(``utils_trajectories.motion_blur``, whole frame exposed), which sums the background over the
sub-steps and rescales it (≈ 7700 counts/px for ``background_mean`` 100) before Poisson noise.
The ground truth is ``motion_blur.apply`` of the same trajectories: the exposure-averaged
position.

Each movie folder gets ``movie.tif`` (uint16 counts, a plain TIFF without calibration, like
AnDi's own data), ``truth.csv`` and ``render.json``. Convention: AnDi's trajectory[..., 0] is
the row and pixel centres are at integers, so x_nm = (traj[..., 1] + 0.5)·a and
y_nm = (traj[..., 0] + 0.5)·a with a = the optics' resolution (100 nm). A ``_check`` folder
holds a movie of immobile bright particles at known sub-pixel positions to test that conversion
(``benchmarks/external/check_conventions.py``).
"""

from __future__ import annotations

import argparse
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
from andi_seed import seed_andi  # sibling module: numpy's and stochastic's generators
from truth_io import write_truth  # noqa: E402  (beside this script)

warnings.filterwarnings("ignore")

PIXEL_NM = 100.0  # AnDi's default optics "resolution" (100e-9 m)


def render(trajs_rowcol, size, oversampling, intensity, background):
    from andi_datasets.utils_trajectories import motion_blur
    from andi_datasets.utils_videos import transform_to_video

    n_frames = trajs_rowcol.shape[0] // oversampling
    blur = motion_blur(output_length=n_frames, oversamp_factor=oversampling, exposure_time=1.0)
    video = transform_to_video(
        trajs_rowcol, particle_props={"particle_intensity": [intensity, 20]},
        optics_props={"output_region": [0, 0, size, size]},
        background_props={"background_mean": background, "background_std": 0},
        motion_blur_generator=blur)
    return video[..., 0], blur.apply(trajs_rowcol)


def write_folder(folder: Path, video, truth_rowcol, size, info):
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    vmax = float(video.max())
    frames = np.clip(np.rint(video), 0, 65535).astype(np.uint16)
    info["saturated_pixels"] = int((video > 65535).sum())
    info["max_count"] = vmax
    tifffile.imwrite(folder / "movie.tif", frames)  # plain TIFF: no calibration metadata
    T, N, _ = truth_rowcol.shape
    frame = np.repeat(np.arange(T), N)
    emitter = np.tile(np.arange(N), T)
    x_px = truth_rowcol[..., 1].ravel() + 0.5  # AnDi: centre of pixel 0 at 0 → smlmnet 0.5
    y_px = truth_rowcol[..., 0].ravel() + 0.5
    inside = (x_px >= 0) & (x_px < size) & (y_px >= 0) & (y_px < size)
    info = write_truth(folder, frame[inside], emitter[inside], x_px[inside], y_px[inside],
                       PIXEL_NM, info=info)
    print(f"{folder}: {T} frames, {info['true_localizations']} true localizations, "
          f"{info['distinct_emitters']} emitters, max count {vmax:.0f}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/work/ext_data/andi")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--frames", type=int, nargs="+", default=[60, 60, 30, 20],
                    help="frames per movie: one value for all, or one per --particles entry "
                    "(fewer frames for the denser movies: AnDi's renderer needs ≈ 0.01 CPU s "
                    "per particle and sub-step)")
    ap.add_argument("--oversampling", type=int, default=10)
    ap.add_argument("--particles", type=int, nargs="+", default=[20, 30, 45, 60],
                    help="particles per movie (one movie each: the density varies)")
    ap.add_argument("--D", type=float, default=0.5, help="mean D, px² per frame")
    ap.add_argument("--alpha", type=float, nargs=2, default=[1.0, 0.05],
                    help="mean and variance of the anomalous exponent")
    ap.add_argument("--intensity", type=float, default=500.0, help="particle_intensity mean")
    ap.add_argument("--background", type=float, default=100.0, help="background_mean")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-check", action="store_true")
    args = ap.parse_args(argv)

    from andi_datasets.models_phenom import models_phenom

    out = Path(args.out)
    S, O = args.size, args.oversampling
    frames = args.frames * len(args.particles) if len(args.frames) == 1 else args.frames
    if len(frames) != len(args.particles):
        ap.error("give one --frames value, or one per --particles entry")
    versions = {p: version(p) for p in ("andi-datasets", "deeptrack", "numpy")}
    common = {"renderer": "andi_datasets.utils_videos.transform_to_video + "
              "utils_trajectories.motion_blur", "versions": versions,
              "truth_pixel_size_nm": PIXEL_NM, "optics": "AnDi defaults: NA 1.46, wavelength "
              "500 nm, resolution 100 nm, magnification 1 (Gaussian-fit σ ≈ 0.72 px)",
              "size_px": S, "oversampling": O, "exposure_time": 1.0,
              "particle_intensity": [args.intensity, 20], "background_mean": args.background,
              "note": "background_mean 100 on the motion-blur path → ≈ 7700 counts/px, "
              "particle_intensity 500 → ≈ 10300 photons per frame "
              "(benchmarks/results/render_vs_andi.md)",
              "convention": "x_nm = (traj[..., 1] + 0.5) * 100, y_nm = (traj[..., 0] + 0.5) "
              "* 100 (AnDi: row first, pixel centres at integers)"}
    if not args.no_check:
        # immobile bright particles on a grid with sub-pixel offsets: the convention test
        rng = np.random.default_rng(12345)
        g = np.arange(12, S - 11, 20, dtype=float)
        rows, cols = np.meshgrid(g, g, indexing="ij")
        pos = np.stack([rows.ravel(), cols.ravel()], -1) + rng.uniform(-0.5, 0.5, (g.size**2, 2))
        trajs = np.repeat(pos[None], 5 * O, axis=0)
        seed_andi(args.seed + 1000)
        t0 = time.perf_counter()
        video, truth = render(trajs, S, O, 5 * args.intensity, args.background)
        write_folder(out / "_check", video, truth, S,
                     {**common, "movie": "_check", "particles": len(pos), "frames": 5,
                      "particle_intensity": [5 * args.intensity, 20],
                      "render_seconds": time.perf_counter() - t0, "kind": "convention check: "
                      "immobile particles at known sub-pixel positions"})
    for k, (n, T) in enumerate(zip(args.particles, frames)):
        seed = args.seed + k
        seed_andi(seed)  # andi-datasets and deeptrack draw from numpy's global RNG
        # per sub-step coefficient: MSD over one frame = 4·D·1^α ⇒ D_step = D / O^α (α ≈ 1)
        trajs, _ = models_phenom().single_state(
            N=n, T=T * O, Ds=[args.D / O, (0.1 * args.D / O) ** 2], alphas=list(args.alpha),
            L=S - 1)
        t0 = time.perf_counter()
        video, truth = render(trajs, S, O, args.intensity, args.background)
        write_folder(out / f"andi_p{n:03d}_s{seed}", video, truth, S,
                     {**common, "movie": f"andi_p{n:03d}_s{seed}", "seed": seed, "frames": T,
                      "particles": n, "trajectories": "models_phenom().single_state(N, T*O, "
                      f"Ds=[{args.D}/O, (0.1*{args.D}/O)^2], alphas={list(args.alpha)}, "
                      f"L={S - 1})", "D_px2_per_frame": args.D,
                      "render_seconds": time.perf_counter() - t0})


if __name__ == "__main__":
    main()
