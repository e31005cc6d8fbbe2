"""Domain guard: run a learned localizer only on movies like those it was trained on, and
never return its output silently when it looks wrong.

Before localization, :func:`range_problems` compares the movie's facts (pixel size, PSF σ,
camera, background, brightness, density and file degradations, from the TIFF metadata, the
user's flags and :mod:`smlmnet.calibrate`) with the ``training_ranges`` in the model's folder.
:func:`normalization_problems` checks that the network's per-frame input normalization is
set by the background noise, not by a few very bright pixels (beads).
After localization, :func:`output_problems` sanity-checks the table (localizations per frame
far above the number of local maxima, positions outside the image, negative backgrounds,
photons stuck at the model's cap). :class:`GuardedLocalizer` tries its candidates in order
(e.g. specialist → generalist → MLE) and keeps the first whose inputs are in range and whose
output passes; every decision is recorded for ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings

import numpy as np
import pandas as pd

from smlmnet.data import contracts as C
from smlmnet.data.contracts import Movie
from smlmnet.localize.base import DEFAULT_PSF_SIGMA_NM, Localizer, camera_factors
from smlmnet.localize.detect import detect_spots

log = logging.getLogger(__name__)

#: relative slack on continuous training ranges (a range is a training distribution's support;
#: just outside it the model degrades gracefully, far outside it does not)
RANGE_SLACK = 0.15
#: the table is implausible above this many localizations per local maximum per frame
MAX_LOCALIZATIONS_PER_MAXIMUM = 2.0
#: a robust-normalized network divides each frame by max(1.4826·MAD, 5 % of the frame's std);
#: when the std term exceeds the noise term by this factor, a few very bright pixels (beads,
#: saturated spots) set the input scale and dim spots fall below the network's view
MAX_SCALE_FLOOR_RATIO = 2.0


def movie_facts(movie: Movie, psf_sigma_nm: float | None, calibration: dict | None = None
                ) -> dict:
    """What the guard knows about a movie. Photon-valued facts (background, brightness) are
    given only when the camera is known (metadata or flags), since they need the ADU→photon
    conversion; a calibration supplies PSF σ, density and the clipping/subtraction flags."""
    cal = calibration or {}
    cam = dict(movie.camera or {})
    camera_known = cam.get("model") not in (None, "poisson") or bool(cam.get("photons"))
    sigma_nm = psf_sigma_nm or cal.get("psf_sigma_nm")
    facts = {
        "pixel_size_nm": float(movie.pixel_size_nm),
        "psf_sigma_px": float(sigma_nm) / movie.pixel_size_nm if sigma_nm else None,
        "camera": cam.get("model") if camera_known else None,
        "camera_known": bool(camera_known),
        "density_per_px2": None,
        "background_photons_per_px": None,
        "photons": None,
        "flags": movie_flags(cal),
    }
    if cal.get("density_per_um2_per_frame") is not None:
        facts["density_per_px2"] = cal["density_per_um2_per_frame"] * (
            movie.pixel_size_nm / 1000.0) ** 2
    if camera_known:
        if cal.get("background_photons_per_px") is not None:
            facts["background_photons_per_px"] = float(cal["background_photons_per_px"])
        pct = cal.get("photons_percentiles") or {}
        lo, hi = pct.get("p10") or pct.get("10"), pct.get("p90") or pct.get("90")
        if lo is not None and hi is not None:
            facts["photons"] = [float(lo), float(hi)]
    return facts


def movie_flags(calibration: dict | None) -> dict:
    """The calibration's raw-value flags, with ``clipped`` = clipped at the top or at 0."""
    flags = {k: bool(v) for k, v in ((calibration or {}).get("flags") or {}).items()}
    flags["clipped"] = flags.get("clipped_high", False) or flags.get("clipped_low", False)
    return flags


def _outside(value: float, lo: float, hi: float, slack: float = RANGE_SLACK) -> bool:
    return value < lo * (1 - slack) or value > hi * (1 + slack)


