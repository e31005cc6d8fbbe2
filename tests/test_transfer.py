"""Transfer benchmark runner on a tiny folder of movies written like external files (plain
TIFF, no smlmnet metadata), localized with the MLE fit only."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from hydra import compose, initialize_config_dir

from smlmnet.evaluation import run_benchmark
from smlmnet.evaluation.transfer import PER_MOVIE_COLUMNS, parse_spec, t_interval
from smlmnet.simulate import load_config, simulate

ROOT = Path(__file__).resolve().parents[1]


def write_plain_movie(folder: Path, seed: int) -> float:
    sim = simulate(load_config("andi2_video", [
        "n_frames=6", "fov.shape_px=[40,40]", "particles.n=4", f"seed={seed}",
        "particles.motions=[{model: brownian, D_um2_s: 0.01}]"]))
    folder.mkdir(parents=True)
    tifffile.imwrite(folder / "movie.tif", sim.movie.frames)  # no calibration, no camera
    true = sim.emitters[sim.emitters["on"]]
    true[["frame", "x [nm]", "y [nm]", "photons [photon]"]].to_csv(folder / "truth.csv",
                                                                   index=False)
    (folder / "render.json").write_text(json.dumps({"truth_pixel_size_nm": 100.0}))
    return float(sim.metadata["psf_sigma_nm"])


@pytest.fixture
def data_root(tmp_path):
    root = tmp_path / "data"
    sigma = [write_plain_movie(root / "plain" / f"m{s}", s) for s in (1, 2)]
    (root / "plain" / "_check").mkdir()  # skipped: leading underscore
    return root, sigma[0]


def test_transfer_runner_scores_easy_movies(data_root, tmp_path):
    root, sigma = data_root
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        cfg = compose("evaluate", overrides=[
            "benchmark=transfer", f"benchmark.data_root={root}", "benchmark.renderers=null",
            "benchmark.localizers=[mle]",
            "benchmark.pixel_size_nm.default=100", f"+benchmark.psf.sigma_nm.plain={sigma}",
            "benchmark.psf.calibrate=false", "benchmark.warmup_frames=0"])
    out = tmp_path / "out"
    table = run_benchmark(cfg, out)
    assert list(table.columns) == PER_MOVIE_COLUMNS
    assert len(table) == 2 and set(table["movie"]) == {"m1", "m2"}
    assert (table["true locs"] > 0).all()
    assert (table["jaccard [%]"] > 90).all()
    assert (table["rmse_lateral [nm]"] < 30).all()
    assert table["found / true"].between(0.8, 1.2).all()
    assert table["within 1σ [%]"].notna().all()
    assert (table["speed / mle"] == 1.0).all()
    assert (table["psf σ source"] == "config").all()
    summary = pd.read_csv(out / "transfer_summary.csv")
    assert summary.loc[0, "movies"] == 2
    assert summary.loc[0, "jaccard [%] ci_low"] <= summary.loc[0, "jaccard [%]"]
    assert (out / "transfer_jaccard.png").stat().st_size > 0
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["torch_threads"] == 1 and prov["cpu"] and prov["commit"]
    md = (out / "transfer.md").read_text()
    assert "Per renderer" in md and "Student-t" in md


def test_parse_spec_and_interval():
    assert parse_spec("mle") == ("mle", {})
    assert parse_spec("mle:default") == ("mle", {"psf_sigma_nm": 130.0})
    assert parse_spec("decode") == ("decode", {"model": "decode_generalist"})
    assert parse_spec("auto") == ("auto", {})
    assert parse_spec("decode:decode_generalist") == ("decode", {"model": "decode_generalist"})
    assert parse_spec("decode_generalist") == ("decode", {"model": "decode_generalist"})
    m, lo, hi, n = t_interval([1.0, 2.0, 3.0])
    # mean 2, s = 1, t(0.975, 2) = 4.303 → half-width 4.303/√3
    assert n == 3 and m == 2.0 and hi - m == pytest.approx(4.3027 / np.sqrt(3), rel=1e-4)
    assert np.isnan(t_interval([5.0])[1])


def test_psf_sigma_from_optional_calibration_hook(monkeypatch):
    import sys
    import types

    from omegaconf import OmegaConf

    from smlmnet.data.contracts import Movie
    from smlmnet.evaluation.transfer import resolve_psf_sigma

    movie = Movie(np.zeros((2, 8, 8), np.uint16), 100.0, 1.0)
    cfg = OmegaConf.create({"psf": {"calibrate": True, "calibrate_function": "no_such.mod.f",
                                    "sigma_nm": {"andi": 72.0, "default": 130.0}}})
    assert resolve_psf_sigma(cfg, "andi", movie) == (72.0, "config")
    assert resolve_psf_sigma(cfg, "other", movie) == (130.0, "config")
    fake = types.ModuleType("fake_calibrate")
    fake.calibrate_movie = lambda m: types.SimpleNamespace(psf_sigma_nm=91.5)
    monkeypatch.setitem(sys.modules, "fake_calibrate", fake)
    cfg.psf.calibrate_function = "fake_calibrate.calibrate_movie"
    assert resolve_psf_sigma(cfg, "andi", movie) == (91.5, "calibrated")
    fake.calibrate_movie = lambda m: types.SimpleNamespace(psf_sigma_nm=None)  # found none
    assert resolve_psf_sigma(cfg, "andi", movie) == (72.0, "config")


def test_odd_input_benchmark_runs_and_routes_beads_to_mle(tmp_path):
    """benchmark=odd_input on tiny bare TIFFs from benchmarks/external/make_odd_movies.py:
    the generalist runs on the 8-bit clipped movie; the guard sends the beads movie to MLE."""
    import subprocess
    import sys

    root = tmp_path / "odd"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "external" / "make_odd_movies.py"),
                    str(root), "--seeds", "1", "--variants", "eight_bit", "beads",
                    "--frames", "5", "--size", "48"], check=True, cwd=ROOT)
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        cfg = compose("evaluate", overrides=["benchmark=odd_input",
                                             f"benchmark.data_root={root}",
                                             "benchmark.warmup_frames=0"])
    assert list(cfg.benchmark.localizers) == ["mle", "auto"]
    table = run_benchmark(cfg, tmp_path / "out").set_index(["renderer", "localizer"])
    assert (table["true locs"] > 0).all()
    # beads: auto chose the MLE fit, so its localizations are the MLE's
    assert table.loc[("beads", "auto"), "found locs"] == table.loc[("beads", "mle"),
                                                                   "found locs"]
    assert table.loc[("eight_bit", "auto"), "jaccard [%]"] > 0
