"""The one camera model of smlmnet: ADU ↔ photons (the mean response) and the fit units.

A camera is described by a dict (or any object with these attributes, e.g.
:class:`smlmnet.simulate.config.CameraConfig`): ``model`` (``poisson`` | ``scmos`` | ``emccd``),
``baseline_adu``, ``e_per_adu`` (electrons per ADU at the ADC), ``em_gain`` (EMCCD),
``qe`` (photo-electrons per photon) and ``read_noise_e`` (electrons rms). Missing keys take
neutral values (no offset, unit gain, QE 1, no read noise); a camera with no keys at all is a
photon counter (``poisson``: pixel values are photons).

    photons = (ADU − baseline_adu) · e_per_adu / (em_gain · qe)
"""

from __future__ import annotations

import numpy as np

NEUTRAL_CAMERA = {"baseline_adu": 0.0, "e_per_adu": 1.0, "em_gain": 1.0, "qe": 1.0,
                  "read_noise_e": 0.0}
CAMERA_MODELS = ("poisson", "scmos", "emccd")


def camera_dict(cam) -> dict:
    """A complete camera dict from a dict, a config object or ``None`` (see module doc)."""
    if cam is None:
        cam = {}
    if not isinstance(cam, dict):
        cam = {k: getattr(cam, k) for k in ("model", *NEUTRAL_CAMERA) if hasattr(cam, k)}
    given = {k: v for k, v in cam.items() if v is not None}
    model = given.get("model") or ("scmos" if any(k in given for k in NEUTRAL_CAMERA)
                                   else "poisson")
    if model not in CAMERA_MODELS:
        raise ValueError(f"camera model must be one of {CAMERA_MODELS}; got {model!r}")
    out = {**NEUTRAL_CAMERA, **given, "model": model}
    if model != "emccd":
        out["em_gain"] = 1.0
    if model == "poisson":
        out.update(NEUTRAL_CAMERA)
    return out


def photons_per_adu(cam) -> float:
    """Photons per ADU above the baseline (the camera's mean response, inverted)."""
    c = camera_dict(cam)
    return float(c["e_per_adu"]) / (float(c["em_gain"]) * float(c["qe"]))


def adu_to_photons(frames: np.ndarray, cam) -> np.ndarray:
    """Invert the camera's mean response: photons = (ADU − baseline)·e⁻/ADU / (gain·QE),
    float32, same shape as ``frames``."""
    c = camera_dict(cam)
    x = np.asarray(frames, np.float32)
    if c["model"] == "poisson":
        return x
    return ((x - np.float32(c["baseline_adu"])) * np.float32(photons_per_adu(c))).astype(
        np.float32)


def fit_units(cam) -> dict:
    """How a likelihood fit turns ADU into its units (photo-electrons, or electrons/2 for
    EMCCD, whose excess noise factor 2 makes electrons/2 Poisson-like).

    Returns ``baseline`` (ADU), ``scale`` (photo-electrons per ADU), ``qe``, ``excess``
    (2 for EMCCD) and ``read_var`` (per-pixel read-noise variance in fit units, sCMOS).
    """
    c = camera_dict(cam)
    if c["model"] == "poisson":
        return {"baseline": 0.0, "scale": 1.0, "qe": 1.0, "excess": 1.0, "read_var": 0.0}
    gain = float(c["em_gain"])
    excess = 2.0 if c["model"] == "emccd" else 1.0
    read = float(c["read_noise_e"]) / gain
    return {"baseline": float(c["baseline_adu"]), "scale": float(c["e_per_adu"]) / gain,
            "qe": float(c["qe"]), "excess": excess, "read_var": read**2 / excess}
