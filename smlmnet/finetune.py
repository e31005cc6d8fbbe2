"""A localizer for one microscope in one command: calibrate a movie, simulate training
windows like it, fine-tune the generalist on them, write a model folder.

``smlmnet train-localizer --like movie.tif -o my_model/`` is a thin wrapper over ``train.py``:
it writes a generated experiment config (``<work>/experiment/like_movie.yaml``) next to the
movie's simulation preset and runs ``python train.py --config-dir <work> experiment=like_movie``
(so the run is an ordinary, reproducible Hydra/Lightning run; the command is in the model
card). Training windows are domain-randomized in a narrow band around the calibration (PSF σ
± 10 %, photons from 1/5 of the 10th to 2× the 90th percentile, background ×/÷ 2, density up
to 2.5×, the movie's degradations), so that calibration errors do not become a blind spot;
a share of the windows (``REPLAY_PROBABILITY``) rehearses the base model's own training
randomization, so that fine-tuning cannot unlearn what a calibration misses (a PSF halo that a
single Gaussian σ does not describe, dimmer or denser spots than the percentiles say).

The detection threshold that training exports is tuned on those simulated windows. Where the
simulation misses something about the movie (a defocus halo, the real brightness), that
threshold does not fit the movie: on a defocused movie it found 0.57× the base model's
localizations and lost 25 Jaccard points to it. So after training, both models localize the
movie's first frames (no ground truth needed), and :func:`movie_matched_threshold` decides:

- the base model is an anchor only where the movie lies inside its training ranges, with no
  slack (:func:`smlmnet.guard.range_problems`); outside them it is the base that fails (on
  picasso movies with a 3-px PSF it finds half the spots) and the simulated threshold stays;
- inside them, when the fine-tuned model's count leaves :data:`COUNT_RATIO_RANGE` of the
  base's, its threshold moves to the grid value whose count is closest to the base's.

Both thresholds, the reason and the count curve are recorded in the model folder
(``movie_threshold``); ``--simulation-threshold`` keeps the simulated one.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

log = logging.getLogger(__name__)

#: the default starting point (its network arguments are reused)
BASE_MODEL = "decode_generalist"
#: share of fine-tuning windows drawn from the base model's own training randomization
REPLAY_PROBABILITY = 0.5


def like_movie_randomization(cal: dict, pixel_size_nm: float) -> dict:
    """Domain-randomization ranges (:class:`smlmnet.simulate.randomize.DomainRandomization`)
    centred on a movie's calibration dict (``Calibration.to_dict()``)."""
    from smlmnet.calibrate.calibration import UNFITTED_DIM_FACTOR

    sigma_px = (cal.get("psf_sigma_nm") or 130.0) / pixel_size_nm
    pct = cal.get("photons_percentiles") or {}
    lo, hi = float(pct.get("p10") or 300.0), float(pct.get("p90") or 3000.0)
    bg = cal.get("background_photons_per_px")
    bg_range = [max(0.5, 0.5 * bg), max(1.0, 2.0 * bg)] if bg else [0.5, 1e4]
    density = (cal.get("density_per_um2_per_frame") or 0.5) * (pixel_size_nm / 1000) ** 2
    flags = cal.get("flags") or {}
    return {
        "psf_sigma_px": [0.9 * sigma_px, 1.1 * sigma_px],
        "photons": [max(20.0, UNFITTED_DIM_FACTOR * lo), max(100.0, 2.0 * hi)],
        "background_photons_per_px": bg_range,
        "zero_background_probability": 0.0,
        "density_per_px2": [0.2 * density, min(0.05, max(2.5 * density, 0.002))],
        "halo_probability": 0.3,
        "cameras": {cal.get("camera_model") or "scmos": 1.0},
        "eight_bit_probability": 0.7 if (flags.get("clipped_high") or flags.get("clipped_low"))
        else 0.0,
        "offset_subtracted_probability": 0.7 if flags.get("background_subtracted") else 0.0,
        "hot_pixel_probability": 0.3,
    }


