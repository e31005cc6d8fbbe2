"""Render the ``pixel_diffusion`` grid with the AnDi challenge's video generator (transfer).

Runs in its own virtual environment (andi-datasets + deeptrack 1.7; see benchmarks/README.md):

    /work/ext_envs/andi/bin/python benchmarks/external/make_andi_pixel_movies.py \
        --out /work/ext_data/andi_pixel

One movie per D (µm²/s) × exposure/frame × seed of the ``pixel_diffusion`` grid, with
``--frames`` frames of isolated Brownian molecules (≥ 100 per movie; scored by
``python evaluate.py benchmark=pixel_diffusion_external``):

- trajectories: ``models_phenom().single_state`` (α = 1, one D, no box: ``L=None``) on a grid of
  ``--substeps`` equal time steps per frame; AnDi's D is per step with a per-axis step variance
  of 2·D, so D_andi = D·Δt/a² / substeps (Δt = ``--frame-time-s``, a = 100 nm). The script
  checks the conversion on the rendered truth: the per-axis variance of the frame-to-frame
  displacement of the exposure-averaged positions, expected 2·D_px·(1 − 2R) for Brownian
  motion with the blur coefficient R of the exposed steps; both values and their ratio go to
  ``render.json`` (``step_var_ratio``).
- exposure/frame f: the camera integrates the first ``round(f·substeps)`` steps of each frame
  (f = 0: one instant per frame, stroboscopic). andi-datasets 2.1's ``transform_to_video``
  always sums *all* of ``oversamp_factor`` sub-step images per frame (it multiplies the
  exposure by ``oversamp_factor`` twice), so the script passes only the exposed positions
  (``oversamp_factor`` = exposed steps, ``motion_blur(exposure_time=1)``) and divides the
  particle intensity and background by it: every frame has the same photons whatever f. The
  truth is ``motion_blur.apply`` of those positions: the exposure-averaged position.
- optics: AnDi's defaults (NA 1.46, 500 nm, 100 nm pixels; Gaussian-fit σ ≈ 0.72 px);
  Poisson counts, no offset; ``--photons`` per frame and ``--background`` per pixel via
  AnDi's scale (``particle_intensity`` 1 per sub-step → 2.066 photons, ``background_mean`` 1 →
  7.73 counts/px; benchmarks/results/render_vs_andi.md).
- isolation: molecules start on a square lattice of pitch ``pitch(D)`` (px) that keeps
  neighbours apart (≈ 3.4 σ of their relative displacement over the movie). AnDi's renderer
  costs ≈ 5 ms per particle and sub-step plus more for larger images, so each movie is a
  mosaic of small independently rendered tiles (each an AnDi movie of a few molecules, the
  same optics and noise); molecules stay ≥ pitch/2 from the tile edges at the start.

With ``--alpha A [A ...]`` the grid is α × exposure/frame × seed instead, for the
``pixel_anomalous_external`` benchmark: fractional Brownian motion (``single_state`` with
``alphas=[α, 0]``: AnDi's ``disp_fbm`` draws fGn with ⟨x²(n steps)⟩ = 2·D_andi·n^α per axis) at
one ``--D`` that fixes the mean step over one frame for every α, MSD(Δt) = 4·D·Δt, i.e.
K = D·Δt^(1−α) µm²/s^α and D_andi = D·Δt/a² / substeps^α. The script checks it on the rendered
trajectories (unblurred, at the frame starts): the ratio of the per-axis MSD at one frame to
2·D_px, and α of a log-log fit over lags 1..frames/2 (``msd1_ratio``, ``alpha_fit``).
``step_var_ratio`` uses the Brownian blur formula, so it checks only α = 1 movies.

Each movie folder gets ``movie.tif`` (uint16 counts, a plain TIFF without calibration),
``truth.csv`` (``frame``, ``emitter``, ``x [nm]``, ``y [nm]``, ``D [um^2/s]``; the AnDi
convention x_nm = (traj[..., 1] + 0.5)·a, y_nm = (traj[..., 0] + 0.5)·a as in
make_andi_movies.py, whose ``_check`` movie check_conventions.py tests) and
``render.json``.
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
from truth_io import write_truth  # noqa: E402  (beside this script)

warnings.filterwarnings("ignore")

PIXEL_NM = 100.0  # AnDi's default optics "resolution" (100e-9 m)
PHOTONS_PER_INTENSITY = 2.066  # photons per unit particle_intensity per sub-step image
COUNTS_PER_BACKGROUND = 7.73  # counts/px per unit background_mean per sub-step image


def pitch_px(d_px: float, frames: int, alpha: float = 1.0) -> int:
    """Lattice pitch keeping neighbours ≥ ≈ 3.4 σ of their relative per-axis displacement over
    the movie (and ≥ 16 px: the 15 px tubelets); ``d_px``: px² per frame, MSD ∝ t^alpha."""
    sigma_rel = np.sqrt(2 * 2 * d_px * frames ** alpha)
    return int(max(16, np.ceil(12 + 3.4 * sigma_rel)))


def render_tile(trajs_rowcol, size, n_exp, photons, background):
    """One AnDi movie of the exposed positions ``(T·n_exp, N, 2)``: (video, truth)."""
    from andi_datasets.utils_trajectories import motion_blur
    from andi_datasets.utils_videos import transform_to_video

    T = trajs_rowcol.shape[0] // n_exp
    blur = motion_blur(output_length=T, oversamp_factor=n_exp, exposure_time=1.0)
    inten = photons / PHOTONS_PER_INTENSITY / n_exp
    video = transform_to_video(
        trajs_rowcol, particle_props={"particle_intensity": [inten, 0.1 * inten]},
        optics_props={"output_region": [0, 0, size, size]},
        background_props={"background_mean": background / COUNTS_PER_BACKGROUND / n_exp,
                          "background_std": 0},
        motion_blur_generator=blur)
    return video[..., 0], blur.apply(trajs_rowcol)


def make_movie(folder: Path, D: float, f: float, seed: int, rng_seed: int, args,
               common: dict, alpha: float = 1.0) -> None:
    import tifffile
    from andi_datasets.models_phenom import models_phenom

    T, S = args.frames, args.substeps
    d_px = D * args.frame_time_s / (PIXEL_NM / 1000) ** 2  # px² per frame
    n_exp = 1 if f <= 0 else int(np.clip(round(f * S), 1, S))
    pitch = pitch_px(d_px, T, alpha)
    per_side = max(1, min(int(args.tile_px // pitch), int(np.ceil(np.sqrt(args.molecules)))))
    tile = per_side * pitch
    n_tiles = int(np.ceil(args.molecules / per_side**2))
    cols = int(np.ceil(np.sqrt(n_tiles)))
    rows = int(np.ceil(n_tiles / cols))
    n_tiles = rows * cols  # fill the mosaic
    seed_andi(rng_seed)  # andi-datasets and deeptrack draw from numpy's global RNG
    N = n_tiles * per_side**2
    trajs, _ = models_phenom().single_state(N=N, T=T * S, Ds=[d_px / S**alpha, 0.0],
                                            alphas=[alpha, 0.0], L=None)
    trajs = trajs - trajs[:1]  # start at 0 (L=None already does)
    # keep the exposed steps of each frame (the first n_exp of S)
    exposed = trajs.reshape(T, S, N, 2)[:, :n_exp].reshape(T * n_exp, N, 2)
    g = (np.arange(per_side) + 0.5) * pitch
    lattice = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    lattice = lattice + np.random.uniform(-0.5, 0.5, lattice.shape)
    movie = np.zeros((T, rows * tile, cols * tile), np.float64)
    truth = np.zeros((T, N, 2))
    t0 = time.perf_counter()
    k = per_side**2
    for i in range(n_tiles):
        r, c = divmod(i, cols)
        sl = slice(i * k, (i + 1) * k)
        video, tr = render_tile(exposed[:, sl] + lattice[None], tile, n_exp, args.photons,
                                args.background)
        movie[:, r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = video
        truth[:, sl] = tr + np.array([r * tile, c * tile])
    seconds = time.perf_counter() - t0
    # unit check on the rendered truth: per-axis variance of frame-to-frame displacements
    # exact R of n_exp equally spaced instants in a frame of S steps (discrete blur):
    s = np.arange(n_exp) / S
    R = float(s.mean() - np.minimum.outer(s, s).mean()) if n_exp > 1 else 0.0
    step_var = float(np.var(np.diff(truth, axis=0)))
    expected = 2 * d_px * (1 - 2 * R)
    # unblurred positions at the frame starts: per-axis MSD(k frames) = 2·d_px·k^α
    starts = trajs.reshape(T, S, N, 2)[:, 0]
    lags = np.arange(1, T // 2 + 1)
    msd = np.array([np.mean((starts[k:] - starts[:-k]) ** 2) for k in lags])
    alpha_fit = float(np.polyfit(np.log(lags), np.log(msd), 1)[0])
    folder.mkdir(parents=True, exist_ok=True)
    frames = np.clip(np.rint(movie), 0, 65535).astype(np.uint16)
    tifffile.imwrite(folder / "movie.tif", frames)
    H, W = frames.shape[1:]
    fr = np.repeat(np.arange(T), N)
    em = np.tile(np.arange(N), T)
    x_px = truth[..., 1].ravel() + 0.5  # AnDi: centre of pixel 0 at 0 → smlmnet 0.5
    y_px = truth[..., 0].ravel() + 0.5
    inside = (x_px >= 0) & (x_px < W) & (y_px >= 0) & (y_px < H)
    # isolated: the molecule stays ≥ 4 px inside its own tile (it is rendered only there) and
    # ≥ 12 px from every other molecule in every frame
    tile_of = np.repeat(np.arange(n_tiles), k)
    t_r, t_c = np.divmod(tile_of, cols)
    rel = truth - np.stack([t_r * tile, t_c * tile], -1)[None]
    in_tile = ((rel >= 4) & (rel <= tile - 4)).all(axis=(0, 2))
    near = np.zeros(N, bool)
    for t in range(T):
        d2 = ((truth[t, :, None] - truth[t, None]) ** 2).sum(-1)
        np.fill_diagonal(d2, np.inf)
        near |= d2.min(1) < 12**2
    isolated = in_tile & ~near
    info = {**common, "movie": folder.name, "seed": seed, "rng_seed": rng_seed,
            "D_um2_s": D,
            "alpha": alpha, "K_um2_s_alpha": D * args.frame_time_s ** (1.0 - alpha),
            "D_px2_per_frame": d_px, "D_andi_per_step": d_px / S**alpha,
            "exposure_fraction": f, "msd1_ratio": float(msd[0] / (2 * d_px)),
            "alpha_fit": alpha_fit,
            "exposed_steps": n_exp, "blur_R_discrete": R, "frames": T, "molecules": N,
            "tiles": n_tiles, "tile_px": tile, "pitch_px": pitch, "shape_px": [H, W],
            "truth_step_var_px2": step_var, "expected_step_var_px2": expected,
            "step_var_ratio": step_var / expected, "render_seconds": seconds,
            "isolated_molecules": int(isolated.sum()),
            "saturated_pixels": int((movie > 65535).sum()), "max_count": float(movie.max()),
            "trajectories": f"models_phenom().single_state(N={N}, T={T}*{S}, "
            f"Ds=[{d_px:.6g}/{S}^{alpha:g}, 0], alphas=[{alpha:g}, 0], L=None)"}
    info = write_truth(folder, fr[inside], em[inside], x_px[inside], y_px[inside], PIXEL_NM,
                       info=info, extra={"D [um^2/s]": np.full(int(inside.sum()), D),
                              "alpha": np.full(int(inside.sum()), alpha),
                              "isolated": np.tile(isolated.astype(int), T)[inside]})
    print(f"{folder.name}: {N} molecules ({int(isolated.sum())} isolated), {H}x{W} px, "
          f"step var {step_var:.4g} vs {expected:.4g} px², MSD(1) ratio {msd[0] / (2 * d_px):.3f}, "
          f"α fit {alpha_fit:.3f}, {seconds:.1f} s", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/work/ext_data/andi_pixel")
    ap.add_argument("--D", type=float, nargs="+", default=[0.01, 0.1, 1.0, 5.0],
                    help="µm²/s")
    ap.add_argument("--exposure", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[3001, 3002, 3003, 3004, 3005],
                    help="never used in training")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--substeps", type=int, default=4,
                    help="time steps per frame (the exposure integrates round(f·substeps))")
    ap.add_argument("--molecules", type=int, default=110,
                    help="at least this many per movie (≥ 100 stay isolated)")
    ap.add_argument("--tile-px", type=int, default=200, help="largest tile edge")
    ap.add_argument("--frame-time-s", type=float, default=0.02)
    ap.add_argument("--photons", type=float, default=1000.0, help="signal photons per frame")
    ap.add_argument("--background", type=float, default=20.0, help="photons per pixel")
    ap.add_argument("--alpha", type=float, nargs="+", default=None,
                    help="fBM grid: these α × exposures × seeds at the first --D (mean step "
                    "over one frame fixed, MSD(Δt) = 4·D·Δt)")
    ap.add_argument("--skip-existing", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    versions = {p: version(p) for p in ("andi-datasets", "deeptrack", "numpy")}
    common = {"renderer": "andi_datasets.utils_videos.transform_to_video + "
              "utils_trajectories.motion_blur (tiles stitched into one mosaic)",
              "versions": versions, "truth_pixel_size_nm": PIXEL_NM,
              "pixel_size_nm": PIXEL_NM, "frame_time_s": args.frame_time_s,
              "substeps": args.substeps, "photons_per_frame": args.photons,
              "background_photons_per_px": args.background,
              "optics": "AnDi defaults: NA 1.46, wavelength 500 nm, resolution 100 nm, "
              "magnification 1 (Gaussian-fit σ ≈ 0.72 px)", "camera": "Poisson counts, no offset",
              "convention": "x_nm = (traj[..., 1] + 0.5) * 100, y_nm = (traj[..., 0] + 0.5) "
              "* 100 (AnDi: row first, pixel centres at integers)"}
    out.mkdir(parents=True, exist_ok=True)
    if args.alpha:
        grid = [(f"a{a:g}_f{f:g}_s{seed}", args.D[0], f, seed, a,
                 seed * 10000 + int(round(a * 100)) * 10 + int(round(f * 2)))
                for seed in args.seeds for a in args.alpha for f in args.exposure]
    else:
        grid = [(f"D{D:g}_f{f:g}_s{seed}", D, f, seed, 1.0,
                 seed * 1000 + int(round(D * 100)) * 10 + int(round(f * 2)))
                for seed in args.seeds for D in args.D for f in args.exposure]
    for name, D, f, seed, alpha, rng_seed in grid:
        info_path = out / name / "render.json"
        if args.skip_existing and info_path.is_file():
            info = json.loads(info_path.read_text())
            if "rng_seed" not in info:  # written before the grid seed was recorded
                info.update(seed=seed, rng_seed=rng_seed)
                info_path.write_text(json.dumps(info, indent=2))
            continue
        make_movie(out / name, D, f, seed, rng_seed, args, common, alpha)
    (out / "grid.json").write_text(json.dumps({
        "D_um2_s": args.D, "alpha": args.alpha or [1.0],
        "exposure_fraction": args.exposure, "seeds": args.seeds,
        "frames": args.frames, **common}, indent=2))


if __name__ == "__main__":
    main()
