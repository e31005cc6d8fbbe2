"""The ``smlmnet`` command line.

    smlmnet demo                       simulate a small movie and plot it (no downloads)
    smlmnet simulate PRESET [k=v ...] -o FOLDER
    smlmnet simulate --config FOLDER/config.yaml -o NEW_FOLDER   (regenerate a dataset)
    smlmnet presets                    list the simulation presets
    smlmnet analyze MOVIE.tif [-o FOLDER]   localize, link and measure diffusion
"""

from __future__ import annotations

import argparse
import sys
import time
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


def _write_analysis(movie, analysis, out: Path, extra: dict | None = None) -> None:
    import json

    from smlmnet.io.tables import to_thunderstorm, to_trackpy, write_csv
    from smlmnet.plotting import plot_analysis_report

    out.mkdir(parents=True, exist_ok=True)
    write_csv(to_thunderstorm(analysis.localizations), out / "localizations.csv")
    write_csv(analysis.tracks, out / "tracks.csv")
    write_csv(to_trackpy(analysis.tracks, movie.pixel_size_nm), out / "tracks_trackpy.csv")
    write_csv(analysis.diffusion, out / "diffusion.csv")
    plot_analysis_report(movie, analysis, out / "report.png")
    (out / "summary.json").write_text(json.dumps({**analysis.summary, **(extra or {})},
                                                 indent=2, default=float))


def _analysis_components(args, psf_sigma_nm: float, pixel_size_nm: float):
    from smlmnet.link import LAPLinker, NearestNeighborLinker
    from smlmnet.localize import SpotFitLocalizer

    if args.localizer == "decode":
        from smlmnet.localize.decode_localizer import DecodeLocalizer

        localizer = DecodeLocalizer.from_pretrained(args.model)
        trained_px = localizer.info.get("pixel_size_nm", pixel_size_nm)
        if abs(pixel_size_nm / trained_px - 1) > 0.1:
            print(f"warning: model {args.model!r} was trained for {trained_px:g} nm pixels, "
                  f"the movie has {pixel_size_nm:g} nm; consider --localizer mle or a model "
                  "trained for this pixel size", file=sys.stderr)
    else:
        localizer = SpotFitLocalizer(args.localizer, psf_sigma_nm=psf_sigma_nm,
                                     threshold=args.threshold)
    link_cls = LAPLinker if args.linker == "lap" else NearestNeighborLinker
    linker = link_cls(search_radius_nm=args.search_radius_nm, max_gap_frames=args.max_gap)
    return localizer, linker


def cmd_analyze(args) -> int:
    from smlmnet.io.atomic import atomic_output_dir, check_output_dir
    from smlmnet.io.tiff import read_movie_tiff
    from smlmnet.pipeline import analyze_movie

    movie_path = Path(args.movie)
    out = Path(args.output) if args.output else movie_path.with_name(
        movie_path.stem + "_smlmnet")
    if out.resolve() == movie_path.resolve():
        raise ValueError("the output folder must not be the input movie")
    check_output_dir(out)
    movie = read_movie_tiff(movie_path, args.pixel_size_nm, args.frame_time_s, lazy=True)
    if args.camera:
        movie.camera = {"model": args.camera, "baseline_adu": args.baseline_adu,
                        "e_per_adu": args.e_per_adu, "em_gain": args.em_gain, "qe": args.qe,
                        "read_noise_e": args.read_noise_e}
    if args.exposure_s is not None:
        movie.exposure_time_s = args.exposure_s
    psf = args.psf_sigma_nm or (movie.camera or {}).get("psf_sigma_nm") or 130.0
    localizer, linker = _analysis_components(args, psf, movie.pixel_size_nm)
    analysis = analyze_movie(movie, localizer, linker, args.min_length,
                             0.0 if args.stroboscopic else None, progress=not args.quiet)
    with atomic_output_dir(out) as tmp:
        _write_analysis(movie, analysis, tmp, {"movie": str(movie_path)})
    s = analysis.summary
    print(f"{s['n_localizations']} localizations, {s['n_tracks']} tracks; wrote {out}/: "
          "localizations.csv (ThunderSTORM) tracks.csv tracks_trackpy.csv diffusion.csv "
          "report.png summary.json")
    return 0


def cmd_demo(args) -> int:
    import json

    from smlmnet.io.atomic import check_output_dir
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
    localizer, linker = _analysis_components(args, cfg.psf.sigma, cfg.fov.pixel_size_nm)
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
    (out / "scores.json").write_text(json.dumps(scores, indent=2))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smlmnet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"smlmnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="simulate a movie with ground truth into a new folder")
    p.add_argument("preset", nargs="?", default="sptpalm_membrane",
                   help="preset name from configs/simulation (see `smlmnet presets`)")
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
        p.add_argument("--localizer", choices=["decode", "mle", "centroid"], default="decode",
                       help="decode: the shipped network (default); mle/centroid: classical "
                       "fits")
        p.add_argument("--model", default="decode_sptpalm",
                       help="shipped model name or model folder for --localizer decode")
        p.add_argument("--threshold", type=float, default=5.0,
                       help="mle/centroid detection threshold in robust noise units")
        p.add_argument("--linker", choices=["lap", "nn"], default="lap")
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
    p.add_argument("--baseline-adu", type=float, default=100.0)
    p.add_argument("--e-per-adu", type=float, default=1.0)
    p.add_argument("--em-gain", type=float, default=1.0)
    p.add_argument("--qe", type=float, default=1.0)
    p.add_argument("--read-noise-e", type=float, default=0.0)
    p.add_argument("--psf-sigma-nm", type=float, help="PSF sigma (default 130 nm)")
    p.add_argument("--min-length", type=int, default=5,
                   help="minimal track length for diffusion estimates")
    p.add_argument("-q", "--quiet", action="store_true")
    add_analysis_options(p)
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("presets", help="list the simulation presets")
    p.set_defaults(func=cmd_presets)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "simulate" and "=" in args.preset:
        # `smlmnet simulate n_frames=5 -o x`: no preset given, the first word is an override
        args.overrides.insert(0, args.preset)
        args.preset = "sptpalm_membrane"
    from smlmnet.io.atomic import OutputExistsError
    from smlmnet.simulate.params import ConfigError

    try:
        return args.func(args)
    except (ConfigError, OutputExistsError, FileNotFoundError, ValueError) as err:
        print(f"smlmnet {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
