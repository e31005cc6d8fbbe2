"""The ``smlmnet`` command line.

    smlmnet demo                       simulate a small movie and plot it (no downloads)
    smlmnet simulate PRESET [k=v ...] -o FOLDER
    smlmnet simulate --config FOLDER/config.yaml -o NEW_FOLDER   (regenerate a dataset)
    smlmnet presets                    list the simulation presets
    smlmnet analyze MOVIE.tif [-o FOLDER]   localize, link and measure diffusion
    smlmnet calibrate MOVIE.tif [-o FOLDER] camera gain/offset, PSF, background from the movie
    smlmnet analyze-tracks TRACKS.csv --frame-time-s T   per-track α, K and motion model
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from smlmnet import __version__

PREVIEW_FRAMES = 1000  # overview.png of `smlmnet simulate` draws the tracks of these frames


def _simulate_and_save(cfg, out: Path, figure: bool, progress: bool) -> dict:
    from smlmnet.io.atomic import check_output_dir
    from smlmnet.simulate import save_dataset, simulate

    check_output_dir(out)  # fail before the work, not after
    t0 = time.perf_counter()
    result = simulate(cfg, progress=progress)
    elapsed = time.perf_counter() - t0
    save_dataset(result, out)
    if figure:
        from smlmnet.plotting import plot_simulation_overview

        plot_simulation_overview(result, out / "overview.png")
    T, H, W = result.movie.shape
    print(f"simulated {T} frames of {H}x{W} px in {elapsed:.2f} s "
          f"({T / max(elapsed, 1e-9):.0f} frames/s): {result.metadata['n_tracks_visible']} "
          f"tracks, {int(result.emitters['on'].sum())} emitter-frames on")
    print(f"pixel {result.movie.pixel_size_nm:g} nm, frame {result.movie.frame_time_s:g} s, "
          f"PSF sigma {result.metadata['psf_sigma_nm']:.0f} nm, blur coefficient "
          f"R = {result.metadata['blur_coefficient_R']:.3f}, camera {cfg.camera.model}")
    if result.metadata["n_saturated_pixels"]:
        print(f"warning: {result.metadata['n_saturated_pixels']} pixels saturated the "
              f"{cfg.camera.bit_depth}-bit camera", file=sys.stderr)
    print(f"wrote {out}/: movie.tif emitters.csv tracks.csv config.yaml metadata.json"
          + (" overview.png" if figure else ""))
    return result


def cmd_simulate(args) -> int:
    from smlmnet.io.atomic import check_output_dir
    from smlmnet.simulate import load_config, simulate_to_folder

    source = args.config if args.config else args.preset
    cfg = load_config(source, args.overrides)
    out = Path(args.output)
    check_output_dir(out)  # fail before the work, not after
    t0 = time.perf_counter()
    # chunk by chunk: memory stays bounded whatever n_frames (same bytes as the in-memory path)
    ds = simulate_to_folder(cfg, out, chunk_frames=args.chunk_frames, progress=not args.quiet,
                            preview_frames=PREVIEW_FRAMES)
    elapsed = time.perf_counter() - t0
    figure = not args.no_figure
    if figure:
        from smlmnet.plotting import plot_simulation_overview

        plot_simulation_overview(ds.preview, out / "overview.png")
    T, H, W = ds.shape
    meta = ds.metadata
    print(f"simulated and wrote {T} frames of {H}x{W} px in {elapsed:.2f} s "
          f"({T / max(elapsed, 1e-9):.0f} frames/s): {meta['n_tracks_visible']} "
          f"tracks, {ds.n_emitter_frames_on} emitter-frames on")
    print(f"pixel {cfg.fov.pixel_size_nm:g} nm, frame {cfg.frame_time_s:g} s, "
          f"PSF sigma {meta['psf_sigma_nm']:.0f} nm, blur coefficient "
          f"R = {meta['blur_coefficient_R']:.3f}, camera {cfg.camera.model}")
    if meta["n_saturated_pixels"]:
        print(f"warning: {meta['n_saturated_pixels']} pixels saturated the "
              f"{cfg.camera.bit_depth}-bit camera", file=sys.stderr)
    preview_note = f" (tracks of the first {PREVIEW_FRAMES} frames)" if (
        figure and T > PREVIEW_FRAMES) else ""
    print(f"wrote {out}/: movie.tif emitters.csv tracks.csv config.yaml metadata.json"
          + (" overview.png" + preview_note if figure else ""))
    return 0


def trajectory_tables(est, tracks, frame_time_s: float):
    """Per-track table of a trajectory model (α, K, model; with per-step outputs also
    changepoints, segments and states) and its per-step table (``None`` without per-step
    outputs), for the tracks of ``tracks`` (smlmnet columns)."""
    table = est.predict(tracks, frame_time_s)
    steps = est.predict_steps(tracks, frame_time_s) if est.net.per_step else None
    return table, steps


def _add_trajectory_model(analysis, name: str, frame_time_s: float) -> None:
    """``smlmnet analyze --trajectory-model``: the model's per-track outputs join
    ``analysis.diffusion`` (columns prefixed ``<name> ``) and its per-step table is kept in
    ``analysis.summary`` for :func:`_write_analysis` (``diffusion_steps.csv``)."""
    from smlmnet.data import contracts as C
    from smlmnet.models.registry import load

    diff = analysis.diffusion
    if diff.empty:
        return
    tracks = analysis.tracks[analysis.tracks[C.TRACK_ID].isin(diff[C.TRACK_ID])]
    est = load(name)
    table, steps = trajectory_tables(est, tracks, frame_time_s)
    tag = Path(str(name)).name
    table = table.drop(columns=["n_points"]).rename(
        columns={c: f"{tag} {c}" for c in table.columns if c != C.TRACK_ID})
    analysis.diffusion = diff.merge(table, on=C.TRACK_ID, how="left")
    analysis.steps = steps
    analysis.summary["trajectory_model"] = tag


def _write_analysis(movie, analysis, out: Path, extra: dict | None = None) -> None:
    from smlmnet.io.jsonio import write_json
    from smlmnet.io.tables import to_thunderstorm, to_trackpy, write_csv
    from smlmnet.plotting import plot_analysis_report

    out.mkdir(parents=True, exist_ok=True)
    write_csv(to_thunderstorm(analysis.localizations), out / "localizations.csv")
    write_csv(analysis.tracks, out / "tracks.csv")
    write_csv(to_trackpy(analysis.tracks, movie.pixel_size_nm), out / "tracks_trackpy.csv")
    write_csv(analysis.diffusion, out / "diffusion.csv")
    if analysis.steps is not None:
        write_csv(analysis.steps, out / "diffusion_steps.csv")
    plot_analysis_report(movie, analysis, out / "report.png",
                         assumptions=(extra or {}).get("assumptions"))
    write_json(out / "summary.json", {**analysis.summary, **(extra or {})})


def default_torch_threads() -> int:
    """Intra-op threads for the networks: the cores that are idle now (cores available to
    this process minus the 1-minute load average), at least 1 and at most 8. On an idle
    2-core machine 2 threads are 1.7× faster than 1; on a loaded one the second thread only
    competes (benchmarks/results/localizer_speed)."""
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover
        load = 0.0
    return max(1, min(8, cores - int(load + 0.5)))


def _linker(args):
    from smlmnet.link import LAPLinker, NearestNeighborLinker

    if args.linker == "transformer":
        from smlmnet.models.registry import list_models, load

        name = getattr(args, "linker_model", None) or list_models("linker")[0]
        return load(name)
    link_cls = LAPLinker if args.linker == "lap" else NearestNeighborLinker
    return link_cls(search_radius_nm=args.search_radius_nm, max_gap_frames=args.max_gap)


def _set_threads(args) -> None:
    import torch

    torch.set_num_threads(args.threads or default_torch_threads())


def _assumptions(args, movie, psf: float, psf_from: str, localizer, linker,
                 calibration: dict | None) -> dict:
    """Every assumption behind an analysis, for summary.json and report.png."""
    import torch

    from smlmnet.io.provenance import git_commit, reproduce_command

    chosen = getattr(localizer, "chosen", None) or localizer
    info = getattr(chosen, "info", None) or {}
    linked_with = linker.settings()
    out = {
        "command": reproduce_command(),
        "smlmnet_version": __version__, "commit": git_commit(),
        "pixel_size_nm": movie.pixel_size_nm,
        "frame_time_s": movie.frame_time_s,
        "exposure_time_s": movie.exposure_time_s,
        "camera": dict(movie.camera or {}),
        "psf_sigma_nm": psf, "psf_sigma_source": psf_from,
        "localizer": chosen.name,
        "localizer_decision": getattr(localizer, "decision", []),
        "model": ({"name": info.get("name"), "weights_sha256": info.get("weights_sha256"),
                   "thresholds": info.get("thresholds"),
                   "uncertainty_scale": info.get("uncertainty_scale"),
                   "uncertainty_scale_by_p": info.get("uncertainty_scale_by_p")}
                  if info else None),
        "detection_threshold_noise_units": (args.threshold if not info else None),
        "linker": linker.name, "linker_settings": linked_with,
        "search_radius_nm": linked_with.get("search_radius_nm"),
        "max_gap_frames": linked_with.get("max_gap_frames"),
        "min_track_length": getattr(args, "min_length", 5),
        "torch_threads": torch.get_num_threads(),
        "calibration_used_for": ("guard facts (PSF sigma, density, clipping flags); photon "
                                 "counts use the camera above" if calibration else None),
    }
    return out


def _camera_defaults() -> dict:
    """`--camera` without the other flags: the one camera model's neutral values
    (:data:`smlmnet.data.camera.NEUTRAL_CAMERA`), except the offset, which the CLI has always
    defaulted to 100 ADU (a common factory offset)."""
    from smlmnet.data.camera import NEUTRAL_CAMERA

    return {**NEUTRAL_CAMERA, "baseline_adu": 100.0}


CAMERA_DEFAULTS = _camera_defaults()


def _analysis_camera(args, from_tiff: dict | None) -> dict:
    """Camera of `analyze`: the TIFF's, with the flags given on the command line on top.

    A camera flag (``--baseline-adu`` ...) is never ignored silently: without ``--camera`` it
    needs a camera model in the TIFF metadata. ``--camera`` naming another model than the
    TIFF's starts from ``CAMERA_DEFAULTS``.
    """
    given = {k: getattr(args, k) for k in CAMERA_DEFAULTS if getattr(args, k) is not None}
    cam = dict(from_tiff or {})
    if args.camera is None and not (cam.get("model") or any(k in cam for k in CAMERA_DEFAULTS)):
        if given:
            flags = " ".join("--" + k.replace("_", "-") for k in given)
            raise ValueError(f"{flags} given but no camera model: the TIFF metadata states none; "
                             "add --camera scmos (or emccd)")
        warnings.warn("no camera parameters (not in the TIFF metadata): pixel values are taken "
                      "as photons; pass --camera scmos|emccd with --baseline-adu, --e-per-adu "
                      "(and --em-gain, --qe) for correct photon counts", stacklevel=2)
        return {**cam, "model": "poisson"}
    if args.camera is not None and args.camera != cam.get("model"):
        # another camera than the TIFF's: its values do not apply
        cam = {k: v for k, v in cam.items() if k not in CAMERA_DEFAULTS}
        cam.update(model=args.camera, **CAMERA_DEFAULTS)
    if given and (args.camera or cam.get("model")) == "poisson":
        flags = " ".join("--" + k.replace("_", "-") for k in given)
        raise ValueError(f"{flags} has no effect on a poisson camera (pixel values are photons); "
                         "use --camera scmos (or emccd) to apply it")
    return {**cam, **given}


def _check_output_not_over_input(out: Path, movie: Path) -> None:
    """Refuse an output folder that is, holds, or lies inside the input movie."""
    o, m = out.resolve(), movie.resolve()
    if o == m or o in m.parents:
        what = "is the input movie" if o == m else "holds the input movie"
        raise ValueError(f"the output folder {str(out)!r} {what} {str(movie)!r}; outputs never "
                         "go over the input: choose a new folder with -o/--output")
    if m in o.parents:
        raise ValueError(f"the output folder {str(out)!r} lies inside the input movie file "
                         f"{str(movie)!r}: choose a new folder with -o/--output")


def _new_output(movie_path: Path, output: str | None, suffix: str) -> Path:
    """The output folder of a command on a movie (default ``<movie stem><suffix>/``), checked
    to be new (or empty) and never over the input, before any work."""
    from smlmnet.io.atomic import check_output_dir

    out = Path(output) if output else movie_path.with_name(movie_path.stem + suffix)
    _check_output_not_over_input(out, movie_path)
    check_output_dir(out)
    return out


def cmd_analyze(args) -> int:
    from smlmnet.io.atomic import atomic_output_dir
    from smlmnet.io.tiff import read_movie_tiff
    from smlmnet.pipeline import analyze_movie

    movie_path = Path(args.movie)
    out = _new_output(movie_path, args.output, "_smlmnet")
    movie = read_movie_tiff(movie_path, args.pixel_size_nm, args.frame_time_s, lazy=True,
                            exposure_time_s=args.exposure_s)
    movie.camera = _analysis_camera(args, movie.camera)
    if movie.exposure_time_s is None and not args.stroboscopic:
        warnings.warn("the exposure time is unknown (not in the TIFF metadata): assuming no "
                      "motion blur (R = 0); pass --exposure-s S, or --stroboscopic to silence "
                      "this", stacklevel=2)
    from smlmnet.guard import prepare_localizer
    from smlmnet.io.tiff import tiff_psf_sigma_nm

    _set_threads(args)

    tiff_psf = None if args.psf_sigma_nm else tiff_psf_sigma_nm(movie_path)
    localizer, chosen = prepare_localizer(
        movie, args.localizer, model=args.model, psf_sigma_nm=args.psf_sigma_nm or tiff_psf,
        psf_sigma_source="--psf-sigma-nm" if args.psf_sigma_nm else "the TIFF metadata",
        calibrate=args.calibrate, camera=args.camera, threshold=args.threshold,
        force=args.force_model, uncertainty=args.uncertainty_calibration)
    psf, psf_from, calibration = (chosen["psf_sigma_nm"], chosen["psf_sigma_source"],
                                  chosen["calibration"])
    if not args.quiet:
        print(f"PSF sigma {psf:.4g} nm from {psf_from}")
    problem = pixel_psf_problem(args.pixel_diffusion, args.stroboscopic, movie.exposure_time_s,
                                psf, psf_from)
    if problem:
        warnings.warn(problem, stacklevel=2)
    linker = _linker(args)
    analysis = analyze_movie(movie, localizer, linker, args.min_length,
                             0.0 if args.stroboscopic else None, progress=not args.quiet)
    assumptions = _assumptions(args, movie, psf, psf_from, localizer, linker, calibration)
    analysis.summary["localizer"] = assumptions["localizer"]
    if getattr(args, "trajectory_model", None):
        _add_trajectory_model(analysis, args.trajectory_model, movie.frame_time_s)
    dmap = _pixel_diffusion(args, movie, analysis, psf)
    with atomic_output_dir(out) as tmp:
        _write_analysis(movie, analysis, tmp, {"movie": str(movie_path),
                                               "assumptions": assumptions})
        for sub_name, model in analysis.models.items():
            from smlmnet.models.registry import write_model_folder

            write_model_folder(tmp / sub_name, model.net.state_dict(), model.info)
        if dmap is not None:
            import numpy as np

            from smlmnet.plotting import plot_diffusivity_map

            np.save(tmp / "diffusivity_map.npy", dmap)
            plot_diffusivity_map(dmap, args.map_bin_px, tmp / "diffusivity_map.png")
        if calibration:
            from smlmnet.io.jsonio import write_json

            write_json(tmp / "calibration.json", calibration)
    s = analysis.summary
    print(f"{s['n_localizations']} localizations ({assumptions['localizer']}), "
          f"{s['n_tracks']} tracks; wrote {out}/: localizations.csv (ThunderSTORM) tracks.csv "
          "tracks_trackpy.csv diffusion.csv report.png summary.json"
          + (" calibration.json" if calibration else "")
          + (" diffusivity_map.png diffusivity_map.npy" if dmap is not None else "")
          + "".join(f" {name}/" for name in analysis.models))
    return 0


def pixel_psf_problem(pixel_diffusion, stroboscopic: bool, exposure_time_s, psf_sigma_nm: float,
                      psf_from: str) -> str | None:
    """The warning for ``analyze --pixel-diffusion`` when the PSF σ is not known apart from
    the blur (measured on the blurred movie itself, or a default), else None."""
    if (not pixel_diffusion or stroboscopic or exposure_time_s == 0
            or not psf_from.startswith(("the movie itself", "the default"))):
        return None
    why = ("was measured on this movie, whose moving spots are blurred: blur is then taken for "
           "PSF and D reads low (an AnDi movie at 1 um^2/s, continuous exposure: 98 nm measured "
           "vs 74 nm stroboscopic, median pixel D 0.62 vs 0.88, true 1)"
           if psf_from.startswith("the movie itself") else
           f"is a default ({psf_sigma_nm:.4g} nm), not this microscope's: widths read against "
           "it mean nothing")
    return (f"--pixel-diffusion reads motion blur as spot width beyond the PSF, but the PSF "
            f"sigma {why}; pass --psf-sigma-nm from a stroboscopic, fixed or bead recording")


def _pixel_diffusion(args, movie, analysis, psf_sigma_nm: float):
    """``analyze --pixel-diffusion [MODEL]``: add per-track (``diffusion.csv``) and
    per-localization (``tracks.csv``) D read from the pixels by a model of kind
    ``pixel_diffusion`` or a classical pixel estimator (``blur_likelihood``); returns the
    diffusivity map (or None when not asked)."""
    if not args.pixel_diffusion:
        return None
    from smlmnet.data import contracts as C
    from smlmnet.diffusion.mivit.infer import (
        PIXEL_ALPHA,
        PIXEL_ALPHA_STD,
        PIXEL_D,
        PIXEL_D_LOG_STD,
        diffusivity_map,
    )
    from smlmnet.diffusion.tubelets import load_pixel_estimator

    est = load_pixel_estimator(args.pixel_diffusion)
    if hasattr(est, "assumptions"):
        analysis.summary["pixel diffusion assumptions"] = est.assumptions()
    if analysis.tracks.empty:
        if args.pixel_adapt:
            raise SystemExit("--pixel-adapt: no tracks in this movie to adapt on")
        return diffusivity_map(analysis.tracks, movie.pixel_size_nm,
                               movie.frames.shape[1:], args.map_bin_px)
    if args.pixel_adapt:
        est = _adapt_pixel_model(args, est, movie, analysis, psf_sigma_nm)
    per_track, per_loc = est.estimate(movie, analysis.tracks, psf_sigma_nm)
    analysis.tracks = per_loc
    cols = per_track.set_index(C.TRACK_ID)[[c for c in (PIXEL_D, PIXEL_D_LOG_STD, PIXEL_ALPHA,
                                                        PIXEL_ALPHA_STD) if c in per_track]]
    if len(analysis.diffusion):
        analysis.diffusion = analysis.diffusion.join(cols, on=C.TRACK_ID)
    analysis.summary["pixel diffusion model"] = str(args.pixel_diffusion)
    d = per_track[PIXEL_D]
    if d.notna().any():
        analysis.summary[f"median {PIXEL_D}"] = float(d.median())
    if PIXEL_ALPHA in per_track and per_track[PIXEL_ALPHA].notna().any():
        analysis.summary[f"median {PIXEL_ALPHA}"] = float(per_track[PIXEL_ALPHA].median())
    return diffusivity_map(per_loc, movie.pixel_size_nm, movie.frames.shape[1:],
                           args.map_bin_px)


def _adapt_pixel_model(args, est, movie, analysis, psf_sigma_nm: float):
    """``analyze --pixel-adapt``: fine-tune the pixel-diffusion network on this movie's
    tubelets without labels (:func:`smlmnet.diffusion.mivit.adapt.adapt_to_movie`); the
    adapted model goes to ``analysis.models["pixel_model"]`` (written to the output
    folder) and what was done to the summary."""
    from smlmnet.diffusion.mivit.adapt import adapt_to_movie

    if not hasattr(est, "net"):
        raise SystemExit(f"--pixel-adapt adapts a network; {args.pixel_diffusion!r} has no "
                         "weights (pass --pixel-diffusion with a model of kind "
                         "pixel_diffusion, e.g. mivit_pixel_diffusion)")
    adapted, record = adapt_to_movie(est, movie, analysis.tracks, psf_sigma_nm,
                                     steps=args.pixel_adapt_steps, seed=0,
                                     progress=not args.quiet)
    base = adapted.info.get("name", str(args.pixel_diffusion))
    adapted.info.update(name=f"{base}_adapted", description=(
        f"{base} adapted without labels to {Path(args.movie).name} (ssl distill)"))
    analysis.summary["pixel diffusion adaptation"] = record
    analysis.models["pixel_model"] = adapted
    return adapted


def cmd_analyze_tracks(args) -> int:
    from smlmnet.data import contracts as C
    from smlmnet.diffusion.estimators import LogLogMSD
    from smlmnet.io.tables import read_tracks_csv, write_csv
    from smlmnet.models.registry import load

    _set_threads(args)
    tracks, fmt = read_tracks_csv(args.tracks, args.pixel_size_nm, args.length_unit)
    lengths = tracks.groupby(C.TRACK_ID).size()
    keep = lengths.index[lengths >= args.min_length]
    tracks = tracks[tracks[C.TRACK_ID].isin(keep)]
    if tracks.empty:
        raise ValueError(f"{args.tracks}: no track has >= {args.min_length} points")
    est = load(args.model)
    table, steps = trajectory_tables(est, tracks, args.frame_time_s)
    msd = LogLogMSD().estimate(tracks, args.frame_time_s)
    table["msd_loglog alpha"] = msd.set_index(C.TRACK_ID)[C.ALPHA].reindex(
        table[C.TRACK_ID]).to_numpy()
    out = Path(args.output) if args.output else \
        Path(args.tracks).with_name(Path(args.tracks).stem + "_diffusion.csv")
    write_csv(table, out, overwrite=args.overwrite)
    wrote = str(out)
    if steps is not None:
        steps_out = out.with_name(out.stem + "_steps.csv")
        write_csv(steps, steps_out, overwrite=args.overwrite)
        wrote += f" and {steps_out} (per step)"
    print(f"{len(table)} tracks ({fmt} table, >= {args.min_length} points) analysed with "
          f"{args.model}: median alpha {table[C.ALPHA].median():.3g}; wrote {wrote}")
    return 0


def cmd_calibrate(args) -> int:
    from smlmnet.calibrate import calibrate_tiff, write_calibration

    movie_path = Path(args.movie)
    out = _new_output(movie_path, args.output, "_calibration")
    cal = calibrate_tiff(movie_path, camera=args.camera, pixel_size_nm=args.pixel_size_nm,
                         frame_time_s=args.frame_time_s, psf_sigma_nm_hint=args.psf_sigma_nm,
                         baseline_adu=args.baseline_adu)
    write_calibration(cal, out, base_preset=args.base_preset)
    print(cal.summary())
    print(f"wrote {out}/: calibration.json preset.yaml calibration.png "
          f"(simulate like this movie: smlmnet simulate --config {out / 'preset.yaml'} -o NEW)")
    return 0


def cmd_demo(args) -> int:
    from smlmnet.io.atomic import check_output_dir
    from smlmnet.io.jsonio import write_json
    from smlmnet.metrics.pipeline import score_analysis
    from smlmnet.pipeline import analyze_movie
    from smlmnet.simulate import load_config

    out = Path(args.output) if args.output else Path("smlmnet_demo") / time.strftime(
        "%Y-%m-%d_%H-%M-%S")
    check_output_dir(out)
    cfg = load_config("demo", args.overrides)
    print(f"smlmnet {__version__} demo: simulating the 'demo' preset (Brownian, fBM, confined, "
          "directed, anisotropic and switching particles)")
    sim = _simulate_and_save(cfg, out / "simulation", figure=True, progress=not args.quiet)
    from smlmnet.guard import prepare_localizer

    _set_threads(args)
    localizer, _ = prepare_localizer(sim.movie, args.localizer, model=args.model,
                                     psf_sigma_nm=cfg.psf.sigma,
                                     psf_sigma_source="the simulation config",
                                     calibrate="never", threshold=args.threshold,
                                     force=args.force_model)
    linker = _linker(args)
    analysis = analyze_movie(sim.movie, localizer, linker, progress=not args.quiet)
    scores = score_analysis(sim, analysis)
    _write_analysis(sim.movie, analysis, out / "analysis", {"scores": scores})
    loc, trk = scores["localization"], scores["tracking"]
    print(f"analysis ({analysis.summary['localizer']} + {analysis.summary['linker']}): "
          f"{analysis.summary['n_localizations']} localizations, "
          f"{analysis.summary['n_tracks']} tracks")
    print(f"  localization vs truth: Jaccard {loc['jaccard [%]']:.1f} %, RMSE "
          f"{loc['rmse_lateral [nm]']:.1f} nm, efficiency {loc['efficiency [%]']:.1f} %")
    print(f"  tracking vs truth (PTC, 5 px gate): alpha {trk['alpha']:.3f}, beta "
          f"{trk['beta']:.3f}, JSC {trk['jsc']:.3f}, JSC_theta {trk['jsc_theta']:.3f}")
    if "diffusion" in scores and scores["diffusion"]["n_tracks_scored"]:
        d = scores["diffusion"]
        print(f"  D (MLE) on {d['n_tracks_scored']} Brownian tracks: relative bias "
              f"{d['rel_bias_D']:+.2f}, relative RMSE {d['rel_rmse_D']:.2f}")
    write_json(out / "scores.json", scores)
    print(f"open {out / 'simulation' / 'overview.png'} (truth) and "
          f"{out / 'analysis' / 'report.png'} (analysis)")
    return 0


def cmd_presets(args) -> int:
    from smlmnet.simulate.config import config_dir, list_presets

    for name in list_presets():
        text = (config_dir() / "simulation" / f"{name}.yaml").read_text().splitlines()
        first = next((line.lstrip("# ").strip() for line in text if line.startswith("#")), "")
        print(f"{name:20s} {first}")
    return 0


def cmd_models(args) -> int:
    from smlmnet.models.registry import describe, kinds, list_models

    rows = [describe(n) for n in list_models()]
    if args.json:
        import json

        print(json.dumps(rows, indent=2))
        return 0
    print(f"{len(rows)} shipped model(s); kinds known: {', '.join(kinds())}")
    for r in rows:
        v = r["validation"]
        metrics = ", ".join(f"{k} {v[k]:.3g}" for k in (
            "jaccard [%]", "rmse_lateral [nm]", "efficiency [%]", "alpha_mae",
            "model_f1_micro", "cp_jaccard", "alpha", "beta", "JSC_theta", "log_d_rmse") if k in v)
        print(f"\n{r['name']}  [{r['kind']}]  sha256 {r['weights_sha256']}…  {r['path']}")
        for key, rng in r["training_ranges"].items():
            if isinstance(rng, list) and len(rng) == 2 and all(
                    isinstance(x, (int, float)) for x in rng):
                rng = f"{rng[0]:.3g} – {rng[1]:.3g}"
            print(f"    {key:28s} {rng}")
        if metrics:
            print(f"    validation: {metrics}")
    return 0


def cmd_recalibrate(args) -> int:
    from smlmnet.localize.decode.export import recalibrate

    folder = recalibrate(args.model, args.output, items=args.items, seed=args.seed)
    print(f"wrote {folder}/ (model.yaml, weights.pt, MODEL_CARD.md): thresholds and "
          f"uncertainty scale recomputed; {args.model} itself is unchanged")
    return 0


def cmd_train_localizer(args) -> int:
    from smlmnet.finetune import train_like

    out = train_like(args.like, args.output, base_model=args.base_model, steps=args.steps,
                     batch_size=args.batch_size, num_workers=args.workers,
                     camera=args.camera, pixel_size_nm=args.pixel_size_nm,
                     frame_time_s=args.frame_time_s, overrides=tuple(args.overrides),
                     fit_threshold=not args.simulation_threshold)
    print(f"wrote {out}/ (model.yaml, weights.pt, MODEL_CARD.md); use it with "
          f"`smlmnet analyze MOVIE.tif --model {out}`")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smlmnet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"smlmnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="simulate a movie with ground truth into a new folder")
    p.add_argument("preset", nargs="?", default="sptpalm_membrane",
                   help="preset name from smlmnet/configs/simulation (see `smlmnet presets`)")
    p.add_argument("overrides", nargs="*", help="config overrides key=value, e.g. n_frames=50 "
                   "camera.em_gain=200 particles.motions.0.D_um2_s=0.5")
    p.add_argument("-o", "--output", required=True, help="new (or empty) output folder")
    p.add_argument("--config", help="a config.yaml (e.g. from a dataset) instead of a preset")
    p.add_argument("--no-figure", action="store_true", help="skip overview.png")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--chunk-frames", type=int, default=None,
                   help="frames simulated and written at a time (bounds the memory; default "
                   "~2 million pixels per chunk, e.g. 128 frames of 128x128)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("demo", help="simulate a small movie and plot it (the quick start)")
    p.add_argument("overrides", nargs="*", help="config overrides key=value")
    p.add_argument("-o", "--output", help="output folder (default smlmnet_demo/<timestamp>)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)

    def add_analysis_options(p):
        from smlmnet.models.registry import list_models

        p.add_argument("--localizer", choices=["auto", "decode", "mle", "centroid"],
                       default="auto",
                       help="auto (default): the shipped networks whose training ranges hold "
                       "the movie, specialists first, with the MLE fit as the fallback; "
                       "decode: --model (then MLE); mle/centroid: classical fits")
        p.add_argument("--model", default=None,
                       help="a model folder or a shipped localizer: "
                       + ", ".join(list_models("localizer"))
                       + " (see `smlmnet models`)")
        p.add_argument("--force-model", action="store_true",
                       help="use the model even outside its training ranges or when its "
                       "output fails the sanity checks")
        p.add_argument("--threads", type=int, default=None,
                       help="torch threads (default: the idle cores, 1 to 8)")
        p.add_argument("--threshold", type=float, default=5.0,
                       help="mle/centroid detection threshold in robust noise units")
        linkers = ["lap", "nn"] + (["transformer"] if list_models("linker") else [])
        p.add_argument("--linker", choices=linkers, default="lap",
                       help="lap, nn (nearest neighbour) or transformer (a shipped learned "
                       "linker: " + (", ".join(list_models("linker")) or "none") + ")")
        p.add_argument("--linker-model", default=None,
                       help="model folder or shipped name of kind linker for --linker "
                       "transformer (default: the first shipped one)")
        p.add_argument("--search-radius-nm", type=float, default=500.0)
        p.add_argument("--max-gap", type=int, default=2, help="frames bridged by gap closing")

    add_analysis_options(sub.choices["demo"])

    p = sub.add_parser("analyze", help="localize, link and estimate diffusion in a TIFF movie")
    p.add_argument("movie", help="TIFF movie (T, H, W)")
    p.add_argument("-o", "--output", help="new output folder (default MOVIE_smlmnet/)")
    p.add_argument("--pixel-size-nm", type=float, help="overrides the TIFF metadata")
    p.add_argument("--frame-time-s", type=float, help="overrides the TIFF metadata")
    p.add_argument("--exposure-s", type=float, help="exposure per frame (motion blur)")
    p.add_argument("--stroboscopic", action="store_true", help="no motion blur (R = 0)")
    p.add_argument("--camera", choices=["poisson", "scmos", "emccd"],
                   help="camera model (default: from the TIFF metadata)")
    cam_help = "(default: the TIFF metadata, else {})"
    p.add_argument("--baseline-adu", type=float, help="camera offset subtracted from the pixel "
                   "values; negative for offset/background-subtracted data "
                   + cam_help.format(100))
    p.add_argument("--e-per-adu", type=float, help=cam_help.format(1))
    p.add_argument("--em-gain", type=float, help=cam_help.format(1))
    p.add_argument("--qe", type=float, help=cam_help.format(1))
    p.add_argument("--read-noise-e", type=float, help=cam_help.format(0))
    p.add_argument("--calibrate", choices=["auto", "always", "never"], default="auto",
                   help="calibrate the movie from itself for the domain guard (auto: when "
                   "the PSF sigma or the camera is unknown)")
    p.add_argument("--uncertainty-calibration", choices=["movie", "model"], default="movie",
                   help="scale of a learned localizer's uncertainties: movie = measured on "
                   "2 short simulations like this movie (from its calibration; seconds), "
                   "model = the scale tuned on the model's training distribution")
    p.add_argument("--psf-sigma-nm", type=float,
                   help="PSF sigma (default: the TIFF metadata, else measured from the movie "
                   "(--calibrate), else 130 nm)")
    p.add_argument("--min-length", type=int, default=5,
                   help="minimal track length for diffusion estimates")
    p.add_argument("--trajectory-model", default=None,
                   help="also run a trajectory model (shipped name, e.g. trajnet_andi2, or a "
                   "model folder) on the tracks: its per-track alpha, K, state and "
                   "changepoints join diffusion.csv and its per-step table is written to "
                   "diffusion_steps.csv")
    p.add_argument("--pixel-diffusion", nargs="?", const="mivit_pixel_diffusion", default=None,
                   metavar="MODEL",
                   help="also read D from the pixels around each localization with a model of "
                   "kind pixel_diffusion (default mivit_pixel_diffusion) or 'blur_likelihood' "
                   "(classical: the track's displacements plus the motion-blur widths of "
                   "per-frame Gaussian fits, no weights): per-track and per-localization "
                   "'pixel D [um^2/s]' columns and diffusivity_map.png")
    p.add_argument("--pixel-adapt", action="store_true",
                   help="with --pixel-diffusion MODEL (a network): first fine-tune it on this "
                   "movie's tracked molecules without labels, the motion-blur likelihood as "
                   "teacher (ssl distill), then estimate with it; the adapted model is "
                   "written to OUTPUT/pixel_model/ (reuse: --pixel-diffusion "
                   "OUTPUT/pixel_model). It helps where blur carries D; on AnDi movies it "
                   "made slow molecules (D <= 0.1 um^2/s) worse (README, Benchmarks)")
    p.add_argument("--pixel-adapt-steps", type=int, default=150,
                   help="AdamW steps of --pixel-adapt (64 tubelets each)")
    p.add_argument("--map-bin-px", type=int, default=8,
                   help="bin of the diffusivity map, camera pixels")
    p.add_argument("-q", "--quiet", action="store_true")
    add_analysis_options(p)
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("analyze-tracks", help="per-track alpha, K and AnDi motion model of a "
                       "tracks table (smlmnet, trackpy or TrackMate CSV) with the trajectory "
                       "network")
    p.add_argument("tracks", help="tracks CSV: smlmnet (track_id, frame, x [nm], y [nm]), "
                   "trackpy (particle, frame, x, y in px) or TrackMate spots (TRACK_ID, FRAME, "
                   "POSITION_X, POSITION_Y)")
    p.add_argument("--frame-time-s", type=float, required=True, help="time between frames, s")
    p.add_argument("--pixel-size-nm", type=float, default=None,
                   help="pixel size for tables in pixels (trackpy; TrackMate with --length-unit "
                   "px)")
    p.add_argument("--length-unit", choices=["nm", "um", "px"], default=None,
                   help="unit of TrackMate's POSITION_X/Y (default um)")
    p.add_argument("--model", default="trajnet_andi1",
                   help="a shipped trajectory model or a model folder (kind trajectory)")
    p.add_argument("--min-length", type=int, default=10, help="shortest track analysed, points")
    p.add_argument("-o", "--output", default=None,
                   help="output CSV (default: TRACKS_diffusion.csv next to the input); a model "
                   "with per-step outputs also writes OUTPUT_steps.csv")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.set_defaults(func=cmd_analyze_tracks)

    p = sub.add_parser("calibrate", help="measure camera gain/offset, PSF sigma, background, "
                       "photons and density from a TIFF movie itself")
    p.add_argument("movie", help="TIFF movie (T, H, W), raw camera counts")
    p.add_argument("-o", "--output", help="new output folder (default MOVIE_calibration/)")
    p.add_argument("--camera", choices=["emccd", "scmos", "poisson"],
                   help="camera type (EMCCD: excess noise factor 2); default the TIFF "
                   "metadata, else scmos")
    p.add_argument("--pixel-size-nm", type=float, help="overrides the TIFF metadata")
    p.add_argument("--frame-time-s", type=float, help="overrides the TIFF metadata")
    p.add_argument("--psf-sigma-nm", type=float, help="start value of the PSF sigma fit")
    p.add_argument("--baseline-adu", type=float, help="known camera offset (ADU)")
    p.add_argument("--base-preset", default="sptpalm_membrane",
                   help="simulation preset that preset.yaml overrides")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("presets", help="list the simulation presets")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("models", help="list the shipped models, their training ranges and "
                       "validation metrics (from the model registry)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("train-localizer", help="calibrate a movie, simulate training windows "
                       "like it and fine-tune the generalist: a model folder for your microscope")
    p.add_argument("--like", required=True, help="a TIFF movie from the microscope")
    p.add_argument("-o", "--output", required=True, help="new model folder")
    p.add_argument("--base-model", default="decode_generalist",
                   help="model to fine-tune (shipped name or folder)")
    p.add_argument("--steps", type=int, default=800,
                   help="optimizer steps (~1 s each on 2 CPU cores; more on a GPU)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=1, help="data-simulating processes")
    p.add_argument("--camera", choices=["poisson", "scmos", "emccd"])
    p.add_argument("--pixel-size-nm", type=float)
    p.add_argument("--frame-time-s", type=float)
    p.add_argument("--simulation-threshold", action="store_true",
                   help="keep the detection threshold tuned on the simulated windows even when "
                   "its localization count on the movie differs from the base model's (default: "
                   "move it to match; see smlmnet.finetune)")
    p.add_argument("overrides", nargs="*", help="extra train.py overrides, e.g. trainer=gpu")
    p.set_defaults(func=cmd_train_localizer)

    p = sub.add_parser("recalibrate", help="recompute a model's detection threshold and "
                       "uncertainty scale on fresh simulated windows; writes a NEW model folder")
    p.add_argument("model", help="shipped model name or model folder")
    p.add_argument("-o", "--output", required=True, help="new model folder")
    p.add_argument("--items", type=int, default=512, help="windows for tuning and for the "
                   "report (each)")
    p.add_argument("--seed", type=int, default=1, help="seed of the tuning windows (report: "
                   "seed + 1)")
    p.set_defaults(func=cmd_recalibrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "simulate" and "=" in args.preset:
        # `smlmnet simulate n_frames=5 -o x`: no preset given, the first word is an override
        args.overrides.insert(0, args.preset)
        args.preset = "sptpalm_membrane"
    from smlmnet.io.atomic import OutputExistsError
    from smlmnet.simulate.params import ConfigError

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"smlmnet {args.command}: warning: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show  # one clean line per warning, restored on exit
            return args.func(args)
    except (ConfigError, OutputExistsError, OSError, ValueError) as err:
        print(f"smlmnet {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
