"""DECODE-style localizer: model, loss, post-processing, training entry point, shipping."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from smlmnet.localize.decode.loss import decode_loss
from smlmnet.localize.decode.net import DecodeNet
from smlmnet.localize.decode.post import detect_emitters
from smlmnet.localize.decode.targets import middle_frame_targets
from smlmnet.models.datasets import SimulatedMovieDataset
from smlmnet.simulate import load_config

ROOT = Path(__file__).resolve().parents[1]


def toy_batch(n=4, shape=(16, 16)):
    ds = SimulatedMovieDataset(load_config("decode_sptpalm"), 3, shape, n, seed=3)
    return next(iter(torch.utils.data.DataLoader(ds, batch_size=n)))


def test_network_shapes_and_odd_sizes():
    net = DecodeNet(base=4, depth=2)
    out = net(torch.rand(2, 3, 21, 18) * 100)
    assert out["p"].shape == (2, 21, 18)
    assert set(out) >= {"p", "photons", "dx", "dy", "sigma_x", "sigma_y", "background"}
    assert (out["p"] >= 0).all() and (out["p"] <= 1).all()
    assert out["dx"].abs().max() <= 1
    with pytest.raises(ValueError, match="expected"):
        net(torch.rand(2, 2, 16, 16))
    with pytest.raises(ValueError, match="odd"):
        DecodeNet(n_frames=2)


def test_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    batch = toy_batch()
    net = DecodeNet(base=8, depth=1)
    em, mask = middle_frame_targets(batch, 3)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        out = net(batch["frames"])
        loss = decode_loss(out, em, mask, batch["background"], net.encode_photons)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_post_processing_finds_known_emitters():
    H = W = 20
    p = torch.zeros(1, H, W)
    p[0, 5, 7] = 0.9                      # isolated
    p[0, 12, 3], p[0, 12, 4] = 0.45, 0.4  # one emitter split over two pixels
    p[0, 15, 15] = 0.2                    # too weak
    out = {"p": p, "dx": torch.full((1, H, W), 0.25), "dy": torch.full((1, H, W), -0.1),
           "photons": torch.full((1, H, W), 500.0), "sigma_x": torch.ones(1, H, W),
           "sigma_y": torch.ones(1, H, W), "sigma_photons": torch.ones(1, H, W),
           "background": torch.full((1, H, W), 10.0)}
    det = detect_emitters(out, threshold=0.6, second_threshold=0.6)
    found = np.array(sorted(zip(det["x"].tolist(), det["y"].tolist())))
    assert found == pytest.approx(np.array([(3.75, 12.4), (7.75, 5.4)]))
    assert det["p"].max() <= 1.0


def compose_train(overrides):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        return compose("train", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (
    ROOT / "configs" / "experiment").glob("localizer_*.yaml")))
def test_every_experiment_instantiates(experiment):
    cfg = compose_train([f"experiment={experiment}", "data.num_workers=0",
                         "data.train_items=4", "data.val_items=4",
                         "hydra.runtime.output_dir=/tmp/smlmnet_test"])
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(cfg)
    model = instantiate(cfg.model)
    data = instantiate(cfg.data)
    assert isinstance(model.net, DecodeNet)
    assert len(data.val_set) == 4


def test_train_fast_dev_run(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "experiment=localizer_micro",
         f"hydra.run.dir={tmp_path}", "+trainer.fast_dev_run=true"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "train/loss" in proc.stdout


def test_export_and_load_roundtrip_gives_identical_outputs(tmp_path):
    from smlmnet.localize.decode.infer import DecodeLocalizer
    from smlmnet.models.registry import write_model_folder
    from smlmnet.pretrained import load, read_info
    from smlmnet.simulate import simulate

    torch.manual_seed(1)
    net = DecodeNet(n_frames=3, base=4, depth=1, normalization="robust",
                    photon_head="log").eval()
    info = {"name": "tiny", "kind": "localizer",
            "net": {"_target_": "smlmnet.localize.decode.net.DecodeNet", **net.config()},
            "thresholds": {"threshold": 0.5}, "training_ranges": {"psf_sigma_px": [1, 2]}}
    write_model_folder(tmp_path / "m", net.state_dict(), info)
    loc = load(tmp_path / "m")
    assert isinstance(loc, DecodeLocalizer) and loc.threshold == 0.5
    assert read_info(tmp_path / "m")["weights_sha256"]
    card = (tmp_path / "m" / "MODEL_CARD.md").read_text()
    assert "psf_sigma_px" in card and "generated" in card
    x = torch.rand(2, 3, 16, 16) * 100
    with torch.inference_mode():
        a, b = net(x), loc.net(x)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    movie = simulate(load_config("decode_sptpalm", ["n_frames=5"])).movie
    assert loc.localize(movie).columns[0] == "frame"


def test_registry_refuses_unknown_kind_and_corrupt_weights(tmp_path):
    import yaml

    from smlmnet.models.registry import write_model_folder
    from smlmnet.pretrained import UnknownModelKindError, load

    net = DecodeNet(base=4, depth=1)
    info = {"name": "tiny", "kind": "localizer",
            "net": {"_target_": "smlmnet.localize.decode.net.DecodeNet", **net.config()}}
    folder = write_model_folder(tmp_path / "m", net.state_dict(), info)
    meta = yaml.safe_load((folder / "model.yaml").read_text())
    (folder / "model.yaml").write_text(yaml.safe_dump({**meta, "kind": "teleporter"}))
    with pytest.raises(UnknownModelKindError, match="teleporter"):
        load(folder)
    (folder / "model.yaml").write_text(yaml.safe_dump(meta))
    with open(folder / "weights.pt", "ab") as f:
        f.write(b"x")
    with pytest.raises(ValueError, match="hash"):
        load(folder)
    (folder / "model.yaml").write_text(yaml.safe_dump(
        {**meta, "net": {**meta["net"], "_target_": "os.system"}, "weights_sha256": None}))
    with pytest.raises(ValueError, match="inside smlmnet"):
        load(folder)


@pytest.mark.parametrize("normalization", ["median", "robust"])
def test_inference_does_not_depend_on_batch_size(normalization):
    """Frames are normalized one by one, so cutting the movie into batches of 1, 4 or all
    frames gives the same localizations (up to float rounding of the convolutions)."""
    from smlmnet.localize.decode.infer import DecodeLocalizer
    from smlmnet.simulate import simulate

    torch.manual_seed(0)
    net = DecodeNet(base=4, depth=1, normalization=normalization).eval()
    with torch.no_grad():
        net.head[-1].bias[0] = 2.0  # many detections, so that the comparison means something
    movie = simulate(load_config("decode_sptpalm", ["n_frames=9", "fov.shape_px=[20,24]"])).movie
    tables = [DecodeLocalizer(net, threshold=0.3, batch_frames=b).localize(movie)
              for b in (1, 4, 9)]
    assert len(tables[0]) > 20
    for t in tables[1:]:
        assert len(t) == len(tables[0])
        np.testing.assert_allclose(t[["x [nm]", "y [nm]"]].to_numpy(),
                                   tables[0][["x [nm]", "y [nm]"]].to_numpy(), atol=1e-3)


def test_robust_normalization_is_invariant_to_gain_and_offset():
    """An affine change y = k·x + c of the input leaves the normalized frames unchanged, so
    positions do not move and photons scale by k."""
    torch.manual_seed(0)
    net = DecodeNet(base=4, depth=1, normalization="robust", photon_head="log").eval()
    x = torch.poisson(torch.full((1, 3, 16, 16), 20.0))
    x[0, :, 8, 8] += 300
    with torch.inference_mode():
        a, b = net(x), net(7.5 * x + 300.0)
    torch.testing.assert_close(a["p"], b["p"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(a["dx"], b["dx"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(7.5 * a["photons"], b["photons"], rtol=1e-3, atol=1e-3)


def test_checkpoint_resumes_and_loads_weights_only(tmp_path):
    from smlmnet.localize.decode.infer import DecodeLocalizer

    common = [sys.executable, str(ROOT / "train.py"), "experiment=localizer_micro",
              "callbacks=default", "logger=csv"]
    first = subprocess.run(common + [f"hydra.run.dir={tmp_path / 'a'}"], capture_output=True,
                           text=True, cwd=tmp_path, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    ckpt = tmp_path / "a" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    resumed = subprocess.run(common + [f"hydra.run.dir={tmp_path / 'b'}", f"ckpt_path={ckpt}",
                                       "trainer.max_epochs=2"],
                             capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    state = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["epoch"] == 1  # continued from epoch 0 instead of starting over
    loc = DecodeLocalizer.from_checkpoint(str(ckpt))
    assert loc.net.base == 4


def test_shipped_model_loads_offline():
    from smlmnet.localize.decode.infer import DecodeLocalizer
    from smlmnet.models.registry import render_model_card
    from smlmnet.pretrained import list_models, model_dir, read_info

    assert "decode_sptpalm" in list_models()
    loc = DecodeLocalizer.from_pretrained("decode_sptpalm")
    assert 0 < loc.threshold < 1 and loc.uncertainty_scale > 0
    info = read_info("decode_sptpalm")
    assert info["kind"] == "localizer" and info["training_ranges"]
    # the card is generated from model.yaml, never edited by hand
    assert (model_dir("decode_sptpalm") / "MODEL_CARD.md").read_text() == render_model_card(info)


def test_confidence_scales_recover_a_known_p_dependence_and_stay_monotone():
    """z ~ N(0, s(p)²) with s falling from 2 to 1 over p: each bin's robust scale 1.4826·
    median|z| estimates s with relative standard error ≈ 1.17/√(2n) for a Gaussian (n pairs,
    two axes); with ~2000 detections per bin that is ≈ 2 %, so 8 % is a 4σ tolerance."""
    from smlmnet.localize.decode.post import confidence_scales, uncertainty_scale_at

    rng = np.random.default_rng(0)
    p = rng.uniform(0.5, 1.0, 12000)
    s = 2.0 - 2.0 * (p - 0.5)                       # 2 at p = 0.5, 1 at p = 1
    z = rng.normal(size=(len(p), 2)) * s[:, None]
    table = confidence_scales(p, z, n_bins=6)
    assert np.all(np.diff(table["p"]) > 0) and np.all(np.diff(table["scale"]) <= 0)
    expected = 2.0 - 2.0 * (np.asarray(table["p"]) - 0.5)
    np.testing.assert_allclose(table["scale"], expected, rtol=0.08)
    # a noisy non-monotone input is pooled, never inverted
    pooled = confidence_scales(np.r_[np.full(100, 0.6), np.full(100, 0.9)],
                               np.r_[np.ones(100), 3 * np.ones(100)], n_bins=2)
    assert pooled["scale"][0] == pooled["scale"][1]
    # the factor interpolates between bin medians and is the single scale without a table
    k = uncertainty_scale_at([0.0, 1.0], 1.7, table)
    assert k[0] == table["scale"][0] and k[1] == table["scale"][-1]
    assert np.all(uncertainty_scale_at([0.3, 0.9], 1.7, None) == 1.7)


def test_localizer_applies_the_p_dependent_uncertainty_scale():
    from smlmnet.localize.decode.infer import DecodeLocalizer
    from smlmnet.simulate import simulate

    torch.manual_seed(2)
    net = DecodeNet(n_frames=3, base=4, depth=1, normalization="robust", photon_head="log")
    movie = simulate(load_config("decode_sptpalm", ["n_frames=4"])).movie
    plain = DecodeLocalizer(net, threshold=0.3).localize(movie)
    assert len(plain)
    table = {"p": [0.0, 1.0], "scale": [3.0, 1.0]}
    scaled = DecodeLocalizer(net, threshold=0.3, uncertainty_scale_by_p=table).localize(movie)
    ratio = scaled["uncertainty_x [nm]"] / plain["uncertainty_x [nm]"]
    np.testing.assert_allclose(ratio, 3.0 - 2.0 * plain["p"], rtol=1e-5)