def range_problems(facts: dict, ranges: dict, slack: float = RANGE_SLACK) -> list[str]:
    """Reasons why a movie lies outside a model's ``training_ranges`` (empty: in range),
    each range widened by the relative ``slack``. Unknown facts are not held against the
    model, except a camera that the model needs."""
    problems = []
    if not ranges:
        return ["the model records no training ranges"]
    if ranges.get("camera_calibration_needed") and not facts.get("camera_known"):
        problems.append("the model needs frames in photons, but the camera is unknown (pass "
                        "--camera with --baseline-adu/--e-per-adu/--em-gain, or use "
                        "`smlmnet calibrate`)")
    for key, unit in (("pixel_size_nm", "nm"), ("psf_sigma_px", "px"),
                      ("background_photons_per_px", "photons/px")):
        value, rng = facts.get(key), ranges.get(key)
        if value is not None and rng and _outside(value, *rng, slack):
            problems.append(f"{key} = {value:.3g} {unit} is outside the training range "
                            f"{rng[0]:.3g}–{rng[1]:.3g}")
    if facts.get("density_per_px2") is not None and ranges.get("density_per_px2"):
        hi = ranges["density_per_px2"][1]
        if facts["density_per_px2"] > hi * (1 + slack):
            problems.append(f"density {facts['density_per_px2']:.3g} /px² per frame is above "
                            f"the training maximum {hi:.3g}")
    if facts.get("photons") and ranges.get("photons"):
        lo, hi = ranges["photons"]
        if _outside(facts["photons"][0], lo, hi, slack) or _outside(facts["photons"][1], lo, hi,
                                                                   slack):
            problems.append(f"emitter photons {facts['photons'][0]:.3g}–"
                            f"{facts['photons'][1]:.3g} (10–90 %) are outside the training "
                            f"range {lo:.3g}–{hi:.3g}")
    cams = ranges.get("cameras")
    if cams and facts.get("camera") and facts["camera"] not in cams:
        problems.append(f"camera {facts['camera']!r} was not in training ({', '.join(cams)})")
    seen = ranges.get("degradations") or {}
    flags = facts.get("flags") or {}
    for flag, key in (("clipped", "eight_bit_clipped"),
                      ("background_subtracted", "offset_subtracted")):
        if flags.get(flag) and not seen.get(key):
            problems.append(f"the movie looks {flag.replace('_', '-')}, which training never "
                            "showed")
    return problems


def local_maxima_per_frame(movie: Movie, psf_sigma_px: float | None, n_sample: int = 20,
                           threshold: float = 3.0) -> float:
    """Mean number of band-pass local maxima above ``threshold`` robust noise units in up to
    ``n_sample`` evenly spaced frames: a generous upper bound on the spots a frame holds."""
    idx = np.unique(np.linspace(0, movie.n_frames - 1, min(n_sample, movie.n_frames)).astype(int))
    cam = camera_factors(movie) if movie.camera else {"baseline": 0.0, "scale": 1.0}
    frames = (np.asarray(movie.frames[idx], np.float32) - cam["baseline"]) * cam["scale"]
    spots = detect_spots(frames, psf_sigma_px or 1.3, threshold, 1)
    return len(spots) / len(idx)


def scale_floor_ratio(movie: Movie, n_sample: int = 20) -> float | None:
    """Median over up to ``n_sample`` evenly spaced frames of (5 % of the frame's std) /
    (1.4826·MAD), over frames with MAD > 0 (None if none): how far a few bright pixels lift
    a robust-normalized network's input scale above the background noise. Invariant to the
    camera's gain and offset."""
    idx = np.unique(np.linspace(0, movie.n_frames - 1, min(n_sample, movie.n_frames)).astype(int))
    frames = np.asarray(movie.frames[idx], np.float64).reshape(len(idx), -1)
    med = np.median(frames, axis=1, keepdims=True)
    mad = 1.4826 * np.median(np.abs(frames - med), axis=1)
    ok = mad > 0
    if not ok.any():
        return None
    return float(np.median(0.05 * frames[ok].std(axis=1) / mad[ok]))


def normalization_problems(movie: Movie, net) -> list[str]:
    """Reasons why a network's input normalization would misread this movie (empty: fine)."""
    if getattr(net, "normalization", None) != "robust":
        return []
    ratio = scale_floor_ratio(movie)
    if ratio is not None and ratio > MAX_SCALE_FLOOR_RATIO:
        return [f"a few very bright pixels (beads? saturated spots?) set the network's input "
                f"scale {ratio:.1f}× above the background noise, so dim spots would be missed"]
    return []


