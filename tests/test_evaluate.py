"""evaluate.py: every benchmark config composes and runs on a tiny problem."""

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from smlmnet.evaluation import run_benchmark

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "localization_crlb": ["benchmark.n_spots=200"],
    "localization": ["benchmark.densities=[0.5]",
                     "benchmark.simulation.overrides=['n_frames=3']"],
    "decode": ["benchmark.regimes.0.overrides=['n_frames=3','fov.shape_px=[32,32]',"
               "'particles.motions=[{model: immobile}]']",
               "benchmark.regimes.1.overrides=['n_frames=3','fov.shape_px=[32,32]']"],
    "linking": ["benchmark.densities=[1.5]",
                "benchmark.simulation.overrides=['n_frames=20','fov.shape_px=[32,32]']",
                "benchmark.scaling.n_locs=500", "benchmark.scaling.n_frames=20",
                "benchmark.scaling.skip=[laptrack]"],
    "diffusion": ["benchmark.n_tracks=20", "benchmark.n_points=20", "benchmark.epsilons=[0,2]"],
    "andi_alpha": ["benchmark.n_trajectories=20", "benchmark.lengths=[10,50]"],
}


def compose_benchmark(name, overrides):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        return compose("evaluate", overrides=[f"benchmark={name}", *overrides])


@pytest.mark.parametrize("name", sorted(TINY))
def test_benchmark_runs_and_writes_reports(name, tmp_path):
    cfg = compose_benchmark(name, TINY[name])
    table = run_benchmark(cfg, tmp_path)
    assert len(table) > 0
    mds = list(tmp_path.glob("*.md"))
    csvs = list(tmp_path.glob("*.csv"))
    assert mds and csvs
    text = mds[0].read_text()
    assert "Command: `python" in text and "|---|" in text


def test_every_benchmark_config_is_covered():
    names = {p.stem for p in (ROOT / "configs" / "benchmark").glob("*.yaml")}
    # transfer needs a folder of external movies: tests/test_transfer.py makes one
    assert names == set(TINY) | {"transfer"}


def test_evaluate_cli_unknown_benchmark_fails_clearly(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), "benchmark=nope",
                           f"hydra.run.dir={tmp_path}"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode != 0
    assert "nope" in proc.stderr
