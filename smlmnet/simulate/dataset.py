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
non-empty folder is never overwritten. :func:`simulate_to_folder` simulates and writes a movie
of any length chunk by chunk in bounded memory (what ``smlmnet simulate`` uses); its files are
the ones :func:`save_dataset` writes for :func:`~smlmnet.simulate.movie.simulate` (same frames,
same tables), only the TIFF's ImageJ description may sit elsewhere in the file.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from tqdm.auto import tqdm

from smlmnet.data import contracts as C
from smlmnet.data.contracts import Movie
from smlmnet.io.atomic import atomic_output_dir
from smlmnet.io.jsonio import dumps_strict
from smlmnet.io.tiff import read_movie_tiff, write_movie_tiff, write_movie_tiff_chunks
from smlmnet.simulate.config import SimulationConfig
from smlmnet.simulate.movie import ChunkedSimulation, SimulationResult, default_chunk_frames

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
        _write_config_and_metadata(tmp, result.config, result.metadata)
    return folder


def _write_config_and_metadata(tmp: Path, config: SimulationConfig, metadata: dict) -> None:
    (tmp / CONFIG_FILE).write_text(
        "# smlmnet simulation config; regenerate with: smlmnet simulate --config "
        "config.yaml -o NEW_FOLDER\n" + yaml.safe_dump(config.to_dict(), sort_keys=False))
    (tmp / METADATA_FILE).write_text(dumps_strict(metadata, indent=2))


@dataclass
class StreamedDataset:
    """Summary of a dataset written by :func:`simulate_to_folder` (the movie stays on disk).

    Attributes:
        folder: the dataset folder. shape: ``(T, H, W)`` of the movie.
        tracks: the ``tracks.csv`` table. metadata: the ``metadata.json`` content.
        n_emitter_frames_on: rows of ``emitters.csv`` with ``on``.
        preview: a small :class:`SimulationResult` for figures: its movie holds the first frame
            and the maximum projection of all frames, its emitters the rows of the first
            ``preview_frames`` frames, with the full tracks table and config.
    """

    folder: Path
    shape: tuple[int, int, int]
    tracks: pd.DataFrame
    metadata: dict
    n_emitter_frames_on: int
    preview: SimulationResult


def simulate_to_folder(cfg: SimulationConfig, folder: str | Path, chunk_frames: int | None = None,
                       progress: bool = False, preview_frames: int = 1000,
                       spill_dir: str | None = None) -> StreamedDataset:
    """Simulate ``cfg`` and write its dataset folder chunk by chunk, in bounded memory.

    Writes the files of :func:`save_dataset` with the same content as
    ``save_dataset(simulate(cfg), folder)`` (identical frames and tables; the TIFF's metadata
    says the same, only its place in the file may differ). Memory holds a few chunks of
    ``chunk_frames`` frames (default: :func:`~smlmnet.simulate.movie.default_chunk_frames`,
    ~2 Mpx per chunk), whatever the length of the movie; emitter rows wait in a temporary file
    until the visible tracks are known, then ``emitters.csv`` is written from it chunk by chunk.

    Args:
        cfg: the simulation config (validated). folder: new or empty output folder (atomic).
        chunk_frames: frames simulated and written at a time.
        progress: show a progress bar. preview_frames: frames whose emitters go into
            ``preview`` (for the overview figure). spill_dir: folder for temporary fBM series
            (default: the system's temporary folder).
    """
    folder = Path(folder)
    H, W = cfg.fov.shape_px
    T = cfg.n_frames
    chunk_frames = default_chunk_frames((H, W)) if chunk_frames is None else int(chunk_frames)
    sim = ChunkedSimulation(cfg, chunk_frames, spill_dir=spill_dir)
    info = sim.movie_info()
    preview_rows: list[pd.DataFrame] = []
    first_frame = np.zeros((H, W), np.uint16)
    max_proj = np.zeros((H, W), np.uint16)
    with atomic_output_dir(folder) as tmp:
        pending = tmp / ".emitters.pickle.partial"
        bar = tqdm(total=T, desc="simulating", unit="frame", disable=not progress, leave=False)
        with open(pending, "wb") as pend:
            def chunks():
                for c in range(sim.n_chunks):
                    frames, emitters, _ = sim.chunk(c)
                    pickle.dump(emitters, pend, protocol=pickle.HIGHEST_PROTOCOL)
                    if c == 0:
                        first_frame[:] = frames[0]
                    np.maximum(max_proj, frames.max(axis=0), out=max_proj)
                    early = emitters[emitters[C.FRAME] < preview_frames]
                    if len(early):
                        preview_rows.append(early)
                    bar.update(frames.shape[0])
                    yield frames

            metadata: dict = {}

            def final_extra() -> dict:
                metadata.update(sim.metadata())
                return {"metadata": metadata}

            write_movie_tiff_chunks(tmp / MOVIE_FILE, chunks(), (T, H, W),
                                    info["pixel_size_nm"], info["frame_time_s"],
                                    info["exposure_time_s"], info["camera"],
                                    extra={"metadata": sim.metadata()}, final_extra=final_extra)
        bar.close()
        tracks = sim.visible_tracks()
        visible = tracks[C.TRACK_ID].to_numpy()
        n_on = 0
        with open(pending, "rb") as pend, open(tmp / EMITTERS_FILE, "w", newline="") as out:
            header = True
            while True:
                try:
                    emitters = pickle.load(pend)
                except EOFError:
                    break
                emitters = emitters[emitters[C.TRACK_ID].isin(visible)]
                if header or len(emitters):
                    emitters.to_csv(out, index=False, header=header)
                    header = False
                n_on += int(emitters[C.ON].sum())
        pending.unlink()
        tracks.to_csv(tmp / TRACKS_FILE, index=False)
        _write_config_and_metadata(tmp, cfg, metadata)
    early = (pd.concat(preview_rows, ignore_index=True) if preview_rows
             else emitters.iloc[:0])
    early = early[early[C.TRACK_ID].isin(visible)].reset_index(drop=True)
    preview_movie = Movie(np.stack([first_frame, max_proj]), info["pixel_size_nm"],
                          info["frame_time_s"], info["exposure_time_s"], info["camera"])
    preview = SimulationResult(preview_movie, early, tracks, cfg, metadata, None, sim.bg)
    return StreamedDataset(folder, (T, H, W), tracks, metadata, n_on, preview)


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
