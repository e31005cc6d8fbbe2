"""Camera offset and gain from the movie itself (photon-transfer analysis).

Model (values in ADU, per pixel with constant expected light):

    var   = s · (mean − offset) + read_var,          s = F · g
    κ3    = c3 · s² · (mean − offset)                 (third cumulant)

with ``g`` the ADU per photo-electron (EMCCD: the effective value, EM gain included),
``F`` the excess noise factor (2 for an EMCCD, else 1), ``read_var`` the read-noise variance
(ADU², ADU rounding's 1/12 included) and ``c3`` = 1 for Poisson/sCMOS photo-electrons
(κ3 of Poisson(λ) is λ) and 3/2 for an EMCCD (a Gamma-amplified Poisson count: κ3 = 6λG³ while
var = 2λG², so κ3 = (3/2)·s²·(mean − offset)).

Why the third cumulant: the variance line alone only gives ``s`` and its intercept
``read_var − s·offset``, in which offset and read noise are degenerate. Gaussian read noise
and symmetric rounding add nothing to κ3, so κ3 = 0 exactly at the offset: its intercept gives
the offset without any assumption on the read noise. κ3 is noisy at high light
(SE ≈ sqrt(6·var³/n)), so it pins the offset only when some pixels see little light
(≲ 30 photo-electrons); otherwise the offset falls back to the metadata, or to the variance
intercept under a zero-read-noise assumption (a lower bound, flagged).

Samples near spots are excluded (per-frame band-pass detection, dilated in space and ±1 frame,
plus spots visible in the temporal mean) and each pixel's **temporal** moments are computed
from its remaining frames, so spatial structure of the background does not enter the variance.
Pixels are then pooled in bins of similar mean; per-bin standard errors are the empirical
spread of the per-pixel estimates / sqrt(n_pixels) (for Gaussian noise this is the textbook
SE of a variance from n samples, var·sqrt(2/(n−1))).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

QUANTIZATION_VAR_ADU2 = 1.0 / 12.0


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius**2


def background_sample_mask(frames: np.ndarray, sigma_px: float = 1.3, threshold: float = 5.0,
                           radius_px: int | None = None) -> np.ndarray:
    """``(T, H, W)`` bool: True where a sample is pure background (no spot nearby).

    A sample is excluded when a spot is detected within ``radius_px`` (default
    ``ceil(4σ)``) in its frame or the adjacent frames, or near a spot visible in the temporal
    mean image (immobile emitters). Detection: difference-of-Gaussians (σ, 3σ) above
    ``threshold`` × the local noise, the noise map being a robust temporal scale of the
    filtered movie (90th percentile of |deviation| / 1.645) median-filtered over 7 px (so
    spots do not inflate their own noise estimate).
    """
    f = np.asarray(frames, np.float32)
    T, H, W = f.shape
    radius = int(radius_px if radius_px is not None else np.ceil(4 * sigma_px))
    dog = (ndimage.gaussian_filter(f, (0, sigma_px, sigma_px), mode="nearest")
           - ndimage.gaussian_filter(f, (0, 3 * sigma_px, 3 * sigma_px), mode="nearest"))
    med = np.median(dog, axis=0)
    # 90th percentile of |deviation| / 1.645 (= σ for Gaussian noise): unlike the MAD it
    # follows the heavy tail of EMCCD noise at low light, so noise is not taken for spots
    scale = np.quantile(np.abs(dog - med), 0.9, axis=0) / 1.645
    size = min(7, H, W)
    noise = ndimage.median_filter(scale, size=size, mode="nearest")
    floor = max(float(np.median(noise)) * 1e-3, 1e-12)
    noise = np.maximum(noise, floor)
    spots = dog > threshold * noise[None]
    mean_dog = dog.mean(axis=0)
    static = mean_dog > threshold * noise / np.sqrt(T)  # spots visible in the mean image
    struct = np.zeros((3, 2 * radius + 1, 2 * radius + 1), bool)
    struct[:] = _disk(radius)[None]
    excluded = ndimage.binary_dilation(spots, structure=struct)
    excluded |= ndimage.binary_dilation(static, structure=_disk(radius))[None]
    return ~excluded


def pixel_moments(frames: np.ndarray, keep: np.ndarray) -> dict[str, np.ndarray]:
    """Per-pixel temporal moments over the kept samples.

    Returns ``(H, W)`` arrays: ``n`` (samples), ``mean`` (ADU), ``var`` (unbiased k-statistic
    k2, ADU²), ``k3`` (unbiased k-statistic of the third cumulant, ADU³).
    """
    x = np.asarray(frames, np.float64)
    w = keep.astype(np.float64)
    n = w.sum(axis=0)
    ref = np.median(x, axis=0)  # centre before powers: no loss of precision
    d = (x - ref[None]) * w
    with np.errstate(invalid="ignore", divide="ignore"):
        s1 = d.sum(axis=0) / n
        s2 = (d * d).sum(axis=0) / n
        s3 = (d * d * d).sum(axis=0) / n
        m2 = s2 - s1**2
        m3 = s3 - 3 * s1 * s2 + 2 * s1**3
        k2 = n / (n - 1) * m2
        k3 = n**2 / ((n - 1) * (n - 2)) * m3
    return {"n": n, "mean": ref + s1, "var": k2, "k3": k3}


@dataclass
class PhotonTransferFit:
    """Result of :func:`photon_transfer` (ADU units).

    ``slope`` = F·g (ADU per photo-electron × excess factor), ``intercept`` = read_var −
    slope·offset (ADU²); ``offset_k3`` and its SE from the third cumulant (``None`` when it
    could not be formed); ``bins`` holds the per-bin arrays used (mean, var, var_se, k3,
    k3_se, n_pixels, used).
    """

    slope: float | None = None
    slope_se: float | None = None
    intercept: float | None = None
    intercept_se: float | None = None
    r2: float | None = None
    chi2_red: float | None = None
    n_pixels: int = 0
    n_samples: int = 0
    n_bins_used: int = 0
    mean_range_adu: tuple[float, float] | None = None
    offset_k3: float | None = None
    offset_k3_se: float | None = None
    skew_ratio: float | None = None
    bins: dict = field(default_factory=dict)
    mean_map: np.ndarray | None = field(default=None, repr=False)
    median_var: float | None = None


def _wls(x, y, se):
    w = 1.0 / se**2
    X = np.stack([x, np.ones_like(x)], axis=1)
    A = X.T @ (X * w[:, None])
    cov = np.linalg.inv(A)
    beta = cov @ (X.T @ (w * y))
    res = y - X @ beta
    chi2 = float(np.sum(w * res**2) / max(len(x) - 2, 1))
    return beta, cov, res, chi2


def _bins_and_line(mean, var, k3, level, n_bins, min_pixels_per_bin):
    """Pool pixels into quantile bins of ``level`` and fit var = slope·mean + intercept by
    weighted least squares, dropping bins far off the line. Returns (bins, beta, cov, res,
    chi2, used) with ``beta`` None when there are too few bins."""
    order = np.argsort(level)
    nb = int(max(2, min(n_bins, len(level) // min_pixels_per_bin)))
    groups = np.array_split(order, nb)
    B = {k: np.empty(nb) for k in ("mean", "var", "var_se", "k3", "k3_se", "n_pixels")}
    for i, g in enumerate(groups):
        B["mean"][i] = mean[g].mean()
        B["var"][i] = var[g].mean()
        B["var_se"][i] = var[g].std(ddof=1) / np.sqrt(len(g))
        B["k3"][i] = k3[g].mean()
        B["k3_se"][i] = k3[g].std(ddof=1) / np.sqrt(len(g))
        B["n_pixels"][i] = len(g)
    B["var_se"] = np.maximum(B["var_se"], 1e-9 + 1e-6 * np.abs(B["var"]))
    used = np.ones(nb, bool)
    beta = cov = res = chi2 = None
    for _ in range(4):  # drop bins far off the line (spot contamination), refit
        if used.sum() < 3:
            return B, None, None, None, None, used
        beta, cov, res, chi2 = _wls(B["mean"][used], B["var"][used], B["var_se"][used])
        z = np.abs(B["var"] - (beta[0] * B["mean"] + beta[1])) / B["var_se"]
        new = z < max(5.0, 3 * np.sqrt(max(chi2, 1.0)))
        if used.sum() - new.sum() == 0 or new.sum() < max(3, nb // 2):
            break
        used = new
    beta, cov, res, chi2 = _wls(B["mean"][used], B["var"][used], B["var_se"][used])
    return B, beta, cov, res, chi2, used


def _model_cumulants(d, s, excess):
    """κ3, κ4, κ6 (ADU^j) of a compound-Poisson signal d ADU above the offset."""
    if excess > 1.5:  # EMCCD: exponential jumps of mean b = s/2 ADU
        b = s / 2.0
        return 6 * d * b**2, 24 * d * b**3, 720 * d * b**5
    return d * s**2, d * s**3, d * s**5


def photon_transfer(frames: np.ndarray, keep: np.ndarray, excess: float = 1.0,
                    clip_values: tuple = (), n_bins: int = 40,
                    min_pixels_per_bin: int = 20) -> PhotonTransferFit:
    """Fit var = slope·mean + intercept over bins of background pixels; offset from κ3.

    Args:
        frames: ``(T, H, W)`` raw values (ADU).
        keep: ``(T, H, W)`` bool, background samples (:func:`background_sample_mask`).
        excess: F (2 for EMCCD, else 1); sets c3 = 3/2 or 1 for the κ3 offset.
        clip_values: values at which the data was clipped; pixels that reach them are dropped
            (clipping truncates their distribution).
        n_bins: number of quantile bins of the per-pixel mean.
    """
    T = frames.shape[0]
    mom = pixel_moments(frames, keep)
    ok = (mom["n"] >= max(8, 0.25 * T)) & np.isfinite(mom["var"]) & np.isfinite(mom["k3"])
    for v in clip_values:
        ok &= ~np.any((np.asarray(frames) == v) & keep, axis=0)
    out = PhotonTransferFit(n_pixels=int(ok.sum()), n_samples=int(mom["n"][ok].sum()))
    out.mean_map = np.where(mom["n"] >= 3, mom["mean"], np.nan)
    if ok.any():
        out.median_var = float(np.median(mom["var"][ok]))
    if ok.sum() < 2 * min_pixels_per_bin:
        return out
    # Bin by the neighbours' mean, not the pixel's own: sorting by a noisy sample mean would
    # select pixels by their own noise and bias the slope (errors in variables).
    okf = ok.astype(np.float64)
    m0 = np.where(ok, mom["mean"], 0.0)
    k = 5
    num = ndimage.uniform_filter(m0 * okf, k, mode="nearest") * k * k - m0 * okf
    den = ndimage.uniform_filter(okf, k, mode="nearest") * k * k - okf
    ok &= den > 2.5
    level = num[ok] / den[ok]
    out.n_pixels, out.n_samples = int(ok.sum()), int(mom["n"][ok].sum())
    if ok.sum() < 2 * min_pixels_per_bin:
        return out
    mean, var, k3 = mom["mean"][ok], mom["var"][ok], mom["k3"][ok]
    n_i = mom["n"][ok]
    B, beta, cov, res, chi2, used = _bins_and_line(mean, var, k3, level, n_bins,
                                                   min_pixels_per_bin)
    if beta is not None and beta[0] > 0:
        # drop single pixels whose variance is > 6 SD above the line (spot remnants, e.g.
        # tails of spots just outside the image), SD from the model: (κ4 + 2κ2²)/(n − 1)
        s0, c0 = beta
        o0 = (QUANTIZATION_VAR_ADU2 - c0) / s0
        k2m = np.maximum(s0 * mean + c0, QUANTIZATION_VAR_ADU2)
        _, k4m, _ = _model_cumulants(np.clip(mean - o0, 0, None), s0, excess)
        z = (var - k2m) / np.sqrt((np.abs(k4m) + 2 * k2m**2) / (n_i - 1))
        inl = z < 6.0
        if (~inl).any() and inl.sum() >= 2 * min_pixels_per_bin:
            mean, var, k3, n_i, level = mean[inl], var[inl], k3[inl], n_i[inl], level[inl]
            out.n_pixels, out.n_samples = int(inl.sum()), int(n_i.sum())
            B, beta, cov, res, chi2, used = _bins_and_line(mean, var, k3, level, n_bins,
                                                           min_pixels_per_bin)
    B["used"] = used
    out.bins = {k: v.tolist() for k, v in B.items()}
    out.mean_range_adu = (float(B["mean"].min()), float(B["mean"].max()))
    if beta is None:
        return out
    scale = max(chi2, 1.0)
    out.slope, out.intercept = float(beta[0]), float(beta[1])
    out.slope_se = float(np.sqrt(cov[0, 0] * scale))
    out.intercept_se = float(np.sqrt(cov[1, 1] * scale))
    out.chi2_red = chi2
    yv = B["var"][used]
    out.r2 = float(1 - np.sum(res**2) / max(np.sum((yv - yv.mean()) ** 2), 1e-300))
    out.n_bins_used = int(used.sum())
    s = out.slope
    if s <= 0:
        return out
    # --- offset from the third cumulant: k3 = c3 s² (mean − offset), pixel by pixel
    # (bins would mix dim pixels, which pin the offset, with brighter ones whose κ3 is far
    # noisier). Each pixel gives o_i = mean_i − k3_i / (c3 s²); weights 1/Var(o_i) from the
    # model's cumulants at the pixel's mean (not its noisy k2, k3):
    # Var(k3) ≈ (κ6 + 9κ4κ2 + 9κ3² + 6κ2³)/n, with κj = d·u_j for a compound Poisson signal
    # (d = mean − offset; u_j = s^(j−1) for Poisson electrons, j!·(s/2)^(j−1) for EMCCD).
    # Weighting by the pixel's own mean biases the offset by ≈ −3s/n ADU (sCMOS) or
    # ≈ −κ2/(n·d) (EMCCD), a few 0.01 ADU for n ≈ 100 frames; the neighbours' mean would be
    # unbiased but is a poor proxy at sharp background edges (e.g. the image border).
    # The SE is the sandwich (empirical) one, valid whatever the noise distribution.
    c3 = 1.5 if excess > 1.5 else 1.0
    A = c3 * s * s
    o0 = (QUANTIZATION_VAR_ADU2 - out.intercept) / s  # lower bound, for the weights only
    d = np.clip(mean - o0, 0.0, None)
    k3m, k4m, k6m = _model_cumulants(d, s, excess)
    k2m = np.maximum(s * mean + out.intercept, QUANTIZATION_VAR_ADU2)
    var_o = (k6m + 9 * k4m * k2m + 9 * k3m**2 + 6 * k2m**3) / n_i / A**2
    o_i = mean - k3 / A
    w = 1.0 / var_o
    sel = np.isfinite(o_i) & np.isfinite(w)
    for _ in range(3):  # robust: drop pixels > 6 model SDs away (spot remnants)
        if sel.sum() < 3:
            break
        o = float(np.sum(w[sel] * o_i[sel]) / w[sel].sum())
        new_sel = sel & (np.abs(o_i - o) < 6 * np.sqrt(var_o))
        if new_sel.sum() == sel.sum():
            break
        sel = new_sel
    if sel.sum() >= 3:
        ws = w[sel]
        o = float(np.sum(ws * o_i[sel]) / ws.sum())
        stat = float(np.sqrt(np.sum(ws**2 * (o_i[sel] - o) ** 2)) / ws.sum())
        lever = float(np.sum(ws * (mean[sel] - o)) / ws.sum())
        syst = abs(lever) * 2 * out.slope_se / s  # from the uncertainty of s
        out.offset_k3, out.offset_k3_se = o, float(np.hypot(stat, syst))
    k3_se = np.maximum(B["k3_se"], 1e-12)
    sel = used & np.isfinite(B["k3"])
    if sel.sum() >= 3:  # free fit of k3 vs mean: slope / s² = c3 (1 sCMOS, 1.5 EMCCD)
        b3, _, _, _ = _wls(B["mean"][sel], B["k3"][sel], k3_se[sel])
        out.skew_ratio = float(b3[0] / (s * s))
    return out