def write_experiment(work: Path, cal, name: str, base_model: str, steps: int,
                     batch_size: int, num_workers: int) -> Path:
    """Write ``preset.yaml`` (the movie's simulation preset) and
    ``experiment/like_movie.yaml`` into ``work``; returns the experiment file."""
    from smlmnet.models.registry import read_info

    cal_dict = cal.to_dict()
    preset = cal.to_simulation_preset(base="decode_sptpalm")
    (work / "experiment").mkdir(parents=True, exist_ok=True)
    (work / "preset.yaml").write_text("# simulation preset of the movie (smlmnet calibrate)\n"
                                      + yaml.safe_dump(preset, sort_keys=False))
    base = read_info(base_model)
    randomization = like_movie_randomization(cal_dict, float(preset["fov"]["pixel_size_nm"]))
    if base.get("domain_randomization"):
        randomization["replay_probability"] = REPLAY_PROBABILITY
        nested = ("replay", "replay_probability", "preset_probability")
        randomization["replay"] = {k: v for k, v in base["domain_randomization"].items()
                                   if k not in nested}
    net = {k: v for k, v in base["net"].items() if k != "_target_"}
    net.pop("n_frames", None)  # follows data.n_frames
    a = float(preset["fov"]["pixel_size_nm"])
    experiment = {
        "defaults": [{"override /logger": "csv"}, {"override /callbacks": "default"}],
        "model_name": name,
        "torch_threads": 1,
        "model_description": (f"Fine-tuned from {base_model} on windows simulated like one "
                              "movie (smlmnet train-localizer --like): calibration in "
                              "calibration.json of the training folder."),
        "model_limits": ("Trained for one microscope: the movie's pixel size, PSF, camera and "
                         "brightness, within the training ranges below."),
        "data": {"preset": str((work / "preset.yaml").resolve()), "overrides": [],
                 "randomization": randomization,
                 "shape_px": [40, 40], "batch_size": batch_size, "train_items": 2048,
                 "val_items": 128, "num_workers": num_workers,
                 # end-of-movie windows as often as the base model saw them
                 "edge_probability": float(base.get("edge_probability") or 0.0)},
        "model": {"net": net, "lr": 5e-4, "weight_decay": 0.02, "pixel_size_nm": a,
                  "init_from": base_model},
        "trainer": {"max_epochs": -1, "max_steps": int(steps), "log_every_n_steps": 25},
    }
    path = work / "experiment" / "like_movie.yaml"
    path.write_text("# @package _global_\n# generated by smlmnet train-localizer --like\n"
                    + yaml.safe_dump(experiment, sort_keys=False))
    return path