def output_problems(locs: pd.DataFrame, movie: Movie, facts: dict,
                    photon_cap: float | None = None) -> list[str]:
    """Reasons why a localization table looks wrong (empty: plausible)."""
    problems = []
    if not len(locs):
        return problems
    H, W = movie.shape[1:]
    a = movie.pixel_size_nm
    per_frame = len(locs) / movie.n_frames
    maxima = local_maxima_per_frame(movie, facts.get("psf_sigma_px"))
    if per_frame > MAX_LOCALIZATIONS_PER_MAXIMUM * maxima + 2:
        problems.append(f"{per_frame:.1f} localizations per frame but only {maxima:.1f} local "
                        "maxima: most localizations are not spots")
    x, y = locs[C.X_NM].to_numpy(), locs[C.Y_NM].to_numpy()
    outside = np.mean((x < 0) | (x > W * a) | (y < 0) | (y > H * a))
    if outside > 0.01:
        problems.append(f"{100 * outside:.0f} % of the positions are outside the image")
    if facts.get("camera_known") and "bg [photon/px]" in locs:
        bg = locs["bg [photon/px]"].to_numpy()
        neg = np.mean(bg < -3 * np.sqrt(np.nanmedian(np.abs(bg)) + 1))
        if neg > 0.05:
            problems.append(f"{100 * neg:.0f} % of the backgrounds are clearly negative")
    if photon_cap and C.PHOTONS in locs:
        capped = np.mean(locs[C.PHOTONS].to_numpy() >= 0.98 * photon_cap)
        if capped > 0.1:
            problems.append(f"{100 * capped:.0f} % of the photon counts sit at the model's cap "
                            f"({photon_cap:g})")
    return problems


class GuardedLocalizer(Localizer):
    """Try ``candidates`` in order; keep the first one whose training ranges contain the
    movie and whose output passes :func:`output_problems`. The last candidate (the MLE fit)
    is always accepted, with its problems reported. ``decision`` records every step.

    Args:
        candidates: localizers; learned ones carry ``info`` (their ``model.yaml``).
        facts: :func:`movie_facts` of the movie.
        force: use the first candidate whatever the checks say (``analyze --force-model``).
        explicit: the first candidate was asked for by name: skipping it for its training
            ranges is a warning (otherwise, as in ``--localizer auto``, a log line: choosing
            among the shipped models is the point). Rejected output always warns.
        matched_calibration: the movie's calibration (:meth:`Calibration.to_dict`): a learned
            candidate's σ scale is then measured on simulated movies like this one
            (:func:`smlmnet.calibrate.matched.matched_uncertainty_scale`), replacing the
            scale tuned on its training distribution; None keeps the model's.
    """

    def __init__(self, candidates: list[Localizer], facts: dict, force: bool = False,
                 explicit: bool = False, matched_calibration: dict | None = None) -> None:
        if not candidates:
            raise ValueError("GuardedLocalizer needs at least one candidate")
        self.candidates, self.facts, self.force = candidates, facts, force
        self.explicit = explicit
        self.matched_calibration = matched_calibration
        self.decision: list[dict] = []
        self.chosen: Localizer | None = None
        self.name = candidates[0].name

    def localize(self, movie: Movie, progress: bool = False) -> pd.DataFrame:
        self.decision = []
        last = len(self.candidates) - 1
        for i, loc in enumerate(self.candidates):
            info = getattr(loc, "info", None) or {}
            step = {"localizer": loc.name, "input_problems": [], "output_problems": []}
            self.decision.append(step)
            if info and not self.force:
                step["input_problems"] = range_problems(
                    self.facts, info.get("training_ranges") or {}) + normalization_problems(
                    movie, getattr(loc, "net", None))
                if step["input_problems"] and i < last:
                    step["used"] = False
                    self._warn(loc, step["input_problems"], "movie outside its training ranges",
                               quiet=not (self.explicit and i == 0))
                    continue
            matched = bool(self.matched_calibration) and hasattr(loc, "uncertainty_scale_by_p")
            locs = (self._localize_matched(loc, movie, step, progress) if matched
                    else loc.localize(movie, progress=progress))
            cap = None
            net = getattr(loc, "net", None)
            if net is not None and getattr(net, "photon_head", "linear") == "linear":
                cap = getattr(net, "photon_scale", None)
            step["output_problems"] = output_problems(locs, movie, self.facts, cap)
            step["n_localizations"] = int(len(locs))
            if step["output_problems"] and i < last and not self.force:
                step["used"] = False
                self._warn(loc, step["output_problems"], "its output failed the sanity checks")
                continue
            step["used"] = True
            if step["output_problems"]:
                warnings.warn(f"{loc.name}: " + "; ".join(step["output_problems"]),
                              stacklevel=2)
            self.chosen, self.name = loc, loc.name
            return locs
        raise AssertionError("unreachable: the last candidate is always used")

    def _localize_matched(self, loc, movie: Movie, step: dict, progress: bool
                          ) -> pd.DataFrame:
        """Run ``loc``, then rescale its uncertainties by the σ scale measured on simulated
        movies like this one (its calibration, with the density and dim emitters that ``loc``
        found); ``step`` records what was used (the model's own scale when the simulation
        fails)."""
        from smlmnet.calibrate.matched import matched_uncertainty_scale, regime_overrides
        from smlmnet.localize.decode.post import uncertainty_scale_at

        locs = loc.localize(movie, progress=progress)
        if not len(locs):
            return locs
        cal = self.matched_calibration
        result = matched_uncertainty_scale(
            loc, cal, camera_known=bool(self.facts.get("camera_known")),
            overrides=regime_overrides(locs, (movie.n_frames, *movie.shape[1:]),
                                       movie.pixel_size_nm, cal))
        step["uncertainty_calibration"] = result
        if result["scale"] is None:
            result["used"] = "the model's own scale (tuned on its training distribution)"
            warnings.warn(f"{loc.name}: uncertainties keep the model's scale: "
                          f"{result.get('error')}", stacklevel=3)
            return locs
        result["used"] = "movie-matched simulation"
        old = uncertainty_scale_at(locs["p"].to_numpy(float), loc.uncertainty_scale,
                                   loc.uncertainty_scale_by_p)
        locs = locs.copy()
        for col in ("uncertainty_x [nm]", "uncertainty_y [nm]", "uncertainty_xy [nm]"):
            if col in locs:
                locs[col] = locs[col].to_numpy(float) * result["scale"] / old
        return locs

    def _warn(self, loc, problems, why, quiet: bool = False) -> None:
        nxt = self.candidates[self.candidates.index(loc) + 1].name
        text = (f"not using {loc.name}: {why} ({'; '.join(problems)}); falling back to {nxt} "
                "(--force-model uses it anyway)")
        if quiet:
            log.info(text)
        else:
            warnings.warn(text, stacklevel=3)


