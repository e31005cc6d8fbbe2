"""Check the pixel-convention conversion of the external renderers: localize the ``_check``
movie of each renderer (immobile bright spots at known sub-pixel positions) with smlmnet's MLE
and report the bias of the fitted positions against truth.csv.

    python benchmarks/external/check_conventions.py /work/ext_data [--psf andi=72 picasso=130]

A correct conversion gives a bias of ≈ 0 px in x and y (within a few hundredths of a pixel); a
missed half-pixel shift shows as ±0.5 px, swapped axes as a large RMSE and few matches.
Exits with status 1 when |bias| > --max-bias-px on either axis or fewer than 90 % match.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import tifffile

from smlmnet.evaluation.transfer import load_truth
from smlmnet.io.tiff import read_movie_tiff, read_tiff_calibration
from smlmnet.localize.base import SpotFitLocalizer
from smlmnet.metrics.localization import match_per_frame


def check(folder: Path, psf_sigma_nm: float) -> dict:
    info = json.loads((folder / "render.json").read_text())
    with tifffile.TiffFile(folder / "movie.tif") as tif:
        stated = read_tiff_calibration(tif)
    px = None if "pixel_size_nm" in stated else info["truth_pixel_size_nm"]
    dt = None if "frame_time_s" in stated else 1.0
    movie = read_movie_tiff(folder / "movie.tif", px, dt, lazy=True)
    truth = load_truth(folder, movie.pixel_size_nm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = SpotFitLocalizer("mle", psf_sigma_nm=psf_sigma_nm).localize(
            movie)
    pairs = match_per_frame(truth, est, 250.0)
    a = movie.pixel_size_nm
    return {"folder": str(folder), "pixel_size_nm": a,
            "pixel size from": "TIFF" if px is None else "render.json",
            "true": len(truth), "found": len(est), "matched": len(pairs),
            "bias_x_px": float(pairs["dx [nm]"].mean() / a),
            "bias_y_px": float(pairs["dy [nm]"].mean() / a),
            "rmse_px": float(np.sqrt(np.mean(pairs["distance [nm]"] ** 2)) / a),
            "fitted_sigma_px": float(est["sigma [nm]"].median() / a)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", help="data root holding <renderer>/_check/")
    ap.add_argument("--psf", nargs="*", default=["andi=72", "picasso=130"],
                    help="renderer=σ_nm start values for the fit")
    ap.add_argument("--max-bias-px", type=float, default=0.05)
    args = ap.parse_args(argv)
    sig = {k: float(v) for k, v in (s.split("=") for s in args.psf)}
    ok = True
    for folder in sorted(Path(args.root).glob("*/_check")):
        r = check(folder, sig.get(folder.parent.name, 130.0))
        print(json.dumps(r))
        good = (abs(r["bias_x_px"]) < args.max_bias_px and abs(r["bias_y_px"]) < args.max_bias_px
                and r["matched"] >= 0.9 * r["true"])
        print(f"{folder.parent.name}: {'OK' if good else 'FAILED'}")
        ok &= good
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