def train_like(movie: str | Path, output: str | Path, *, base_model: str = BASE_MODEL,
               steps: int = 800, batch_size: int = 16, num_workers: int = 1,
               work_dir: str | Path | None = None, camera: str | None = None,
               pixel_size_nm: float | None = None, frame_time_s: float | None = None,
               overrides: tuple[str, ...] = (), fit_threshold: bool = True) -> Path:
    """Calibrate ``movie``, fine-tune ``base_model`` on windows like it for ``steps``
    optimizer steps and write the model folder ``output``; with ``fit_threshold``, move the
    detection threshold to the movie when the simulated one does not fit it (module
    docstring). Returns ``output``."""
    import smlmnet
    from smlmnet.calibrate import calibrate_tiff
    from smlmnet.io.atomic import check_output_dir
    from smlmnet.io.jsonio import write_json

    output = Path(output)
    check_output_dir(output)
    train_py = Path(smlmnet.__file__).resolve().parents[1] / "train.py"
    if not train_py.is_file():
        raise FileNotFoundError("train-localizer runs smlmnet's train.py, which a wheel install "
                                "does not have: install from a source checkout (pip install "
                                "-e .)")
    work = Path(work_dir) if work_dir else output.with_name(output.name + "_training")
    work.mkdir(parents=True, exist_ok=True)
    cal = calibrate_tiff(movie, camera=camera, pixel_size_nm=pixel_size_nm,
                         frame_time_s=frame_time_s)
    write_json(work / "calibration.json", cal.to_dict(), overwrite=True)
    write_experiment(work, cal, output.name, base_model, steps, batch_size, num_workers)
    exported = work / "simulation_tuned"  # train.py's export: threshold tuned on simulations
    if exported.exists():
        shutil.rmtree(exported)  # a previous run's, inside our own training folder
    cmd = [sys.executable, str(train_py), "--config-dir", str(work.resolve()),
           "experiment=like_movie", f"export_pretrained={exported.resolve()}",
           f"hydra.run.dir={(work / 'run').resolve()}", "trainer.enable_progress_bar=false",
           f"trained_on='{cal.movie_shape} movie {Path(movie).name}'", *overrides]
    log.info("training: %s", " ".join(cmd))
    proc = subprocess.run(cmd, cwd=train_py.parent)
    if proc.returncode != 0:
        raise RuntimeError(f"training failed (exit code {proc.returncode}); its log is in "
                           f"{work / 'run'}")
    import torch

    from smlmnet.io.tiff import read_movie_tiff
    from smlmnet.models.registry import load, read_info, write_model_folder

    sample = read_movie_tiff(movie, pixel_size_nm, frame_time_s, lazy=True)
    base = load(base_model)
    info = read_info(exported)
    if fit_threshold:
        fit = fit_threshold_to_movie(exported, base, sample, cal.to_dict())
        th = fit["threshold"]
        info["thresholds"] = {"threshold": th, "second_threshold": th}
        info["movie_threshold"] = fit
        info["reproduce_note"] = (
            f"After training, the detection threshold was set on the movie itself: {fit['rule']}"
            f" (smlmnet.finetune.fit_threshold_to_movie; count curve in model.yaml, "
            "movie_threshold).")
    state = torch.load(exported / "weights.pt", map_location="cpu", weights_only=True)
    write_model_folder(output, state, info)
    if fit_threshold:  # the fit already counted both models on those frames
        check = compare_counts(fit["counts"][f"{fit['threshold']:.2f}"], fit["base_count"],
                               fit["frames"], fit["base_problems"])
    else:
        check = detection_count_check(load(output), base, sample)
    write_json(work / "movie_check.json", check, overwrite=True)
    return output


#: the fine-tuned model's localizations per frame on the movie, as a share of the base model's,
#: outside which train-localizer warns (its threshold was tuned on simulations like the movie,
#: which can miss what the calibration cannot describe, e.g. a defocus halo)
COUNT_RATIO_RANGE = (0.8, 1.25)


def detection_count_check(tuned, base, movie, max_frames: int = 50,
                          base_problems: list[str] | tuple = ()) -> dict:
    """Localizations of ``tuned`` and ``base`` on the first ``max_frames`` frames of the
    user's ``movie`` (no ground truth needed), compared by :func:`compare_counts`."""
    part = movie.first_frames(max_frames)
    return compare_counts(len(tuned.localize(part)), len(base.localize(part)), part.n_frames,
                          base_problems)


def compare_counts(tuned: int, base: int, frames: int,
                   base_problems: list[str] | tuple = ()) -> dict:
    """Warn when the fine-tuned model's localization count ``tuned`` on a movie's first
    ``frames`` frames leaves :data:`COUNT_RATIO_RANGE` of the base model's ``base`` (then one
    of the two thresholds does not fit this movie), unless ``base_problems`` says the movie is
    outside the base model's training ranges (then the base's count is no reference).
    Returns ``{frames, tuned, base, ratio, warning, base_problems}``."""
    a, b = int(tuned), int(base)
    ratio = a / b if b else (1.0 if a == 0 else None)  # None: only the fine-tuned model finds any
    warning = None
    lo, hi = COUNT_RATIO_RANGE
    if not base_problems and (ratio is None or not lo <= ratio <= hi):
        warning = (f"the fine-tuned model finds {a} localizations in the movie's first {frames} "
                   f"frames where its base model finds {b}: its detection "
                   "threshold, tuned on simulations like the movie, may not fit the movie "
                   "itself; compare both on your data (smlmnet analyze --model) before use")
        log.warning(warning)
    return {"frames": int(frames), "tuned": a, "base": b, "ratio": ratio, "warning": warning,
            "base_problems": list(base_problems)}


