"""Odd real-world input: smlmnet movies degraded the way exported recordings are, written as
bare TIFFs (no camera metadata) for ``evaluate.py benchmark=transfer``.

Each variant starts from the same ``sptpalm_membrane`` simulation (EMCCD, 100 nm pixels,
PSF σ 110 nm, 20 ms frames, motion blur, blinking) and changes one thing a user's file has:

- ``unknown_gain``: raw counts ×3.7 + 480 (another camera's gain and offset), float32 → uint16;
- ``eight_bit``: background-subtracted (per-frame median), scaled so that the 99.9th percentile
  of the movie is 255, clipped to 0–255 and stored as uint8 (background clipped to 0);
- ``beads``: 6 static fiducial beads of 10⁵ photons each (same PSF) added to every frame;
  they are spots, so they are in the truth too;
- ``defocus``: PSF σ ×1.8 (198 nm) with 25 % of each spot's photons in a halo of 2.5× the
  width (an out-of-focus plane).

    python benchmarks/external/make_odd_movies.py /work/ext_data_odd --seeds 1 2 3 4 5
    python evaluate.py benchmark=transfer benchmark.data_root=/work/ext_data_odd \\
        hydra.run.dir=benchmarks/results/odd_input

The truth is written in smlmnet's pixel convention (``benchmarks/external/truth_io.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from truth_io import write_truth  # noqa: E402

from smlmnet.data import contracts as C  # noqa: E402
from smlmnet.simulate import load_config, simulate  # noqa: E402
from smlmnet.simulate.psf import render_gaussian_spots  # noqa: E402

VARIANTS = ("unknown_gain", "eight_bit", "beads", "defocus")
def simulate_variant(variant: str, seed: int, n_frames: int = 60, size_px: int = 128):
    """(frames as stored, truth table in nm, settings) of one variant."""
    over = [f"n_frames={n_frames}", f"fov.shape_px=[{size_px},{size_px}]",
            "particles.density_per_um2=3.0", f"seed={seed}"]
    if variant == "defocus":
        over += ["psf.sigma_nm=198.0", "psf.halo_fraction=0.25", "psf.halo_sigma_factor=2.5"]
    sim = simulate(load_config("sptpalm_membrane", over))
    frames = sim.movie.frames.astype(np.float64)
    truth = sim.emitters[sim.emitters[C.ON]].reset_index(drop=True)
    a = sim.movie.pixel_size_nm
    t = {"frame": truth[C.FRAME].to_numpy(), "emitter": truth[C.TRACK_ID].to_numpy(),
         "x_px": truth[C.X_NM].to_numpy() / a, "y_px": truth[C.Y_NM].to_numpy() / a}
    info = {"renderer": f"smlmnet sptpalm_membrane, degraded: {variant}", "seed": seed,
            "overrides": over, "pixel_size_nm": a}
    if variant == "unknown_gain":
        frames = frames * 3.7 + 480.0
        out = np.clip(np.round(frames), 0, 65535).astype(np.uint16)
    elif variant == "eight_bit":
        frames = frames - np.median(frames, axis=(1, 2), keepdims=True)
        top = np.percentile(frames, 99.9)
        out = np.clip(np.round(frames * 255.0 / top), 0, 255).astype(np.uint8)
        info["scale_to_8bit"] = float(255.0 / top)
    elif variant == "beads":
        rng = np.random.default_rng([seed, 77])
        T, H, W = frames.shape
        n = 6
        bx, by = rng.uniform(4, W - 4, n), rng.uniform(4, H - 4, n)
        photons = 1e5
        sigma_px = 110.0 / a
        f_idx = np.repeat(np.arange(T), n)
        expected = render_gaussian_spots(f_idx, np.tile(bx, T), np.tile(by, T),
                                         np.full(T * n, photons), (T, H, W), sigma_px)
        cam = sim.config.camera
        gain_adu_per_photon = cam.qe * cam.em_gain / cam.e_per_adu
        frames = frames + rng.poisson(expected) * gain_adu_per_photon
        out = np.clip(np.round(frames), 0, 65535).astype(np.uint16)
        bead_ids = 10_000_000 + np.arange(n)
        for k in ("frame", "emitter", "x_px", "y_px"):
            extra = {"frame": f_idx, "emitter": np.tile(bead_ids, T), "x_px": np.tile(bx, T),
                     "y_px": np.tile(by, T)}[k]
            t[k] = np.concatenate([t[k], extra])
        info["beads"] = {"n": n, "photons": photons}
    else:
        out = np.clip(np.round(frames), 0, 65535).astype(np.uint16)
    return out, t, info


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", help="output folder (created; one sub-folder per variant)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--size", type=int, default=128, help="movie width and height [px]")
    args = p.parse_args(argv)
    for variant in args.variants:
        for seed in args.seeds:
            folder = Path(args.root) / variant / f"{variant}_s{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            frames, t, info = simulate_variant(variant, seed, args.frames, args.size)
            # a bare TIFF: no pixel size, no camera, as an exported recording
            tifffile.imwrite(folder / "movie.tif", frames)
            info = write_truth(folder, t["frame"], t["emitter"], t["x_px"], t["y_px"],
                               info["pixel_size_nm"], info=info)
            print(json.dumps({"movie": str(folder), "true": info["true_localizations"],
                              "dtype": str(frames.dtype)}))


if __name__ == "__main__":
    main()
