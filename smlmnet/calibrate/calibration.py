"""Calibrate a fluorescence movie from itself: camera, PSF, background, emitters.

:func:`calibrate_movie` runs the photon-transfer analysis
(:mod:`smlmnet.calibrate.photon_transfer`), the raw-value checks
(:mod:`smlmnet.calibrate.checks`) and the spot statistics (:mod:`smlmnet.calibrate.spots`)
and returns a :class:`Calibration`: every value in physical units with the unit in its name,
where it came from (``*_source``: ``movie``, ``metadata``, ``user``, ``assumed``) and how
reliable it is. :meth:`Calibration.to_simulation_preset` turns it into a simulation config so
that simulating "like this movie" is one call.

Gain conventions: ``gain_adu_per_e`` is ADU per photo-electron (for an EMCCD the effective
value, EM gain included); ``e_per_adu`` = 1/gain (EMCCD: e_per_adu_of_the_ADC / em_gain).
Photons = photo-electrons / QE; QE cannot be measured from a movie, it comes from the
metadata or is assumed to be 1 (photons are then photo-electrons).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from smlmnet.calibrate.checks import flag_movie, value_checks
from smlmnet.calibrate.photon_transfer import (
    QUANTIZATION_VAR_ADU2,
    background_sample_mask,
    photon_transfer,
)
from smlmnet.calibrate.spots import localize_for_calibration, spot_statistics
from smlmnet.data.contracts import Movie
from smlmnet.io.jsonio import to_json_value as _jsonable
from smlmnet.localize.base import DEFAULT_PSF_SIGMA_NM

#: Offset from the third cumulant is used when its standard error is below this (ADU): the
#: alternative (variance intercept) is biased by the unknown read noise, read_var/slope ADU,
#: which is several ADU for a typical sCMOS at 2 ADU/e⁻.
MAX_OFFSET_SE_ADU = 3.0
#: Fitted photon counts are those of spots bright enough to be found and fitted; dim spots and
#: partial-frame blinks escape, so "like this movie" simulations reach this factor × the fitted
#: 10th percentile (``train-localizer --like``, :mod:`smlmnet.calibrate.matched`).
UNFITTED_DIM_FACTOR = 0.2
#: Gain from the photon-transfer slope is used when its relative standard error is below.
MAX_GAIN_REL_SE = 0.1


@dataclass
class Calibration:
    """Calibration of one movie. All values in the units their names carry; ``None`` =
    not identifiable from this movie (see ``warnings``)."""

    # camera
    camera_model: str = "scmos"
    camera_model_source: str = "assumed"
    excess_factor: float = 1.0
    gain_adu_per_e: float | None = None
    e_per_adu: float | None = None
    gain_rel_se: float | None = None
    gain_source: str = "unidentifiable"
    gain_reliability: str = "none"
    offset_adu: float | None = None
    offset_se_adu: float | None = None
    offset_bounds_adu: list | None = None
    offset_source: str = "unidentifiable"
    offset_reliability: str = "none"
    read_noise_adu: float | None = None
    read_var_adu2: float | None = None
    read_var_se_adu2: float | None = None
    read_noise_e: float | None = None
    qe: float = 1.0
    qe_source: str = "assumed"
    photon_transfer: dict = field(default_factory=dict)
    metadata_camera: dict = field(default_factory=dict)
    # geometry and timing
    movie_shape: list = field(default_factory=list)
    dtype: str = ""
    bit_depth: int = 16
    pixel_size_nm: float = 100.0
    pixel_size_source: str = "assumed"
    frame_time_s: float = 0.02
    frame_time_source: str = "assumed"
    exposure_time_s: float | None = None
    # PSF
    psf_sigma_nm: float | None = None
    psf_sigma_se_nm: float | None = None
    psf_sigma_spread_nm: float | None = None
    n_psf_spots: int = 0
    n_psf_molecules: int = 0
    psf_sigma_selection: str = "none"
    psf_sigma_source: str = "unidentifiable"
    psf_sigma_metadata_nm: float | None = None
    # background and emitters
    background_photons_per_px: float | None = None
    background_percentiles_photons_per_px: dict | None = None
    photons_percentiles: dict | None = None
    n_localizations: int = 0
    density_per_um2_per_frame: float | None = None
    on_time_mean_frames: float | None = None
    n_runs: int = 0
    # checks
    value_checks: dict = field(default_factory=dict)
    flags: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    #: arrays for the figure (not written to JSON)
    diagnostics: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ export
    def to_dict(self) -> dict:
        """Strict-JSON dict (NaN/inf → None, numpy → Python), diagnostics left out."""
        d = {k: v for k, v in asdict(self).items() if k != "diagnostics"}
        return _jsonable(d)

    def simulation_overrides(self, base: str = "sptpalm_membrane") -> dict:
        """Nested overrides of the ``base`` preset that describe this movie (see
        :meth:`to_simulation_preset`)."""
        from smlmnet.simulate import load_config

        base_cfg = load_config(base)
        T, H, W = self.movie_shape
        o: dict = {
            "n_frames": int(T), "frame_time_s": float(self.frame_time_s),
            "fov": {"shape_px": [int(H), int(W)], "pixel_size_nm": float(self.pixel_size_nm)},
        }
        if self.exposure_time_s is not None and self.exposure_time_s > 0:
            o["exposure_time_s"] = float(self.exposure_time_s)
        if self.psf_sigma_nm is not None:
            o["psf"] = {"sigma_nm": round(float(self.psf_sigma_nm), 2)}
        cam: dict = {"model": self.camera_model, "qe": float(self.qe),
                     "bit_depth": int(self.bit_depth)}
        if self.camera_model != "poisson":
            em = 1.0
            if self.camera_model == "emccd":
                em = float(self.metadata_camera.get("em_gain") or base_cfg.camera.em_gain)
            cam["em_gain"] = em
            if self.e_per_adu is not None:
                cam["e_per_adu"] = float(self.e_per_adu * em)
            if self.offset_adu is not None:
                cam["baseline_adu"] = max(0.0, round(float(self.offset_adu), 3))
            if self.read_noise_adu is not None and self.e_per_adu is not None:
                cam["read_noise_e"] = float(self.read_noise_adu * self.e_per_adu * em)
            cam["spurious_charge"] = 0.0
        o["camera"] = cam
        if self.background_photons_per_px is not None:
            bg: dict = {"photons_per_px": max(0.0, float(self.background_photons_per_px))}
            p = self.background_percentiles_photons_per_px or {}
            lo, hi = p.get("p5"), p.get("p95")
            if lo is not None and hi is not None and lo > 0 and hi / lo > 1.2:
                bg.update({"pattern": "blobs", "variation": float(min(hi / lo - 1, 5.0))})
            else:
                bg.update({"pattern": "uniform", "variation": 0.0})
            o["background"] = bg
        ph: dict = {}
        if self.photons_percentiles:
            lo = max(1.0, float(self.photons_percentiles["p10"]))
            hi = max(lo * 1.001, float(self.photons_percentiles["p90"]))
            ph.update({"photons_per_frame": {"low": lo, "high": hi}, "photons_frame_cv": 0.0})
        if self.on_time_mean_frames is not None:
            # two-state blinking with equal mean on and off times: half the emitters are on
            on = max(1.0, float(self.on_time_mean_frames))
            ph.update({"activation": "start", "bleach_lifetime_frames": None,
                       "blink_on_frames": on, "blink_off_frames": on})
            if self.density_per_um2_per_frame is not None:
                o["particles"] = {"density_per_um2": float(2 * self.density_per_um2_per_frame),
                                  "n": None}
        if ph:
            o["photophysics"] = ph
        return o

    def to_simulation_preset(self, base: str = "sptpalm_membrane") -> dict:
        """A full simulation config (YAML-able dict) that ``smlmnet.simulate.load_config``
        accepts once written to a ``.yaml`` file: the ``base`` preset (motion models etc.)
        with this movie's pixel size, timing, camera, PSF σ, background level and spatial
        variation, photon distribution (uniform between the 10th and 90th percentiles of the
        detected spots), on-time (blinking with equal on/off means) and density (localizations
        per µm² per frame ×2, since half the emitters are on)."""
        from smlmnet.simulate import SimulationConfig, load_config

        d = load_config(base).to_dict()
        _deep_update(d, self.simulation_overrides(base))
        SimulationConfig.from_dict(copy.deepcopy(d))  # validate: raise here, not later
        return _jsonable(d)

    def summary(self) -> str:
        """A few human-readable lines."""
        f = _fmt
        lines = [
            f"camera {self.camera_model} ({self.camera_model_source}); gain "
            f"{f(self.e_per_adu, '.4g')} e-/ADU [{self.gain_source}, {self.gain_reliability}]"
            f", offset {f(self.offset_adu, '.2f')} ± {f(self.offset_se_adu, '.2f')} ADU "
            f"[{self.offset_source}, {self.offset_reliability}], read noise "
            f"{f(self.read_noise_adu, '.3g')} ADU",
            f"PSF sigma {f(self.psf_sigma_nm, '.1f')} ± {f(self.psf_sigma_se_nm, '.1f')} nm "
            f"from {self.n_psf_spots} fits of {self.n_psf_molecules} molecules "
            f"[{self.psf_sigma_source}]; pixel "
            f"{self.pixel_size_nm:g} nm ({self.pixel_size_source}), frame "
            f"{self.frame_time_s:g} s ({self.frame_time_source})",
            f"background {f(self.background_photons_per_px, '.3g')} photons/px; spots: median "
            f"{f((self.photons_percentiles or {}).get('p50'), '.0f')} photons, density "
            f"{f(self.density_per_um2_per_frame, '.3g')} /um^2/frame, mean on-time "
            f"{f(self.on_time_mean_frames, '.2f')} frames",
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def _deep_update(d: dict, u: dict) -> None:
    for k, v in u.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict) and k not in (
                "photons_per_frame",):
            _deep_update(d[k], v)
        else:
            d[k] = v


def calibrate_movie(movie: Movie, camera: str | None = None, *,
                    psf_sigma_nm_hint: float | None = None, baseline_adu: float | None = None,
                    metadata: dict | None = None, max_frames: int = 400,
                    max_frames_spots: int = 200, max_samples: int = 20_000_000,
                    sources: dict | None = None) -> Calibration:
    """Calibrate ``movie`` from its own pixels.

    Args:
        movie: the raw movie (ADU); ``movie.camera`` (e.g. from the TIFF metadata) is used
            for what the pixels cannot tell (EM gain, QE) and as a fallback.
        camera: ``"emccd"``, ``"scmos"`` or ``"poisson"``; default the metadata's model, else
            sCMOS (the EMCCD excess factor F = 2 changes the gain by 2).
        psf_sigma_nm_hint: start value of the PSF σ (default: metadata, else 130 nm).
        baseline_adu: a known offset (ADU); it then overrides the estimate.
        metadata: extra TIFF metadata (``psf_sigma_nm`` ...), e.g. from
            :func:`smlmnet.io.tiff.read_tiff_calibration`.
        max_frames: frames used for the photon-transfer analysis (the first ones), at most
            ``max_samples`` pixel values in all (≈ 8 bytes × 4 each in memory).
        max_frames_spots: frames fitted for the spot statistics.
        sources: where pixel size / frame time came from (``{"pixel_size_nm": "metadata"}``).
    """
    metadata = dict(metadata or {})
    sources = dict(sources or {})
    meta_cam = dict(movie.camera or {})
    cal = Calibration(metadata_camera=_jsonable(meta_cam))
    T, H, W = movie.shape
    # memory: the analysis holds a few float arrays of the frames used
    n_use = int(max(16, min(max_frames, max_samples // (H * W))))
    frames = np.asarray(movie.frames[:n_use])
    cal.movie_shape = [int(T), int(H), int(W)]
    cal.dtype = str(frames.dtype)
    cal.bit_depth = 8 if frames.dtype == np.uint8 else 16
    cal.pixel_size_nm, cal.frame_time_s = float(movie.pixel_size_nm), float(movie.frame_time_s)
    cal.pixel_size_source = sources.get("pixel_size_nm", "metadata")
    cal.frame_time_source = sources.get("frame_time_s", "metadata")
    cal.exposure_time_s = movie.exposure_time_s
    warns: list[str] = []

    # --- camera model and QE
    if camera:
        cal.camera_model, cal.camera_model_source = camera, "user"
    elif meta_cam.get("model"):
        cal.camera_model, cal.camera_model_source = str(meta_cam["model"]), "metadata"
    else:
        cal.camera_model, cal.camera_model_source = "scmos", "assumed"
    F = 2.0 if cal.camera_model == "emccd" else 1.0
    cal.excess_factor = F
    if meta_cam.get("qe"):
        cal.qe, cal.qe_source = float(meta_cam["qe"]), "metadata"

    # --- PSF σ start value
    meta_sigma = metadata.get("psf_sigma_nm") or meta_cam.get("psf_sigma_nm")
    cal.psf_sigma_metadata_nm = float(meta_sigma) if meta_sigma else None
    sigma_guess = float(psf_sigma_nm_hint or meta_sigma or DEFAULT_PSF_SIGMA_NM)

    # --- raw values, photon transfer
    checks = value_checks(frames)
    cal.value_checks = checks
    clip_values = []
    if checks["full_scale"] is not None:
        clip_values.append(checks["full_scale"])
    if not checks["dtype"].startswith("float"):
        clip_values.append(0)
    keep = background_sample_mask(frames, sigma_guess / movie.pixel_size_nm)
    pt = photon_transfer(frames, keep, excess=F, clip_values=tuple(clip_values))
    median_bg = float(np.nanmedian(pt.mean_map)) if pt.mean_map is not None else None
    med_var = pt.median_var
    if med_var is None:  # every pixel clipped: use all samples
        med_var = float(np.median(np.var(frames, axis=0, ddof=1)))
    cal.flags, flag_warns = flag_movie(checks, med_var, median_bg)
    warns += flag_warns
    cal.photon_transfer = {
        "n_pixels": pt.n_pixels, "n_samples": pt.n_samples,
        "fraction_background_samples": float(keep.mean()), "n_bins_used": pt.n_bins_used,
        "mean_range_adu": list(pt.mean_range_adu) if pt.mean_range_adu else None,
        "lever_arm_adu": (pt.mean_range_adu[1] - pt.mean_range_adu[0])
        if pt.mean_range_adu else None,
        "slope_adu": pt.slope, "slope_se_adu": pt.slope_se, "intercept_adu2": pt.intercept,
        "intercept_se_adu2": pt.intercept_se, "r2": pt.r2, "chi2_red": pt.chi2_red,
        "offset_third_cumulant_adu": pt.offset_k3, "offset_third_cumulant_se_adu":
        pt.offset_k3_se, "third_cumulant_ratio": pt.skew_ratio,
        "third_cumulant_ratio_expected": 1.5 if F > 1.5 else 1.0,
        "n_frames_used": int(len(frames)),
        "bins": pt.bins,
    }
    cal.diagnostics["bins"] = pt.bins

    # --- gain
    s = pt.slope
    slope_ok = s is not None and s > 0 and pt.slope_se is not None
    rel = pt.slope_se / s if slope_ok else None
    gain_measured = bool(slope_ok and rel <= MAX_GAIN_REL_SE)
    if gain_measured:
        cal.gain_adu_per_e = s / F
        cal.gain_rel_se = rel
        cal.gain_source = "movie (photon transfer)"
        cal.gain_reliability = "good" if rel <= 0.03 else "fair"
    elif meta_cam.get("e_per_adu") and cal.camera_model != "poisson":
        em = float(meta_cam.get("em_gain", 1.0)) if cal.camera_model == "emccd" else 1.0
        cal.gain_adu_per_e = em / float(meta_cam["e_per_adu"])
        cal.gain_source, cal.gain_reliability = "metadata", "as stated"
        warns.append(
            "the background does not vary enough (lever arm "
            f"{_fmt(cal.photon_transfer['lever_arm_adu'], '.3g')} ADU) to measure the gain; "
            "using the metadata's gain")
    elif cal.camera_model == "poisson":
        cal.gain_adu_per_e, cal.gain_source, cal.gain_reliability = 1.0, "assumed", "assumed"
    else:
        warns.append(
            "gain unidentifiable: the background does not vary enough over the image to "
            "measure a variance-mean slope (need regions with different background levels); "
            "pass --e-per-adu (and --em-gain for an EMCCD)")
    if cal.gain_adu_per_e is not None:
        cal.e_per_adu = 1.0 / cal.gain_adu_per_e
    if gain_measured and pt.skew_ratio is not None:
        expect = 1.5 if F > 1.5 else 1.0
        other = 1.0 if F > 1.5 else 1.5
        if abs(pt.skew_ratio - expect) > 0.3 and abs(pt.skew_ratio - other) < 0.15:
            warns.append(
                f"the noise skewness (third cumulant / slope² = {pt.skew_ratio:.2f}) looks "
                f"like {'an sCMOS' if F > 1.5 else 'an EMCCD'} camera (1 for sCMOS/Poisson, "
                f"1.5 for EMCCD) but the camera is {cal.camera_model} "
                f"({cal.camera_model_source}); check --camera (the gain scales with F)")

    # --- offset
    lower = upper = None
    if gain_measured:
        lower = (QUANTIZATION_VAR_ADU2 - pt.intercept) / s  # read noise >= 0
        upper = pt.mean_range_adu[0]
        cal.offset_bounds_adu = [float(lower), float(upper)]
    if baseline_adu is not None:
        cal.offset_adu, cal.offset_source, cal.offset_reliability = (
            float(baseline_adu), "user", "as given")
    elif (gain_measured and pt.offset_k3 is not None and pt.offset_k3_se is not None
          and pt.offset_k3_se <= MAX_OFFSET_SE_ADU):
        cal.offset_adu, cal.offset_se_adu = pt.offset_k3, pt.offset_k3_se
        cal.offset_source = "movie (third cumulant: zero at the offset, free of read noise)"
        cal.offset_reliability = ("good" if pt.offset_k3_se <= 0.5 else
                                  "fair" if pt.offset_k3_se <= 1.5 else "low")
    elif meta_cam.get("baseline_adu") is not None and cal.camera_model != "poisson":
        cal.offset_adu = float(meta_cam["baseline_adu"])
        cal.offset_source, cal.offset_reliability = "metadata", "as stated"
    elif cal.camera_model == "poisson":
        cal.offset_adu, cal.offset_source, cal.offset_reliability = 0.0, "assumed", "assumed"
    elif gain_measured:
        cal.offset_adu, cal.offset_se_adu = float(lower), pt.intercept_se / s
        cal.offset_source = ("movie (variance intercept assuming negligible read noise: a "
                             "lower bound, too low by read_var/slope)")
        cal.offset_reliability = "low"
        warns.append(
            f"offset {lower:.1f} ADU is only a lower bound (the darkest background pixels "
            f"see too much light to pin it; it lies in [{lower:.1f}, {upper:.1f}] ADU); "
            "pass --baseline-adu if you know it")
    else:
        warns.append("offset unidentifiable from this movie; pass --baseline-adu")
    if gain_measured and cal.offset_adu is not None:
        # read_var (rounding's 1/12 included) = intercept + slope·offset; its SE is
        # dominated by slope·SE(offset): an EMCCD's read noise is rarely measurable this way
        rv = pt.intercept + s * cal.offset_adu
        cal.read_var_adu2 = float(rv)
        cal.read_var_se_adu2 = float(np.hypot(pt.intercept_se or 0.0,
                                              s * (cal.offset_se_adu or 0.0)))
        cal.read_noise_adu = float(np.sqrt(max(rv - QUANTIZATION_VAR_ADU2, 0.0)))
        if cal.e_per_adu is not None:
            cal.read_noise_e = cal.read_noise_adu * cal.e_per_adu
    if cal.qe_source == "assumed":
        warns.append("QE unknown (not in the metadata): photons are photo-electrons (QE = 1)")

    # --- background map in photons
    g_eff = cal.e_per_adu if cal.e_per_adu is not None else 1.0
    off = cal.offset_adu if cal.offset_adu is not None else 0.0
    med_map = np.median(frames, axis=0).astype(np.float64)
    mean_map = pt.mean_map if pt.mean_map is not None else med_map
    mean_map = np.where(np.isfinite(mean_map), mean_map, med_map)
    bg_map = ndimage.gaussian_filter((mean_map - off) * g_eff / cal.qe, 2.0, mode="nearest")
    cal.background_photons_per_px = float(np.mean(bg_map))
    cal.background_percentiles_photons_per_px = {
        f"p{q}": float(v) for q, v in zip((5, 50, 95), np.percentile(bg_map, [5, 50, 95]))}
    cal.diagnostics["background_map"] = bg_map

    # --- spots (frames in photo-electrons via the calibrated camera)
    cam = {"model": cal.camera_model, "baseline_adu": off, "e_per_adu": g_eff,
           "em_gain": 1.0, "qe": cal.qe,
           "read_noise_e": (cal.read_noise_adu or 0.0) * g_eff}
    if cal.camera_model == "poisson":
        cam = {"model": "poisson"}
    spot_movie = Movie(np.asarray(movie.frames[:max_frames_spots]), movie.pixel_size_nm,
                       movie.frame_time_s, movie.exposure_time_s, cam)
    shape = spot_movie.shape
    locs = localize_for_calibration(spot_movie, sigma_guess)
    st = spot_statistics(locs, shape, movie.pixel_size_nm, sigma_guess)
    if st["psf_sigma_nm"] is not None and abs(st["psf_sigma_nm"] / sigma_guess - 1) > 0.25:
        sigma_guess = st["psf_sigma_nm"]  # detection matched to the real PSF, once more
        locs = localize_for_calibration(spot_movie, sigma_guess)
        st = spot_statistics(locs, shape, movie.pixel_size_nm, sigma_guess)
    for key in ("psf_sigma_nm", "psf_sigma_se_nm", "psf_sigma_spread_nm", "n_psf_spots",
                "n_psf_molecules",
                "psf_sigma_selection", "photons_percentiles", "n_localizations",
                "density_per_um2_per_frame", "on_time_mean_frames", "n_runs"):
        setattr(cal, key, st[key])
    if st["psf_sigma_nm"] is not None:
        cal.psf_sigma_source = "movie (sigma-free MLE fits)"
    elif cal.psf_sigma_metadata_nm is not None:
        cal.psf_sigma_nm, cal.psf_sigma_source = cal.psf_sigma_metadata_nm, "metadata"
        warns.append("no bright isolated spots: PSF sigma taken from the metadata")
    else:
        warns.append("no bright isolated spots: PSF sigma unidentifiable; pass --psf-sigma-nm")
    if (cal.psf_sigma_metadata_nm and st["psf_sigma_nm"] is not None
            and abs(st["psf_sigma_nm"] / cal.psf_sigma_metadata_nm - 1) > 0.1):
        warns.append(f"fitted PSF sigma {st['psf_sigma_nm']:.0f} nm differs by >10 % from the "
                     f"metadata's {cal.psf_sigma_metadata_nm:.0f} nm")
    if st["n_psf_spots"] and st["n_psf_spots"] < 20:
        warns.append(f"PSF sigma from only {st['n_psf_spots']} spots")
    cal.diagnostics.update({"sigma_values_nm": np.asarray(st["sigma_values_nm"]),
                            "photons_values": np.asarray(st["photons_values"])})
    cal.warnings = warns
    return cal
