"""benchmark=andi2_video: the matching rule, the label mapping and the external-movie folder
layout of benchmarks/external/make_andi2_videos.py (written here with smlmnet's renderer, so
the test needs no andi-datasets)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from hydra import compose, initialize_config_dir

from smlmnet.evaluation import run_benchmark
from smlmnet.evaluation.andi2_video import (
    mapped_row,
    match_tracks,
    render_positions,
    true_tracks,
    truth_rows,
)
from smlmnet.simulate import load_config

ROOT = Path(__file__).resolve().parents[1]


def _table(frames, tid, x, emitter=None):
    d = {"frame": frames, "track_id": tid, "x [nm]": x, "y [nm]": np.zeros(len(frames))}
    if emitter is not None:
        d["emitter"] = emitter
    return pd.DataFrame(d)


def test_a_particle_leaving_and_reentering_is_recovered_by_one_linked_track():
    # particle 0 is in view in frames 0-9 and 15-29 (two true tracks), particle 1 in 0-29
    f0 = np.r_[np.arange(10), np.arange(15, 30)]
    truth = pd.concat([_table(f0, (f0 >= 15).astype(int), f0 * 10.0, 0),
                       _table(np.arange(30), 2, 5000.0, 1)])
    # linked: one track follows particle 0 throughout, particle 1 is split in 2 fragments
    est = pd.concat([_table(np.arange(30), 7, np.arange(30) * 10.0),
                     _table(np.arange(12), 8, 5000.0), _table(np.arange(12, 30), 9, 5000.0)])
    m = match_tracks(truth, est, 100.0, 0.5)
    assert m[0] == 7 and m[1] == 7 and m[2] == 9       # 18 of 30 frames ≥ 0.5
    assert match_tracks(truth, est, 100.0, 0.7) == {0: 7, 1: 7}


def test_segments_are_mapped_onto_the_true_frames():
    pred = {"alphas": [1.0, 0.5], "Ds": [1.0, 0.1], "states": [2, 2], "changepoints": [8, 20]}
    # linked track from frame 5 (20 frames, change at its frame 8 = frame 13); true track 3-22
    row = mapped_row(pred, 5, 20, 3, 20, 4)
    assert row["changepoints"] == [10, 20] and row["alphas"] == [1.0, 0.5]
    assert row["traj_idx"] == 4
    # a true track inside one segment has no changepoint
    assert mapped_row(pred, 5, 20, 15, 8, 0)["changepoints"] == [8]


def test_true_tracks_split_at_exits_and_drop_short_runs():
    pos = np.zeros((1, 30, 2)) + 5.0
    pos[0, 10:13, 0] = -1.0                      # out of view for 3 frames
    pos[0, 25:, 0] = 50.0                        # leaves for good after 25
    lab = np.ones((1, 30))
    t = true_tracks(truth_rows(pos, lab, lab, lab.astype(int) * 2, (10, 10), 100.0), 5)
    assert t.groupby("track_id").size().tolist() == [10, 12]


def test_external_movies_are_scored_beside_smlmnet(tmp_path):
    sim_cfg = load_config("andi2_video", ["fov.shape_px=[24,24]", "n_frames=30"])
    folder = tmp_path / "ext" / "seed1" / "single_state_0"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    pos = rng.uniform(4, 20, (3, 1, 2)) + np.cumsum(rng.normal(0, 0.5, (3, 30, 2)), 1)
    movie = render_positions(sim_cfg, pos, 1)
    tifffile.imwrite(folder / "movie.tif", movie.frames)
    ones = np.ones((3, 30))
    truth_rows(pos, ones, ones * 0.5, (ones * 2).astype(int), (24, 24), 100.0).to_csv(
        folder / "truth.csv", index=False)
    (folder / "render.json").write_text(json.dumps({
        "model": "single_state", "pixel_size_nm": 100.0, "frame_time_s": 0.1,
        "psf_sigma_nm": float(sim_cfg.psf.sigma)}))
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        cfg = compose("evaluate", overrides=[
            "benchmark=andi2_video", "benchmark.seeds=[1]", "benchmark.models=[single_state]",
            "benchmark.particles=3", "benchmark.min_track_points=10",
            f"benchmark.data_root={tmp_path / 'ext'}",
            "benchmark.simulation.overrides=['n_frames=30','fov.shape_px=[24,24]']",
            "~benchmark.chains.learned",
            "benchmark.oracle=false", "benchmark.tune_learned_threshold=false",
            "benchmark.classical={cp_threshold: 20, k_immobile: 0.01, alpha_confined: 0.0}"])
    table = run_benchmark(cfg, tmp_path / "out")
    ext = table[table["data"] == "andi-datasets"]
    assert len(ext) == 2 and set(ext["chain"]) == {"classical"}
    assert ext["recovered"].str.startswith("1.000").all()
    assert "chain, per seed" not in (tmp_path / "out" / "andi2_video.md").read_text()
    # the external movies alone
    cfg.benchmark.simulated = False
    table = run_benchmark(cfg, tmp_path / "out1")
    assert set(table["data"]) == {"andi-datasets"}
    # absent external data: skipped with a warning, smlmnet's part still runs
    cfg.benchmark.simulated = True
    cfg.benchmark.data_root = str(tmp_path / "nowhere")
    table = run_benchmark(cfg, tmp_path / "out2")
    assert set(table["data"]) == {"smlmnet"}
