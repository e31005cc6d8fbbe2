"""Save and load simulated datasets.

A dataset folder holds

- ``movie.tif``     the camera movie (uint16 ADU), ImageJ hyperstack with pixel size (µm) and
  frame interval (s) in its metadata;
- ``emitters.csv``  per-frame ground truth of every emitter (units in the column names);
- ``tracks.csv``    per-track labels (motion model and parameters);
- ``config.yaml``   the fully resolved simulation config: ``smlmnet simulate --config
  config.yaml`` regenerates the same bytes;
- ``metadata.json`` derived quantities (PSF σ, blur coefficient R, saturated pixels...).

The folder is written to a temporary sibling and renamed into place, and an existing
non-empty folder is never overwritten.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from smlmnet.io.atomic import atomic_output_dir
from smlmnet.io.jsonio import dumps_strict
from smlmnet.io.tiff import read_movie_tiff, write_movie_tiff
from smlmnet.simulate.config import SimulationConfig
from smlmnet.simulate.movie import SimulationResult

MOVIE_FILE = "movie.tif"
EMITTERS_FILE = "emitters.csv"
TRACKS_FILE = "tracks.csv"
CONFIG_FILE = "config.yaml"
METADATA_FILE = "metadata.json"
# pandas >= 3 parses floats exactly by default; older versions need the round-trip parser
_EXACT_FLOATS = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


def save_dataset(result: SimulationResult, folder: str | Path) -> Path:
    """Write ``result`` to a new folder (atomic; refuses to overwrite existing data)."""
    folder = Path(folder)
    with atomic_output_dir(folder) as tmp:
        write_movie_tiff(tmp / MOVIE_FILE, result.movie, extra={"metadata": result.metadata})
        result.emitters.to_csv(tmp / EMITTERS_FILE, index=False)
        result.tracks.to_csv(tmp / TRACKS_FILE, index=False)
        (tmp / CONFIG_FILE).write_text(
            "# smlmnet simulation config; regenerate with: smlmnet simulate --config "
            "config.yaml -o NEW_FOLDER\n" + yaml.safe_dump(result.config.to_dict(),
                                                            sort_keys=False))
        (tmp / METADATA_FILE).write_text(dumps_strict(result.metadata, indent=2))
    return folder


def load_dataset(folder: str | Path) -> SimulationResult:
    """Load a folder written by :func:`save_dataset`."""
    folder = Path(folder)
    missing = [f for f in (MOVIE_FILE, EMITTERS_FILE, TRACKS_FILE, CONFIG_FILE)
               if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{str(folder)!r} is not a smlmnet dataset: missing {missing}")
    movie = read_movie_tiff(folder / MOVIE_FILE)
    emitters = pd.read_csv(folder / EMITTERS_FILE, **_EXACT_FLOATS)
    tracks = pd.read_csv(folder / TRACKS_FILE, **_EXACT_FLOATS)
    config = SimulationConfig.from_dict(yaml.safe_load((folder / CONFIG_FILE).read_text()))
    meta_path = folder / METADATA_FILE
    metadata = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return SimulationResult(movie, emitters, tracks, config, metadata)
