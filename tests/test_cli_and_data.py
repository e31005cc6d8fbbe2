"""The command line and the on-the-fly training dataset."""

import json

import numpy as np
import pytest
import torch

from smlmnet.cli import main
from smlmnet.models.datasets import SimulatedMovieDataset
from smlmnet.simulate import load_config


def test_demo_writes_dataset_and_figure(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path / "demo"), "-q", "n_frames=30"]) == 0
    out = capsys.readouterr().out
    assert "Jaccard" in out and "JSC" in out
    for name in ("movie.tif", "emitters.csv", "tracks.csv", "config.yaml", "metadata.json",
                 "overview.png"):
        assert (tmp_path / "demo" / "simulation" / name).stat().st_size > 0
    for name in ("localizations.csv", "tracks.csv", "diffusion.csv", "report.png",
                 "summary.json"):
        assert (tmp_path / "demo" / "analysis" / name).stat().st_size > 0
    scores = json.loads((tmp_path / "demo" / "scores.json").read_text(),
                        parse_constant=lambda name: pytest.fail(f"non-strict JSON: {name}"))
    # bright, sparse emitters: the classical pipeline must find most of them
    assert scores["localization"]["jaccard [%]"] > 70
    assert scores["tracking"]["alpha"] > 0.5


def test_simulate_command_and_errors(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["simulate", "dense", "n_frames=3", "-o", str(out), "-q", "--no-figure"]) == 0
    assert (out / "movie.tif").exists() and not (out / "overview.png").exists()
    assert main(["simulate", "dense", "n_frames=3", "-o", str(out), "-q"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["simulate", "nonsense", "-o", str(tmp_path / "x")]) == 2
    assert "unknown simulation preset" in capsys.readouterr().err
    assert main(["simulate", "dense", "particles.motions.0.D_um2_s=-1",
                 "-o", str(tmp_path / "y")]) == 2
    assert "D_um2_s must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    # regenerate from the saved config
    assert main(["simulate", "--config", str(out / "config.yaml"), "-o", str(tmp_path / "re"),
                 "-q", "--no-figure"]) == 0
    assert (tmp_path / "re" / "movie.tif").read_bytes() == (out / "movie.tif").read_bytes()


def make_dataset(**kw):
    cfg = load_config("dense", ["fov.margin_um=0.2"])
    return SimulatedMovieDataset(cfg, n_frames=3, shape_px=(20, 20), **kw)


def test_dataset_items_shapes_and_targets():
    ds = make_dataset(length=2, seed=3)
    item = next(iter(ds))
    assert item["frames"].shape == (3, 20, 20) and item["frames"].dtype == torch.float32
    assert item["background"].shape == (20, 20)
    em, mask = item["emitters"], item["emitter_mask"]
    assert em.shape == (256, 5) and mask.any()
    xy = em[mask][:, 1:3]
    assert (xy >= 0).all() and (xy < 20).all()
    assert set(em[mask][:, 0].long().tolist()) <= {0, 1, 2}
    # photons: the frame's photon sum ≈ background + emitters of that frame (shot noise)
    f = int(em[mask][0, 0])
    expected = item["background"].sum() + em[mask & (em[:, 0] == f)][:, 3].sum()
    assert abs(item["frames"][f].sum() - expected) < 5 * np.sqrt(float(expected)) + 0.05 * float(
        expected)


def test_dataset_is_reproducible_and_independent_of_workers():
    ds = make_dataset(length=6, seed=7)
    single = [int(x["seed"]) for x in ds]
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    multi = [int(x["seed"]) for x in loader]
    assert sorted(single) == sorted(multi) and len(set(single)) == 6
    again = next(iter(make_dataset(length=1, seed=7)))
    first = next(iter(ds))
    assert torch.equal(again["frames"], first["frames"])
    ds.set_epoch(1)
    assert not torch.equal(next(iter(ds))["frames"], first["frames"])


def test_dataset_refuses_to_truncate_targets():
    ds = make_dataset(length=1, max_emitters=2)
    try:
        next(iter(ds))
    except ValueError as err:
        assert "max_emitters" in str(err)
    else:
        raise AssertionError("expected an error")


def test_simulate_without_preset_takes_overrides(tmp_path):
    out = tmp_path / "spt"
    assert main(["simulate", "n_frames=2", "fov.shape_px=[16,16]", "-o", str(out), "-q",
                 "--no-figure"]) == 0
    from smlmnet.simulate import load_dataset

    ds = load_dataset(out)
    assert ds.movie.shape == (2, 16, 16) and ds.config.camera.model == "emccd"
