"""Localizers share one interface: ``Localizer.localize(movie) -> DataFrame``.

The localization table (the contract between ``localize`` and ``link``) has one row per
localization with columns ``frame`` (0-based), ``x [nm]``, ``y [nm]`` (smlmnet coordinates,
centre of pixel 0 at 0.5 px), ``photons [photon]``, ``bg [photon/px]``, ``sigma [nm]``,
``uncertainty_xy [nm]`` (Cramér–Rao bound of the fit, mean of x and y), ``crlb_x [nm]``,
``crlb_y [nm]``, ``chi2`` (Pearson χ² per degree of freedom), ``bkgstd [photon]``.
"""

from __future__ import annotations

import abc
import warnings

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from smlmnet.data import contracts as C
from smlmnet.data.camera import fit_units
from smlmnet.data.contracts import Movie
from smlmnet.localize.detect import detect_spots, extract_rois
from smlmnet.localize.fit import fit_centroid, fit_gaussian_mle

#: PSF σ (nm) assumed when neither the user, the file nor a calibration gives one
DEFAULT_PSF_SIGMA_NM = 130.0

LOCALIZATION_COLUMNS = [C.FRAME, C.X_NM, C.Y_NM, C.PHOTONS, "bg [photon/px]", "sigma [nm]",
                        "uncertainty_xy [nm]", "crlb_x [nm]", "crlb_y [nm]", "chi2",
                        "bkgstd [photon]"]


def empty_localizations() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == C.FRAME else "float64")
                         for c in LOCALIZATION_COLUMNS})


def camera_factors(movie: Movie) -> dict:
    """How to turn the movie's ADU into fit units (:func:`smlmnet.data.camera.fit_units`);
    warns when the movie has no camera (pixel values are then taken as photons)."""
    if not movie.camera:
        warnings.warn("the movie has no camera parameters; treating pixel values as photons "
                      "(pass camera settings for correct photon counts)", stacklevel=3)
    return fit_units(movie.camera)


class Localizer(abc.ABC):
    """Finds emitters in every frame of a movie."""

    name: str = "localizer"

    @abc.abstractmethod
    def localize(self, movie: Movie, progress: bool = False) -> pd.DataFrame:
        """Localization table of ``movie`` (see module docstring)."""


class SpotFitLocalizer(Localizer):
    """Classical localizer: band-pass detection, then a centroid or Gaussian MLE fit per spot.

    Args:
        method: ``"mle"`` (pixelated Gaussian, Poisson likelihood) or ``"centroid"``.
        psf_sigma_nm: PSF σ, for the detection filter and the fit's start value.
        threshold: detection threshold in units of the robust noise of the filtered frame.
        roi_half_px: ROI half edge (ROI = 2·half + 1 px); default ``ceil(3σ)``.
        fit_sigma: fit the PSF width per spot (otherwise fixed at ``psf_sigma_nm``).
        min_distance_px: minimal distance between two detections.
        batch_frames: frames processed together (memory bound).
        max_uncertainty_nm: drop fits whose CRLB exceeds this (failed or hopeless fits).
    """

    def __init__(self, method: str = "mle", psf_sigma_nm: float = DEFAULT_PSF_SIGMA_NM,
                 threshold: float = 5.0, roi_half_px: int | None = None, fit_sigma: bool = True,
                 min_distance_px: int = 2, batch_frames: int = 256,
                 max_uncertainty_nm: float = 100.0) -> None:
        if method not in ("mle", "centroid"):
            raise ValueError(f"method must be 'mle' or 'centroid'; got {method!r}")
        if psf_sigma_nm <= 0 or threshold <= 0:
            raise ValueError("psf_sigma_nm and threshold must be > 0")
        self.method = method
        self.name = f"{method}"
        self.psf_sigma_nm = float(psf_sigma_nm)
        self.threshold = float(threshold)
        self.roi_half_px = roi_half_px
        self.fit_sigma = fit_sigma
        self.min_distance_px = int(min_distance_px)
        self.batch_frames = int(batch_frames)
        self.max_uncertainty_nm = float(max_uncertainty_nm)

    def localize(self, movie: Movie, progress: bool = False) -> pd.DataFrame:
        a = movie.pixel_size_nm
        sigma_px = self.psf_sigma_nm / a
        half = self.roi_half_px or max(2, int(np.ceil(3 * sigma_px)))
        cam = camera_factors(movie)
        qe, excess, read_var = cam["qe"], cam["excess"], cam["read_var"]
        tables = []
        bar = tqdm(total=movie.n_frames, desc=f"localizing ({self.name})", unit="frame",
                   disable=not progress, leave=False)
        for f0 in range(0, movie.n_frames, self.batch_frames):
            chunk = (np.asarray(movie.frames[f0:f0 + self.batch_frames], np.float32)
                     - cam["baseline"]) * cam["scale"]
            spots = detect_spots(chunk, sigma_px, self.threshold, self.min_distance_px)
            if len(spots):
                rois, corners = extract_rois(chunk, spots, half)
                tables.append(self._fit(rois / excess, corners, spots[:, 0] + f0, sigma_px, a,
                                        qe, excess, read_var))
            bar.update(len(chunk))
        bar.close()
        if not tables:
            return empty_localizations()
        return pd.concat(tables, ignore_index=True)

    def _fit(self, rois, corners, frames, sigma_px, a, qe, excess, read_var) -> pd.DataFrame:
        s = rois.shape[1]
        if self.method == "centroid":
            r = fit_centroid(rois)
            bkgstd = np.sqrt(np.clip(r["bg"], 0, None))
            r.update({"sigma": np.full(len(rois), sigma_px), "chi2": np.full(len(rois), np.nan)})
            # a centroid has no likelihood, hence no Cramér–Rao bound: left empty (NaN)
            crlb = np.full(len(rois), np.nan)
            r.update({"crlb_x": crlb, "crlb_y": crlb})
            keep = r["photons"] > 0
        else:
            r = fit_gaussian_mle(rois, sigma_px, fit_sigma=self.fit_sigma, read_var=read_var)
            bkgstd = np.sqrt(np.clip(r["bg"], 0, None))
            inside = (r["x"] > 0) & (r["x"] < s) & (r["y"] > 0) & (r["y"] < s)
            unc = 0.5 * (r["crlb_x"] + r["crlb_y"]) * a
            keep = inside & np.isfinite(unc) & (unc < self.max_uncertainty_nm) & (
                r["photons"] > 0)
        x_nm = (corners[:, 1] + r["x"]) * a
        y_nm = (corners[:, 0] + r["y"]) * a
        table = pd.DataFrame({
            C.FRAME: frames.astype(np.int64),
            C.X_NM: x_nm, C.Y_NM: y_nm,
            C.PHOTONS: r["photons"] * excess / qe,
            "bg [photon/px]": r["bg"] * excess / qe,
            "sigma [nm]": r["sigma"] * a,
            "uncertainty_xy [nm]": 0.5 * (r["crlb_x"] + r["crlb_y"]) * a,
            "crlb_x [nm]": r["crlb_x"] * a, "crlb_y [nm]": r["crlb_y"] * a,
            "chi2": r["chi2"],
            "bkgstd [photon]": bkgstd * excess / qe,
        })
        return table[keep].reset_index(drop=True)
