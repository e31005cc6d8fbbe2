"""Pixel-integrated Gaussian PSF (Smith et al. 2010) and rendering of emitter samples."""

from __future__ import annotations

import numpy as np
from scipy.special import erf


def pixel_integrals(centre_px: np.ndarray, sigma_px: float, n_pixels: int) -> np.ndarray:
    """Fraction of a 1D Gaussian falling in each pixel.

    Args:
        centre_px: ``(P,)`` centres in continuous pixel units (pixel j covers [j, j+1)).
        sigma_px: PSF standard deviation in pixels (a scalar, or ``(P,)`` / ``(P, 1)`` per
            centre).
        n_pixels: number of pixels along the axis.
    Returns:
        ``(P, n_pixels)`` array ΔE = ½[erf((j+1−c)/(√2σ)) − erf((j−c)/(√2σ))].
    """
    edges = np.arange(n_pixels + 1, dtype=float)
    sigma = np.asarray(sigma_px, float)
    sigma = sigma.reshape(-1, 1) if sigma.ndim else sigma
    cdf = erf((edges[None, :] - np.asarray(centre_px, float)[:, None]) / (np.sqrt(2) * sigma))
    return 0.5 * np.diff(cdf, axis=1)


def render_gaussian_spots(frame_index: np.ndarray, x_px: np.ndarray, y_px: np.ndarray,
                          photons: np.ndarray, shape: tuple[int, int, int], sigma_px: float,
                          chunk_samples: int = 50_000, progress=None) -> np.ndarray:
    """Expected photon image of point emitters blurred by a pixelated Gaussian PSF.

    Args:
        frame_index: ``(P,)`` frame of each sample (0-based).
        x_px, y_px: ``(P,)`` positions in continuous pixel units (centre of pixel 0 at 0.5).
        photons: ``(P,)`` expected photons of each sample.
        shape: ``(T, H, W)`` of the output.
        sigma_px: PSF standard deviation in pixels.
        progress: optional callable ``progress(n_frames_done)``.
    Returns:
        ``(T, H, W)`` float64 array of expected photons per pixel.
    """
    T, H, W = shape
    image = np.zeros(shape)
    order = np.argsort(frame_index, kind="stable")
    frame_index, x_px, y_px, photons = (a[order] for a in (frame_index, x_px, y_px, photons))
    bounds = np.searchsorted(frame_index, np.arange(T + 1))
    f0 = 0
    while f0 < T:
        # take as many whole frames as fit in one chunk of samples
        f1 = int(np.searchsorted(bounds, bounds[f0] + chunk_samples, side="right")) - 1
        f1 = min(max(f1, f0 + 1), T)
        lo, hi = bounds[f0], bounds[f1]
        if hi > lo:
            ex = pixel_integrals(x_px[lo:hi], sigma_px, W) * photons[lo:hi, None]
            ey = pixel_integrals(y_px[lo:hi], sigma_px, H)
            for f in range(f0, f1):
                a, b = bounds[f] - lo, bounds[f + 1] - lo
                if b > a:
                    image[f] = ey[a:b].T @ ex[a:b]
        if progress is not None:
            progress(f1 - f0)
        f0 = f1
    return image