def shipped_localizers() -> list[str]:
    """Shipped localizer models, specialists (which need a calibrated camera and cover a
    narrow range) before generalists."""
    from smlmnet.models.registry import list_models, read_info

    infos = [(name, read_info(name)) for name in list_models()]
    infos = [(n, i) for n, i in infos if i["kind"] == "localizer"]
    return [n for n, i in sorted(infos, key=lambda ni: not (
        ni[1].get("training_ranges") or {}).get("camera_calibration_needed", False))]


def select_localizer(request: str, movie: Movie, psf_sigma_nm: float, *,
                     model: str | None = None, threshold: float = 5.0,
                     calibration: dict | None = None, force: bool = False,
                     batch_frames: int = 32, uncertainty: str = "model"
                     ) -> GuardedLocalizer:
    """The localizer ``smlmnet analyze`` runs.

    ``request``: ``auto`` (every shipped localizer whose training ranges hold the movie,
    specialists first, then the MLE fit), ``decode`` (``model``, then MLE as the fallback),
    ``mle`` or ``centroid`` (the classical fit alone). ``psf_sigma_nm`` is for the classical
    fit and the guard's facts. ``uncertainty``: ``movie`` measures a learned localizer's σ
    scale on simulations like the movie (needs ``calibration``), ``model`` keeps the scale
    tuned at training.
    """
    from smlmnet.localize.base import SpotFitLocalizer
    from smlmnet.models.registry import load, read_info

    classical = SpotFitLocalizer("mle" if request == "auto" or request == "decode" else request,
                                 psf_sigma_nm=psf_sigma_nm, threshold=threshold)
    facts = movie_facts(movie, psf_sigma_nm, calibration)
    if request in ("mle", "centroid"):
        return GuardedLocalizer([classical], facts)
    if request == "decode":
        names = [model or "decode_generalist"]
    elif request == "auto":
        names = [model] if model else shipped_localizers()
    else:
        raise ValueError(f"unknown localizer {request!r}: use auto, decode, mle or centroid")
    for n in names:
        kind = read_info(n)["kind"]
        if kind != "localizer":
            raise ValueError(f"model {n!r} is a {kind} model, not a localizer"
                             + ("; use `smlmnet analyze-tracks` for tracks" if kind ==
                                "trajectory" else ""))
    if uncertainty not in ("movie", "model"):
        raise ValueError(f"unknown uncertainty calibration {uncertainty!r}: use movie or "
                         "model")
    learned = [load(n, batch_frames=batch_frames) for n in names]
    return GuardedLocalizer([*learned, classical], facts, force=force,
                            explicit=request == "decode" or model is not None,
                            matched_calibration=calibration if uncertainty == "movie"
                            else None)


