"""The ``smlmnet`` command line.

    smlmnet demo                       simulate a small movie and plot it (no downloads)
    smlmnet simulate PRESET [k=v ...] -o FOLDER
    smlmnet simulate --config FOLDER/config.yaml -o NEW_FOLDER   (regenerate a dataset)
    smlmnet presets                    list the simulation presets
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from smlmnet import __version__


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
    return result.metadata


def cmd_simulate(args) -> int:
    from smlmnet.simulate import load_config

    source = args.config if args.config else args.preset
    cfg = load_config(source, args.overrides)
    _simulate_and_save(cfg, Path(args.output), figure=not args.no_figure,
                       progress=not args.quiet)
    return 0


def cmd_demo(args) -> int:
    from smlmnet.simulate import load_config

    out = Path(args.output) if args.output else Path("smlmnet_demo") / time.strftime(
        "%Y-%m-%d_%H-%M-%S")
    cfg = load_config("demo", args.overrides)
    print(f"smlmnet {__version__} demo: simulating the 'demo' preset (Brownian, fBM, confined, "
          "directed, anisotropic and switching particles)")
    _simulate_and_save(cfg, out, figure=True, progress=not args.quiet)
    print(f"open {out / 'overview.png'} to see the movie with its true tracks and MSD curves")
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
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("demo", help="simulate a small movie and plot it (the quick start)")
    p.add_argument("overrides", nargs="*", help="config overrides key=value")
    p.add_argument("-o", "--output", help="output folder (default smlmnet_demo/<timestamp>)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)

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
    except (ConfigError, OutputExistsError, FileNotFoundError) as err:
        print(f"smlmnet {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
