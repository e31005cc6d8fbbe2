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


def test_edge_windows_are_the_windows_inference_builds_at_a_movies_ends():
    """Training's end-of-movie windows equal what inference feeds the network for a movie's
    first and last frame; edge_probability=0 leaves the item stream as it was."""
    from smlmnet.data.windows import movie_end_window, pad_movie_ends

    movie = np.random.default_rng(0).normal(size=(5, 4, 6)).astype(np.float32)
    # a movie that starts at frame 1: inference's window of its first frame
    first = pad_movie_ends(torch.from_numpy(movie[1:]), 1, 0).numpy()[:3]
    np.testing.assert_array_equal(movie_end_window(movie[:3], at_start=True), first)
    # a movie that ends at frame 3: the window of its last frame
    last = pad_movie_ends(torch.from_numpy(movie[:4]), 0, 1).numpy()[-3:]
    np.testing.assert_array_equal(movie_end_window(movie[2:5], at_start=False), last)
    np.testing.assert_array_equal(first[0], first[1])

    plain = [x["frames"] for x in make_dataset(length=8, seed=5)]
    unchanged = [x["frames"] for x in make_dataset(length=8, seed=5, edge_probability=0.0)]
    edged = [x["frames"] for x in make_dataset(length=8, seed=5, edge_probability=1.0)]
    assert all(torch.equal(a, b) for a, b in zip(plain, unchanged))
    sides = []
    for a, e in zip(plain, edged):
        assert torch.equal(e[1], a[1])  # the middle frame and so the targets stay
        start, end = torch.equal(e[0], e[1]), torch.equal(e[2], e[1])
        assert start != end  # exactly one side is a copy of the middle frame
        assert torch.equal(e[2], a[2]) if start else torch.equal(e[0], a[0])
        sides.append(start)
    assert 0 < sum(sides) < len(sides)  # both ends occur
    with pytest.raises(ValueError, match="edge_probability"):
        make_dataset(length=1, edge_probability=1.5)


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
