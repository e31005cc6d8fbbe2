"""Render transfer-benchmark movies with picasso's simulation module (``picasso.simulate``).

Runs in its own virtual environment (``pip install picassosr tifffile``; see
benchmarks/README.md):

    /work/ext_envs/picasso/bin/python benchmarks/external/make_picasso_movies.py \
        --out /work/ext_data/picasso

picasso simulates DNA-PAINT: immobile binding sites blink by imager binding (exponential dark
and bright times, ``simulate.distphotons``), every photon is drawn from the site's Gaussian PSF
and binned into camera pixels (``simulate.convertMovie``), then a Poisson background is added
(``simulate.noisy_p``) and the movie is cast to uint16 (``simulate.check_type``): that is
picasso's whole camera/noise model, the same steps as its GUI's "Simulate" in simple mode.
Settings are the GUI's defaults (pixel 130 nm, PSF σ 0.82 px, 100 ms frames, k_on 3.7e7 /M/s
at 0.5 nM imager → mean dark time 54 s, mean bright time 280 ms, photon slope 1300 per kW/cm²
per ms, its simple background model) except: 128×128 px, 60 frames, laser power density
0.02 kW/cm² (→ 2600 ± 1430 photons per frame and bright site instead of 22750), sites placed
at random (``simulate.generatePositions``, arrangement 1) rather than as origami grids, and
the background level varied across the movies.

picasso gives every site a position (x, y) in pixels; ``convertMovie`` bins photons with edges
0..S and then flips the image upside down (``np.flipud``), so column j covers x ∈ [j, j+1)
(smlmnet's convention) while row i covers y ∈ [S−1−i, S−i): smlmnet y_px = S − y. The
``_check`` folder (bright sites always on at known sub-pixel positions) tests this with
``benchmarks/external/check_conventions.py``.

Each movie folder gets ``movie.tif`` (uint16 as picasso writes it, ImageJ pixel size and frame
interval because picasso has both; no camera metadata), ``truth.csv`` (``frame``, ``x [nm]``,
``y [nm]``, ``photons [photon]``: sites with at least one photon in the frame) and
``render.json``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
from truth_io import write_truth  # noqa: E402  (beside this script)

warnings.filterwarnings("ignore")

# picasso GUI defaults (picasso/gui/simulate.py, simple mode)
PIXELSIZE = 130  # nm
PSF = 0.82  # px
ITIME = 100  # ms
KON = 37_000_000
IMAGER_NM = 0.5
TAUB = 280  # ms
PHOTONSLOPE = 1300
STDFACTOR = 1.82
PHOTONBUDGET = 1_500_000
LASERC, IMAGERC, POWERDENSITY_CONVERSION = 0.012063, 0.003195, 20


def background_model(laserpower, bglevel):
    """picasso's simple background model (photons per pixel and frame)."""
    return int((LASERC + IMAGERC * IMAGER_NM) * laserpower * POWERDENSITY_CONVERSION * ITIME
               * bglevel)


def render(partstruct, photondist, size, background, psf_px=PSF):
    from picasso import simulate

    frames = photondist.shape[1]
    movie = np.zeros((frames, size, size))
    for f in range(frames):
        movie[f] = simulate.convertMovie(f, photondist, partstruct, size, frames, psf_px, 0.0,
                                         background, np.sqrt(background), False, [], [])
    movie = simulate.noisy_p(movie, background)
    return simulate.check_type(movie)