def prepare_localizer(movie: Movie, request: str = "auto", *, model: str | None = None,
                      psf_sigma_nm: float | None = None, psf_sigma_source: str | None = None,
                      calibrate: str = "auto", camera: str | None = None,
                      threshold: float = 5.0, force: bool = False,
                      uncertainty: str = "movie") -> tuple[GuardedLocalizer, dict]:
    """Everything ``smlmnet analyze`` decides before localizing, as one function (benchmarks
    call it so that they measure exactly what a user gets).

    PSF σ: ``psf_sigma_nm`` (from ``--psf-sigma-nm`` or the TIFF metadata, say which in
    ``psf_sigma_source``), else the movie's own calibration, else 130 nm. ``calibrate``:
    ``auto`` calibrates the movie from itself (:mod:`smlmnet.calibrate`) when the PSF σ or the
    camera is unknown (or, with ``uncertainty="movie"``, whenever a learned localizer may
    run: its σ scale is then measured on simulations like the movie), ``always`` or
    ``never``.
    Returns the guarded localizer and a dict with ``psf_sigma_nm``, ``psf_sigma_source`` and
    ``calibration`` (a strict-JSON dict or None).
    """
    calibration = None
    camera_unknown = (movie.camera or {}).get("model") in (None, "poisson")
    learned = request in ("auto", "decode")
    wanted = calibrate == "always" or (calibrate == "auto" and request != "centroid" and (
        psf_sigma_nm is None or camera_unknown or (learned and uncertainty == "movie")))
    if wanted:
        # an assumed camera (pixel values as photons) is not metadata: calibrate without it
        bare = dataclasses.replace(movie, camera=None) if camera_unknown else movie
        calibration = self_calibration(bare, camera, psf_sigma_nm or DEFAULT_PSF_SIGMA_NM)
        flagged = [k.replace("_", " ") for k, v in movie_flags(calibration).items()
                   if v and k != "clipped"]
        if flagged:
            warnings.warn(f"the movie looks {', '.join(flagged)} (smlmnet.calibrate): photon "
                          "counts, backgrounds and the MLE's uncertainties of such data are not "
                          "physical; positions are still measured", stacklevel=2)
    if psf_sigma_nm is not None:
        sigma, source = float(psf_sigma_nm), psf_sigma_source or "given"
    elif calibration and calibration.get("psf_sigma_nm"):
        sigma = float(calibration["psf_sigma_nm"])
        source = (f"the movie itself (smlmnet.calibrate, {calibration.get('n_psf_molecules')} "
                  "molecules)")
    else:
        sigma, source = DEFAULT_PSF_SIGMA_NM, ("the default (measure it with `smlmnet "
                                                "calibrate` and pass --psf-sigma-nm)")
    loc = select_localizer(request, movie, sigma, model=model, threshold=threshold,
                           calibration=calibration, force=force,
                           uncertainty=uncertainty)
    return loc, {"psf_sigma_nm": sigma, "psf_sigma_source": source,
                 "calibration": calibration}


def self_calibration(movie: Movie, camera: str | None, psf_hint_nm: float) -> dict | None:
    """The movie's calibration (PSF σ, density, clipping flags) for the guard; a failure is a
    warning, never an abort."""
    from smlmnet.calibrate import calibrate_movie

    try:
        cal = calibrate_movie(movie, camera=camera, psf_sigma_nm_hint=psf_hint_nm,
                              max_frames=200, max_frames_spots=100)
    except Exception as err:  # the analysis does not depend on it
        warnings.warn(f"self-calibration failed ({err}); the domain guard runs without it "
                      "(--calibrate never skips it)", stacklevel=2)
        return None
    return cal.to_dict()
