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
    filtered movie (90th percentile of |deviation| / 1.645) median-filtered over ~15 px (so spots do not inflate their own noise estimate).
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
    size = min(15, H, W)
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
    order = np.argsort(level)
    nb = int(max(2, min(n_bins, ok.sum() // min_pixels_per_bin)))
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
    beta = cov = None
    for _ in range(4):  # drop bins far off the line (spot contamination), refit
        if used.sum() < 2:
            break
        beta, cov, res, chi2 = _wls(B["mean"][used], B["var"][used], B["var_se"][used])
        z = np.abs(B["var"] - (beta[0] * B["mean"] + beta[1])) / B["var_se"]
        new = z < max(5.0, 3 * np.sqrt(max(chi2, 1.0)))
        if used.sum() - new.sum() == 0 or new.sum() < max(3, nb // 2):
            break
        used = new
    B["used"] = used
    out.bins = {k: v.tolist() for k, v in B.items()}
    out.mean_range_adu = (float(B["mean"].min()), float(B["mean"].max()))
    if beta is None or used.sum() < 3:
        return out
    beta, cov, res, chi2 = _wls(B["mean"][used], B["var"][used], B["var_se"][used])
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
    # --- offset from the third cumulant: k3 = c3 s² (mean − offset)
    c3 = 1.5 if excess > 1.5 else 1.0
    A = c3 * s * s
    k3_se = np.maximum(B["k3_se"], 1e-12)
    o_b = B["mean"] - B["k3"] / A
    o_se = k3_se / A
    sel = used & np.isfinite(o_b)
    if sel.sum() >= 1:
        w = 1 / o_se[sel] ** 2
        o = float(np.sum(w * o_b[sel]) / w.sum())
        # drop bins inconsistent with the pooled value (outliers), recompute
        good = sel & (np.abs(o_b - o) < 5 * o_se + 1e-9)
        if good.sum() >= 1:
            w = 1 / o_se[good] ** 2
            o = float(np.sum(w * o_b[good]) / w.sum())
            stat = float(np.sqrt(1 / w.sum()))
            lever = float(np.sum(w * (B["mean"][good] - o)) / w.sum())
            syst = abs(lever) * 2 * out.slope_se / s  # from the uncertainty of s
            out.offset_k3, out.offset_k3_se = o, float(np.hypot(stat, syst))
        # free fit of k3 vs mean: its slope / s² is c3 (1 Poisson/sCMOS, 1.5 EMCCD)
        if sel.sum() >= 3:
            b3, _, _, _ = _wls(B["mean"][sel], B["k3"][sel], k3_se[sel])
            out.skew_ratio = float(b3[0] / (s * s))
    return out
