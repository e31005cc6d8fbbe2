"""Sanity checks of raw pixel values: is the movie clipped, background-subtracted, in counts?

All functions take the ``(T, H, W)`` frames as stored (ADU or whatever the file holds) and
return plain Python values, so that the result can go to JSON unchanged.
"""

from __future__ import annotations

import numpy as np

#: Fraction of pixel values at one extreme above which a movie is called clipped.
CLIP_FRACTION = 1e-3
#: Full-scale values of common ADCs (8, 10, 12, 14, 16 bit).
ADC_FULL_SCALES = (255, 1023, 4095, 16383, 65535)


def full_scale(frames: np.ndarray, observed_max: float) -> float | None:
    """The ADC full-scale value if the data reaches one, else ``None``."""
    if frames.dtype == np.uint8:
        return 255.0
    if np.issubdtype(frames.dtype, np.integer) and observed_max in ADC_FULL_SCALES:
        return float(observed_max)
    return None


def value_checks(frames: np.ndarray) -> dict:
    """Statistics of the raw values that the flags are decided on.

    Returns a dict: ``dtype``, ``min``, ``max``, ``full_scale`` (or ``None``),
    ``frac_at_max`` and ``frac_at_zero`` (fractions of all pixel values),
    ``frac_negative``, ``frac_non_integer`` (0 for integer dtypes).
    """
    sample = np.asarray(frames)
    lo, hi = float(sample.min()), float(sample.max())
    fs = full_scale(sample, hi)
    n = sample.size
    out = {
        "dtype": str(sample.dtype), "min": lo, "max": hi, "full_scale": fs,
        "frac_at_max": float(np.count_nonzero(sample == fs) / n) if fs is not None else 0.0,
        "frac_at_zero": float(np.count_nonzero(sample == 0) / n),
        "frac_negative": float(np.count_nonzero(sample < 0) / n),
        "frac_non_integer": 0.0,
    }
    if np.issubdtype(sample.dtype, np.floating):
        out["frac_non_integer"] = float(np.mean(sample != np.round(sample)))
    return out


def flag_movie(checks: dict, median_pixel_var: float | None,
               median_background: float | None) -> tuple[dict, list[str]]:
    """Flags (bool) and human-readable warnings from :func:`value_checks`.

    Args:
        checks: output of :func:`value_checks`.
        median_pixel_var: median over background pixels of the temporal variance (value²).
        median_background: median over pixels of the temporal median (value units).

    Flags: ``clipped_high`` (≥ 0.1 % of the values at the ADC full scale), ``clipped_low``
    (≥ 0.1 % exactly 0 in integer data), ``background_subtracted`` (negative values, or a
    background level within a few noise standard deviations of 0 together with many zeros),
    ``not_in_counts`` (non-integer floats whose variance is below the 1/12 ADU² that
    integer rounding alone gives, so the values cannot be camera counts).
    """
    flags = {"clipped_high": False, "clipped_low": False, "background_subtracted": False,
             "not_in_counts": False}
    warns: list[str] = []
    if checks["full_scale"] is not None and checks["frac_at_max"] >= CLIP_FRACTION:
        flags["clipped_high"] = True
        warns.append(
            f"{100 * checks['frac_at_max']:.2g} % of the pixel values sit at the full scale "
            f"{checks['full_scale']:g}: the movie is clipped (saturated or converted to "
            f"{'8' if checks['full_scale'] == 255 else 'fewer'} bits); variance and photon "
            "counts of bright pixels are underestimated. Use the raw camera file if possible.")
    integer = not checks["dtype"].startswith("float")
    if integer and checks["frac_at_zero"] >= CLIP_FRACTION:
        flags["clipped_low"] = True
        warns.append(
            f"{100 * checks['frac_at_zero']:.2g} % of the pixel values are exactly 0: the "
            "movie is clipped at 0 (raw cameras add an offset so that noise never reaches 0).")
    sd = np.sqrt(median_pixel_var) if median_pixel_var and median_pixel_var > 0 else None
    near_zero = (median_background is not None and sd is not None
                 and abs(median_background) < 3 * sd)
    if checks["frac_negative"] > CLIP_FRACTION or (
            near_zero and (checks["frac_at_zero"] > 0.05 or checks["frac_negative"] > 0)):
        flags["background_subtracted"] = True
        warns.append(
            "the background sits at ~0 with many zero or negative values: the movie looks "
            "background- or offset-subtracted. Camera offset and gain cannot be measured "
            "from it; pass --baseline-adu 0 and the known gain, or use the raw movie.")
    if checks["frac_non_integer"] > 0.5 and (median_pixel_var is None
                                             or median_pixel_var < 1.0 / 12.0):
        flags["not_in_counts"] = True
        warns.append(
            "pixel values are non-integer floats whose temporal variance "
            f"({median_pixel_var:.3g}) is below the 1/12 that integer camera counts always "
            "have: the movie is not in camera counts (normalized or processed). Gain and "
            "photon numbers refer to these rescaled values and are not physical.")
    elif checks["frac_non_integer"] > 0.5:
        warns.append("pixel values are non-integer floats: not raw camera counts; the "
                     "estimated gain refers to the values as stored.")
    return flags, warns