#: thresholds that :func:`fit_threshold_to_movie` may choose from (first and second tied)
MOVIE_THRESHOLD_GRID = tuple(float(t) for t in np.round(np.arange(0.15, 0.951, 0.05), 2))


def movie_matched_threshold(counts: dict[float, int], base_count: int,
                            simulation_threshold: float,
                            base_problems: list[str] | tuple = ()) -> tuple[float, str]:
    """The threshold to use on a movie, from the fine-tuned model's localization count at
    each threshold (``counts``) and the base model's count on the same frames.

    Keeps ``simulation_threshold`` when the base is no anchor (``base_problems``: why the
    movie lies outside the base model's training ranges; or the base finds nothing) or when
    the simulated threshold's count is within :data:`COUNT_RATIO_RANGE` of the base's;
    otherwise returns the threshold whose count is closest to the base's in log ratio (ties:
    the one nearest the simulated threshold). Returns ``(threshold, rule)``, ``rule`` a
    sentence for the card."""
    lo, hi = COUNT_RATIO_RANGE
    n_sim = counts.get(simulation_threshold)
    if base_problems:
        return simulation_threshold, (
            f"kept the threshold tuned on simulations, {simulation_threshold:.2f} ({n_sim} "
            f"localizations; the base model finds {base_count} but is no anchor here: "
            + "; ".join(base_problems) + ")")
    if base_count == 0 or n_sim is None or lo <= n_sim / base_count <= hi:
        return simulation_threshold, (f"kept the threshold tuned on simulations, "
                                      f"{simulation_threshold:.2f}")
    best = min(counts, key=lambda t: (abs(np.log((counts[t] + 0.5) / (base_count + 0.5))),
                                      abs(t - simulation_threshold)))
    return float(best), (f"the threshold tuned on simulations ({simulation_threshold:.2f}) gave "
                         f"{n_sim} localizations where the base model gives {base_count}; "
                         f"{best:.2f} gives {counts[best]}")


def fit_threshold_to_movie(folder, base, movie, calibration: dict | None = None,
                           max_frames: int = 50) -> dict:
    """Localize the first ``max_frames`` frames of ``movie`` with the fine-tuned model folder
    (once, at the lowest grid threshold; a higher threshold keeps exactly the detections whose
    score p exceeds it, see ``detect_emitters``) and with the ``base`` localizer, check the
    movie's ``calibration`` (``Calibration.to_dict()``) against the base's training ranges,
    and choose the threshold with :func:`movie_matched_threshold`. Returns ``{frames,
    base_count, base_problems, simulation_threshold, counts, threshold, rule}``."""
    from smlmnet.guard import movie_facts, range_problems
    from smlmnet.models.registry import load, read_info

    t_sim = float(read_info(folder)["thresholds"]["threshold"])
    part = movie.first_frames(max_frames)
    lowest = min(MOVIE_THRESHOLD_GRID)
    p = load(folder, threshold=lowest, second_threshold=lowest).localize(part)["p"].to_numpy()
    grid = sorted({*MOVIE_THRESHOLD_GRID, round(t_sim, 2)})
    counts = {t: int((p > t).sum()) for t in grid}
    n_base = len(base.localize(part))
    facts = movie_facts(movie, None, calibration)
    problems = range_problems(facts, (base.info or {}).get("training_ranges") or {}, slack=0.0)
    th, rule = movie_matched_threshold(counts, n_base, round(t_sim, 2), problems)
    log.info("detection threshold on the movie: %s", rule)
    return {"frames": part.n_frames, "base_count": n_base, "base_problems": problems,
            "simulation_threshold": t_sim,
            "counts": {f"{t:.2f}": n for t, n in counts.items()}, "threshold": th,
            "rule": rule}