def write_folder(folder: Path, movie, partstruct, photondist, size, info,
                 pixelsize=PIXELSIZE):
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    # picasso states pixel size and frame time: keep them (ImageJ fields), nothing else
    tifffile.imwrite(folder / "movie.tif", movie, imagej=True,
                     resolution=(1000.0 / pixelsize, 1000.0 / pixelsize),
                     metadata={"axes": "TYX", "unit": "um", "finterval": ITIME / 1000.0})
    site, frame = np.nonzero(photondist)
    order = np.lexsort((site, frame))
    site, frame = site[order], frame[order]
    x_px = partstruct[0, site]
    y_px = size - partstruct[1, site]  # picasso flips rows (np.flipud): smlmnet y = S − y
    photons = photondist[site, frame]
    info.update({"true_locs_below_200_photons": int((photons < 200).sum()),
                 "median_photons": float(np.median(photons)) if len(photons) else None,
                 "saturated_pixels": int((movie >= 65535).sum())})
    info = write_truth(folder, frame, site, x_px, y_px, pixelsize, photons=photons, info=info)
    print(f"{folder}: {photondist.shape[1]} frames, {len(site)} true localizations, "
          f"{info['distinct_emitters']} emitters", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/work/ext_data/picasso")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--sites", type=int, default=6000, help="binding sites per movie")
    ap.add_argument("--laserpower", type=float, default=0.02, help="kW/cm²")
    ap.add_argument("--bglevels", type=float, nargs="+", default=[10, 30, 60, 100],
                    help="picasso 'background level' per movie (one movie each)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--psf-px", type=float, default=PSF, help="PSF σ in camera pixels (GUI "
                    "default 0.82)")
    ap.add_argument("--pixelsize-nm", type=float, default=PIXELSIZE,
                    help="camera pixel in the sample plane (GUI default 130)")
    ap.add_argument("--name", default="picasso", help="movie folder prefix")
    ap.add_argument("--no-check", action="store_true")
    args = ap.parse_args(argv)

    from picasso import simulate

    out = Path(args.out)
    S, T = args.size, args.frames
    taud = round(1 / (KON * IMAGER_NM * 1e-9) * 1000)
    photonrate = PHOTONSLOPE * args.laserpower
    photonratestd = PHOTONSLOPE / STDFACTOR * args.laserpower
    common = {"renderer": "picasso.simulate (distphotons, convertMovie, noisy_p, check_type)",
              "versions": {p: version(p) for p in ("picassosr", "numpy")},
              "truth_pixel_size_nm": float(args.pixelsize_nm),
              "pixelsize_nm": args.pixelsize_nm,
              "psf_sigma_px": args.psf_px, "integration_time_ms": ITIME, "imagesize": S,
              "frames": T, "kon": KON, "imager_concentration_nM": IMAGER_NM, "taud_ms": taud,
              "taub_ms": TAUB, "laserpower_kW_cm2": args.laserpower,
              "photonrate_per_ms": photonrate, "photonratestd_per_ms": photonratestd,
              "photons_per_frame_mean": photonrate * ITIME, "photonbudget": PHOTONBUDGET,
              "camera_noise_model": "photon positions drawn from the PSF, Poisson "
              "background (simulate.noisy_p), uint16 (simulate.check_type); no gain/offset",
              "convention": f"x_nm = x_px * {args.pixelsize_nm:g}, y_nm = (S - y_px) * "
              f"{args.pixelsize_nm:g} (convertMovie bins with edges 0..S and flips rows)"}
    if not args.no_check:
        np.random.seed(args.seed + 1000)
        g = np.arange(10, S - 9, 20, dtype=float)
        xx, yy = np.meshgrid(g, g)
        n = xx.size
        jitter = np.random.uniform(-0.5, 0.5, (2, n))
        part = np.array([xx.ravel() + jitter[0], yy.ravel() + jitter[1], np.ones(n),
                         np.arange(n), np.zeros(n)])
        pdist = np.full((n, 5), 20000, dtype=int)
        bg = background_model(args.laserpower, 30)
        t0 = time.perf_counter()
        movie = render(part, pdist, S, bg, args.psf_px)
        write_folder(out / "_check", movie, part, pdist, S,
                     {**common, "movie": "_check", "background_photons_per_px": bg,
                      "frames": 5, "kind": "convention check: sites always on, 20000 photons",
                      "render_seconds": time.perf_counter() - t0}, args.pixelsize_nm)
    for k, bglevel in enumerate(args.bglevels):
        seed = args.seed + k
        np.random.seed(seed)  # picasso draws from numpy's global RNG
        pos = simulate.generatePositions(args.sites, S, 1, 1)  # random, 1 px from the edges
        n = len(pos)
        part = np.array([pos[:, 0], pos[:, 1], np.ones(n), np.arange(n), np.zeros(n)])
        t0 = time.perf_counter()
        pdist = np.zeros((n, T), dtype=int)
        for i in range(n):
            pdist[i], _, _ = simulate.distphotons(part, ITIME, T, taud, TAUB, photonrate,
                                                  photonratestd, PHOTONBUDGET)
        bg = background_model(args.laserpower, bglevel)
        movie = render(part, pdist, S, bg, args.psf_px)
        name = f"{args.name}_bg{bg:03d}_s{seed}"
        write_folder(out / name, movie, part, pdist, S,
                     {**common, "movie": name, "seed": seed, "sites": n,
                      "background_level": bglevel, "background_photons_per_px": bg,
                      "render_seconds": time.perf_counter() - t0}, args.pixelsize_nm)


if __name__ == "__main__":
    main()
