"""Camera models: expected photons per pixel → digital counts (ADU).

Follows the model used by DECODE and the SMLM challenge: photo-electrons
Poisson(QE·λ + spurious charge) → EM gain Gamma(shape=electrons, scale=gain) (EMCCD only; the
excess noise doubles the shot-noise variance) → Gaussian read noise → ÷ e⁻/ADU → rounding →
+ baseline → clip to the ADC range. Rounding to the nearest integer keeps the mean unbiased.
"""

from __future__ import annotations

import numpy as np

from smlmnet.data.camera import adu_to_photons  # noqa: F401  (the one inverse, re-exported)
from smlmnet.simulate.config import CameraConfig


def camera_adu(rng: np.random.Generator, expected_photons: np.ndarray,
               cam: CameraConfig, rng_gain: np.random.Generator | None = None,
               rng_read: np.random.Generator | None = None) -> tuple[np.ndarray, int]:
    """Digitize an image of expected photons per pixel.

    Args:
        rng: photon/electron shot noise (Poisson). rng_gain: EM-gain register (gamma);
            rng_read: read noise (normal); both default to ``rng``. The simulator passes three
            independent streams: each of these draws is element after element in C order, so
            digitizing a movie chunk of frames after chunk gives the same numbers as digitizing
            it whole (with one stream, all Poisson draws precede all gamma draws, and a chunk
            could not be finished before the whole movie had been drawn).
    Returns:
        ``(frames_uint16, n_saturated)``: the ADU image and the number of clipped pixels.
    """
    rng_gain = rng if rng_gain is None else rng_gain
    rng_read = rng if rng_read is None else rng_read
    lam = np.asarray(expected_photons, float)
    if cam.model == "poisson":
        adu = rng.poisson(lam).astype(float)
    else:
        electrons = rng.poisson(cam.qe * lam + cam.spurious_charge).astype(float)
        if cam.model == "emccd":
            amplified = np.zeros_like(electrons)
            nz = electrons > 0
            amplified[nz] = rng_gain.gamma(electrons[nz], cam.em_gain)
            electrons = amplified
        if cam.read_noise_e > 0:
            electrons += rng_read.normal(0.0, cam.read_noise_e, size=electrons.shape)
        adu = np.rint(electrons / cam.e_per_adu) + cam.baseline_adu
    max_adu = 2**cam.bit_depth - 1
    n_saturated = int(np.count_nonzero(adu > max_adu))
    return np.clip(adu, 0, max_adu).astype(np.uint16), n_saturated


def pixel_variance_adu(expected_photons: np.ndarray | float, cam: CameraConfig) -> np.ndarray:
    """Theoretical variance (ADU²) of a pixel, rounding included (+1/12)."""
    lam = np.asarray(expected_photons, float)
    if cam.model == "poisson":
        return lam
    mean_e = cam.qe * lam + cam.spurious_charge
    if cam.model == "emccd":
        shot = 2.0 * mean_e * cam.em_gain**2
    else:
        shot = mean_e
    return (shot + cam.read_noise_e**2) / cam.e_per_adu**2 + 1.0 / 12.0
