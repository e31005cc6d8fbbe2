"""Calibrate a learned localizer's uncertainties on simulations of the movie's own regime.

A network's σ scale is tuned (at export) on its training distribution, whose average, for a
generalist, is dominated by regimes a given movie may not have (blur, overlaps, odd PSFs).
``smlmnet analyze`` instead simulates a few short movies *like the analyzed one*
(:meth:`Calibration.to_simulation_preset`: its pixel size, PSF σ, camera, background and
photons, plus :func:`regime_overrides`: the density the network finds and dim emitters),
localizes them with the raw σ̂ and takes the scale ``s`` that puts 68.27 % of the per-axis
normalized errors ``|error| / σ̂`` below ``s``: exactly the 1σ coverage a user reads off the
uncertainty column.

What the simulation cannot know (the true PSF shape, motion the calibration does not measure)
is not in ``s``: benchmarks/results/transfer shows how it holds on other renderers' movies.
The detection threshold is *not* retuned this way: tried, the simulation's best threshold lost
2–5 Jaccard points on the external movies (it is kept from the model's validation split).
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

#: the fraction of |z| below 1 for a calibrated Gaussian σ
ONE_SIGMA_COVERAGE = 0.6827


def calibration_from_dict(d: dict):
    """A :class:`~smlmnet.calibrate.calibration.Calibration` from its ``to_dict()``."""
    from smlmnet.calibrate.calibration import Calibration

    names = {f.name for f in dataclasses.fields(Calibration)}
    return Calibration(**{k: copy.deepcopy(v) for k, v in d.items() if k in names})


def regime_overrides(locs, movie_shape, pixel_size_nm: float, calibration: dict,
                     base_preset: str = "decode_sptpalm") -> dict:
    """Preset overrides that make the simulation as hard as the movie, from what the movie's
    self-calibration underestimates: the emitter density (from ``locs``, the localizer's own
    detections: the calibration counts only fittable isolated spots) and dim emitters (photons
    from ``UNFITTED_DIM_FACTOR`` × the fitted 10th percentile, log-uniform, as
    ``train-localizer --like`` does).
    ``movie_shape`` ``(T, H, W)``."""
    from smlmnet.simulate import load_config

    T, H, W = movie_shape
    area_um2 = H * W * (pixel_size_nm / 1000.0) ** 2
    ph = load_config(base_preset).photophysics
    on, off = ph.blink_on_frames, ph.blink_off_frames
    if calibration.get("on_time_mean_frames"):
        on = off = 1.0  # to_simulation_preset's blinking: equal on and off times
    on_fraction = on / (on + off) if on and off else 1.0
    out: dict = {"particles": {"density_per_um2": float(len(locs) / max(T, 1) / area_um2
                                                        / on_fraction), "n": None}}
    from smlmnet.calibrate.calibration import UNFITTED_DIM_FACTOR

    pct = calibration.get("photons_percentiles") or {}
    if pct.get("p10") and pct.get("p90"):
        lo = max(1.0, float(pct["p10"]) * UNFITTED_DIM_FACTOR)
        out["photophysics"] = {"photons_per_frame": {
            "low": lo, "high": max(lo * 1.01, float(pct["p90"])), "log": True}}
    return out


def matched_uncertainty_scale(localizer, calibration: dict, *, frames: int = 30,
                              seeds=(1, 2), max_side_px: int = 128, min_matched: int = 200,
                              tolerance_nm: float = 250.0, base_preset: str = "decode_sptpalm",
                              camera_known: bool = True, overrides: dict | None = None) -> dict:
    """The σ scale of ``localizer`` (a DECODE-style localizer) for a movie with this
    ``calibration`` (:meth:`Calibration.to_dict`).

    Simulates ``len(seeds)`` movies of ``frames`` frames at the movie's size (at most
    ``max_side_px`` per side; densities are per µm², so cropping keeps them) from the
    calibration's preset with ``overrides`` (e.g. :func:`regime_overrides`), localizes them at
    the localizer's own threshold with σ̂ unscaled and matches them to the truth within
    ``tolerance_nm``. ``camera_known``: False when the movie is analyzed without a camera
    (pixel values as photons): the simulated movies are then analyzed the same way.

    Returns a strict-JSON dict: ``scale`` (None when fewer than ``min_matched`` detections
    matched or the simulation failed: keep the model's own), ``matched``, ``true``, ``seeds``,
    ``frames``, ``fov_px``, ``method`` and, on failure, ``error``.
    """
    from smlmnet.metrics.localization import match_per_frame, normalized_errors
    from smlmnet.simulate import SimulationConfig, simulate

    out = {"method": (f"68.27 % quantile of |error|/σ̂ per axis on {len(seeds)} simulated "
                      f"movies like this one (smlmnet.calibrate preset, base {base_preset}, "
                      "density and dim emitters from the network's detections)"),
           "seeds": [int(s) for s in seeds], "frames": int(frames), "scale": None,
           "matched": 0, "true": 0}
    try:
        preset = calibration_from_dict(calibration).to_simulation_preset(base=base_preset)
    except Exception as err:  # noqa: BLE001 - the model's own scale is the fallback
        out["error"] = f"no simulation preset from the calibration: {err}"
        return out
    if overrides:
        from smlmnet.calibrate.calibration import _deep_update

        _deep_update(preset, copy.deepcopy(overrides))
    H, W = preset["fov"]["shape_px"]
    preset["fov"]["shape_px"] = [int(min(H, max_side_px)), int(min(W, max_side_px))]
    out["fov_px"] = preset["fov"]["shape_px"]
    particles = preset.get("particles") or {}
    if particles.get("n") and particles.get("density_per_um2") is None:
        particles["n"] = max(1, int(round(particles["n"] * preset["fov"]["shape_px"][0]
                                          * preset["fov"]["shape_px"][1] / (H * W))))
    preset["n_frames"] = int(frames)
    raw = copy.copy(localizer)
    raw.uncertainty_scale, raw.uncertainty_scale_by_p = 1.0, None
    z = []
    for seed in seeds:
        preset["seed"] = int(seed)
        try:
            sim = simulate(SimulationConfig.from_dict(copy.deepcopy(preset)))
        except Exception as err:  # noqa: BLE001
            out["error"] = f"simulation failed: {err}"
            return out
        truth = sim.emitters[sim.emitters["on"]].reset_index(drop=True)
        movie = sim.movie if camera_known else dataclasses.replace(sim.movie, camera=None)
        est = raw.localize(movie)
        out["true"] += int(len(truth))
        pairs = match_per_frame(truth, est, tolerance_nm)
        if len(pairs):
            z.append(normalized_errors(est, pairs))
    z = np.concatenate(z) if z else np.array([])
    out["matched"] = int(len(z) // 2)
    if out["matched"] >= min_matched:
        out["scale"] = round(float(np.quantile(z, ONE_SIGMA_COVERAGE)), 4)
    else:
        out["error"] = f"only {out['matched']} matched detections (< {min_matched})"
    return out
