"""Spot detection: band-pass filter, local maxima, threshold from a robust noise estimate."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def bandpass(frames: np.ndarray, sigma_px: float) -> np.ndarray:
    """Difference of Gaussians matched to the PSF: smooth at the PSF width, subtract the local
    background seen at 3× that width. ``frames`` ``(T, H, W)`` → same shape, float32."""
    frames = np.asarray(frames, np.float32)
    small = ndimage.gaussian_filter(frames, (0, sigma_px, sigma_px), mode="nearest")
    large = ndimage.gaussian_filter(frames, (0, 3 * sigma_px, 3 * sigma_px), mode="nearest")
    return small - large


def robust_noise(filtered: np.ndarray) -> np.ndarray:
    """Per-frame noise of a filtered stack: 1.4826 × median absolute deviation, ``(T,)``."""
    flat = filtered.reshape(len(filtered), -1)
    med = np.median(flat, axis=1, keepdims=True)
    return 1.4826 * np.median(np.abs(flat - med), axis=1)


def detect_spots(frames: np.ndarray, sigma_px: float, threshold: float = 5.0,
                 min_distance_px: int = 2, border_px: int = 0) -> np.ndarray:
    """Candidate emitters as integer ``(frame, row, col)`` rows, ``(n, 3)`` int64.

    A candidate is a local maximum of the band-passed image within ``min_distance_px`` whose
    value exceeds ``threshold`` × the frame's robust noise level.
    """
    if sigma_px <= 0:
        raise ValueError(f"sigma_px must be > 0; got {sigma_px}")
    filtered = bandpass(frames, sigma_px)
    noise = np.maximum(robust_noise(filtered), 1e-6)
    size = (1, 2 * min_distance_px + 1, 2 * min_distance_px + 1)
    peaks = (filtered == ndimage.maximum_filter(filtered, size=size, mode="nearest")) & (
        filtered > threshold * noise[:, None, None])
    if border_px > 0:
        peaks[:, :border_px] = peaks[:, -border_px:] = False
        peaks[:, :, :border_px] = peaks[:, :, -border_px:] = False
    return np.argwhere(peaks).astype(np.int64)


def extract_rois(frames: np.ndarray, spots: np.ndarray, half: int) -> tuple[np.ndarray,
                                                                          np.ndarray]:
    """Square ROIs of edge ``2·half + 1`` around spots, shifted inside the image at borders.

    Returns:
        ``(rois (n, s, s) float32, corners (n, 2) int64 [row0, col0])``.
    """
    T, H, W = frames.shape
    s = 2 * half + 1
    if s > H or s > W:
        raise ValueError(f"ROI of {s} px does not fit in {H}x{W} px frames")
    r0 = np.clip(spots[:, 1] - half, 0, H - s)
    c0 = np.clip(spots[:, 2] - half, 0, W - s)
    idx = np.arange(s)
    rois = frames[spots[:, 0][:, None, None], (r0[:, None] + idx)[:, :, None],
                  (c0[:, None] + idx)[:, None, :]]
    return rois.astype(np.float32), np.stack([r0, c0], axis=1)
