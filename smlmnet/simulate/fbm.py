"""Exact fractional Gaussian noise by circulant embedding (Davies & Harte 1987).

For anomalous exponent α = 2H the increments of fBM on a grid of spacing Δt have the
autocovariance (per dimension, MSD(τ) = 2·K·τ^α per dimension)

    γ(k) = K Δt^α (|k+1|^α − 2|k|^α + |k−1|^α),

sampled here exactly in O(T log T) per trajectory. One complex FFT yields two independent
series (real and imaginary parts), used as the x and y components.
"""

from __future__ import annotations

import numpy as np
import scipy.fft


def fgn_autocovariance(alpha: np.ndarray, n_lags: int) -> np.ndarray:
    """Unit fractional Gaussian noise autocovariance ½(|k+1|^α − 2|k|^α + |k−1|^α).

    Args:
        alpha: ``(N,)`` exponents in (0, 2).
        n_lags: lags 0..n_lags−1 are returned.
    Returns:
        ``(N, n_lags)`` array; column 0 is 1.
    """
    k = np.arange(n_lags, dtype=float)[None, :]
    a = np.asarray(alpha, dtype=float)[:, None]
    return 0.5 * (np.abs(k + 1) ** a - 2 * np.abs(k) ** a + np.abs(k - 1) ** a)


FGN_BLOCK = 256  # particles per circulant-embedding batch (fixes the order of the draws)


def fgn_2d(rng: np.random.Generator, alpha: np.ndarray, n_steps: int,
           chunk: int = FGN_BLOCK) -> np.ndarray:
    """Two-dimensional unit fGn: ``(N, n_steps, 2)`` with Var = 1 per component and step.

    Each particle may have its own α. Multiply by ``sqrt(2 K Δt^α)`` to get the increments of
    fBM with MSD = 2·d·K·τ^α in d = 2 dimensions.
    """
    alpha = np.asarray(alpha, dtype=float).reshape(-1)
    n = alpha.size
    out = np.empty((n, n_steps, 2))
    if n == 0 or n_steps == 0:
        return out
    brownian = np.isclose(alpha, 1.0, rtol=0, atol=1e-12)
    if brownian.any():
        out[brownian] = rng.standard_normal((int(brownian.sum()), n_steps, 2))
    idx = np.flatnonzero(~brownian)
    m = max(n_steps, 2)
    size = 2 * m
    for start in range(0, idx.size, chunk):
        sel = idx[start:start + chunk]
        gamma = fgn_autocovariance(alpha[sel], m + 1)
        row = np.concatenate([gamma, gamma[:, m - 1:0:-1]], axis=1)  # (n, 2m) circulant row
        eig = scipy.fft.fft(row, axis=1).real
        eig = np.clip(eig, 0.0, None)  # eigenvalues are >= 0 for fGn; clip round-off
        z = rng.standard_normal((sel.size, size)) + 1j * rng.standard_normal((sel.size, size))
        y = scipy.fft.fft(np.sqrt(eig / size) * z, axis=1)[:, :n_steps]
        out[sel, :, 0] = y.real
        out[sel, :, 1] = y.imag
    return out


def fgn_row(alpha: float, n_steps: int, z_real: np.ndarray, z_imag: np.ndarray) -> np.ndarray:
    """One particle's complex fGn series ``(n_steps,)`` (x = real, y = imaginary part) from its
    ``2·max(n_steps, 2)`` standard normals: the row :func:`fgn_2d` computes for that particle
    from the same numbers (used to generate long movies one particle at a time)."""
    m = max(n_steps, 2)
    size = 2 * m
    gamma = fgn_autocovariance(np.array([alpha], float), m + 1)
    row = np.concatenate([gamma, gamma[:, m - 1:0:-1]], axis=1)
    eig = np.clip(scipy.fft.fft(row, axis=1).real, 0.0, None)
    z = z_real[None, :] + 1j * z_imag[None, :]
    return scipy.fft.fft(np.sqrt(eig / size) * z, axis=1)[0, :n_steps]
