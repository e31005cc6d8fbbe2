"""Pixel-diffusion networks (smlmnet.diffusion.mivit): tubelets, nets, losses, training,
inference from a movie, the shipped weights and the micro benchmark."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from smlmnet.data import contracts as C
from smlmnet.data.contracts import Movie
from smlmnet.diffusion.mivit.infer import PIXEL_D, PixelDiffusionEstimator
from smlmnet.diffusion.mivit.lightning import net_forward
from smlmnet.diffusion.mivit.loss import (
    displacement_nll,
    heldout_split,
    physics_consistency_loss,
    supervised_loss,
)
from smlmnet.diffusion.mivit.net import MiViT, Pix2DCNN, SingleFrameViT, spot_moments
from smlmnet.diffusion.mivit.targets import (
    TubeletSimulator,
    TubeletStream,
    log_d_px_to_um2_s,
    to_network_batch,
)
from smlmnet.models.registry import PRETRAINED_ROOT, load, read_info

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)

MICRO_NETS = {
    "mivit_factorized": lambda: MiViT(frames=8, dim=16, heads=2, depth_space=1, depth_time=1),
    "mivit_joint": lambda: MiViT(frames=8, dim=16, heads=2, depth_space=1, depth_time=1,
                                 attention="joint"),
    "mivit_blur_moments": lambda: MiViT(frames=8, dim=16, heads=2, depth_space=1,
                                        depth_time=1, blur_moments=True),
    "single_frame": lambda: SingleFrameViT(dim=16, heads=2, depth=1),
    "pix2d": lambda: Pix2DCNN(crop=7, channels=8, hidden=16),
}


def _batch(n=6, frames=8, seed=0, **fixed):
    sim = TubeletSimulator(frames=frames, min_length=2)
    return to_network_batch(sim.sample(np.random.default_rng(seed), n, **fixed))


@pytest.mark.parametrize("name", sorted(MICRO_NETS))
def test_shapes_and_masked_frames_do_not_change_outputs(name):
    torch.manual_seed(0)
    net = MICRO_NETS[name]().eval()
    b = _batch()
    b["mask"][:, 3:] = False  # tracks of 3 frames in 8-frame tubelets
    b["mask"][0, 1:] = False  # and one single-frame track
    out = net_forward(net, b)
    B, T = b["mask"].shape
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "log_d": (B,), "log_var": (B,), "log_s2": (B,), "frame_log_d": (B, T),
        "frame_log_var": (B, T)}
    assert all(torch.isfinite(v).all() for v in out.values())
    junk = dict(b)
    junk["x"] = b["x"].clone()
    junk["features"] = b["features"].clone()
    junk["x"][~b["mask"]] = 100 * torch.randn_like(junk["x"][~b["mask"]])
    junk["features"][~b["mask"]] = 5.0
    out2 = net_forward(net, junk)
    for k in ("log_d", "log_var", "log_s2"):
        torch.testing.assert_close(out[k], out2[k], atol=1e-5, rtol=1e-5)
    ok = b["mask"]
    torch.testing.assert_close(out["frame_log_d"][ok], out2["frame_log_d"][ok], atol=1e-5,
                               rtol=1e-5)


def test_simulator_truth_is_consistent_and_stream_is_seeded():
    sim = TubeletSimulator(frames=8)
    s = sim.sample(np.random.default_rng(3), 64, frame_time_s=0.02, pixel_size_nm=100.0)
    d_um2 = log_d_px_to_um2_s(s["log_d"].astype(float), 0.02, 100.0)
    np.testing.assert_allclose(d_um2, s["D [um^2/s]"], rtol=1e-5)
    assert s["patches"].shape == (64, 8, 15, 15) and (s["length"] >= 4).all()
    assert (s["patches"][~s["mask"]] == 0).all()
    # stroboscopic tubelets have no blur, continuous ones R = blur of 8 sub-steps (≈ 1/6)
    assert (s["blur_R"][s["exposure_fraction"] == 0] == 0).all()
    assert s["blur_R"].max() <= 1 / 6 + 1e-6
    # the spot is where the localization says: brightest pixel near the patch centre
    slow = sim.sample(np.random.default_rng(4), 16, D_um2_s=1e-4, photons=5000.0,
                      background_photons_per_px=1.0)
    peak = slow["patches"][:, 0].reshape(16, -1).argmax(1)
    assert (np.abs(peak // 15 - 7) <= 1).all() and (np.abs(peak % 15 - 7) <= 1).all()
    a = TubeletStream(length=2, seed=5, batch_size=4, simulator={"frames": 8})
    b = TubeletStream(length=2, seed=5, batch_size=4, simulator={"frames": 8})
    torch.testing.assert_close(a.make_batch(1)["x"], b.make_batch(1)["x"])


def test_physics_consistency_loss_is_lowest_at_the_true_D():
    b = _batch(n=256, frames=16, seed=1, D_um2_s=0.5)
    at = lambda dl: float(physics_consistency_loss(  # noqa: E731
        b["log_d"] + dl, b["log_s2"], b["loc_px"], b["mask"], b["blur_R"]))
    assert at(0.0) < at(-0.7) and at(0.0) < at(0.7)


def test_heldout_split_is_disjoint_and_the_per_track_nll_sums_to_the_loss():
    """The held-out split partitions each tubelet's valid frames into a seen and a held-out
    half (never a shared displacement), either half seen; the per-track NLL is the loss's
    summand."""
    rng = np.random.default_rng(0)
    mask = np.arange(16)[None, :] < rng.integers(4, 17, 200)[:, None]
    seen, held, use = heldout_split(mask, rng, min_seen=4)
    assert not (seen & held).any() and ((seen | held) == mask).all()
    np.testing.assert_array_equal(use, seen.sum(1) >= 4)
    assert (np.abs(seen.sum(1) - held.sum(1)) <= 1).all()
    first_seen = seen[:, 0] & mask[:, 0]
    assert 0.3 < first_seen.mean() < 0.7
    # contiguous halves: a held-out displacement (two consecutive held frames) never
    # touches a seen frame
    assert (np.diff(seen.astype(int), axis=1) != 0).sum(1).max() <= 2
    b = _batch(n=64, frames=8, seed=3)
    nll, k = displacement_nll(b["log_d"], b["log_s2"], b["loc_px"], b["mask"], b["blur_R"])
    torch.testing.assert_close(nll.sum() / (2 * k.sum()), physics_consistency_loss(
        b["log_d"], b["log_s2"], b["loc_px"], b["mask"], b["blur_R"]))


def test_self_supervised_loss_decreases_on_a_fixed_toy_batch():
    torch.manual_seed(0)
    net = MICRO_NETS["mivit_factorized"]()
    b = _batch(n=32, frames=8, seed=2)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        out = net_forward(net, b)
        loss = physics_consistency_loss(out["log_d"], out["log_s2"], b["loc_px"], b["mask"],
                                        b["blur_R"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_supervised_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    net = MICRO_NETS["mivit_factorized"]()
    b = _batch(n=32, frames=8, seed=2)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    first = last = None
    for _ in range(25):
        loss = supervised_loss(net_forward(net, b), b)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
        last = loss.item()
    assert last < 0.7 * first


@pytest.fixture(scope="module")
def micro_model(tmp_path_factory):
    """train.py experiment=pixel_diffusion_micro → a model folder (kind pixel_diffusion)."""
    tmp = tmp_path_factory.mktemp("micro")
    folder = tmp / "model"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "experiment=pixel_diffusion_micro",
         f"hydra.run.dir={tmp}", f"export_pretrained={folder}"],
        capture_output=True, text=True, cwd=tmp, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "train/loss" in proc.stdout
    return folder


def test_micro_training_exports_a_loadable_model(micro_model):
    info = read_info(micro_model)
    assert info["kind"] == "pixel_diffusion"
    assert info["training_ranges"]["D_um2_s"] == [0.01, 10.0]
    assert "experiment=pixel_diffusion_micro" in info["training_command"]
    assert np.isfinite(info["validation"]["log_d_rmse"])
    # the exported weights' step (best validation checkpoint) is recorded beside the last one
    assert 1 <= info["exported_step"] <= info["global_steps"]
    assert isinstance(load(micro_model), PixelDiffusionEstimator)


def _movie_and_tracks(n_tracks=5, T=12, size=48, seed=0):
    """A photon-counting movie with a few bright moving spots and their tracks (one
    missing frame)."""
    rng = np.random.default_rng(seed)
    frames = rng.poisson(5.0, (T, size, size)).astype(np.float32)
    rows = []
    for i in range(n_tracks):
        for t in range(T):
            if i == 1 and t == 5:
                continue  # a missing frame
            x, y = 8 + 8 * i + rng.uniform(0, 1), 8 + 4 * i + rng.uniform(0, 1)
            rows.append({C.TRACK_ID: i, C.FRAME: t, C.X_NM: 100.0 * (x + 0.1 * t),
                         C.Y_NM: 100.0 * y})
            frames[t, int(y), int(x + 0.1 * t)] += 500
    return Movie(frames, 100.0, 0.02, 0.01), pd.DataFrame(rows)


def test_inference_from_a_movie_equals_the_training_forward(micro_model):
    est = load(micro_model)
    movie, tracks = _movie_and_tracks()
    tub = est.tubelets_from_movie(movie.frames, movie.camera, tracks, movie.pixel_size_nm)
    assert tub["patches"].shape == (5 * 2, 8, 15, 15)  # 12 frames → windows of 8 + 4
    assert not tub["mask"][2, 5]  # track 1, window 0, frame 5 is missing
    # an interior patch is the movie cut around the localization's pixel
    r = tub["row"][0, 0]
    x, y = (tracks.loc[r, [C.X_NM, C.Y_NM]] / 100.0).astype(int)
    np.testing.assert_array_equal(tub["patches"][0, 0], movie.frames[0, y - 7:y + 8, x - 7:x + 8])
    per_track, per_loc = est.estimate(movie, tracks, psf_sigma_nm=120.0)
    assert len(per_track) == 5 and per_loc[PIXEL_D].notna().sum() == len(tracks)
    # the same tubelets through the training path (to_network_batch + net_forward)
    n = len(tub["track"])
    tub.update({"blur_R": np.full(n, 0.0), "exposure_fraction": np.full(n, 0.5),
                "psf_sigma_px": np.full(n, 1.2)})
    with torch.no_grad():
        ref = net_forward(est.net, to_network_batch(tub))
    small = PixelDiffusionEstimator(est.net, est.info, batch_size=3)
    out = small.predict_tubelets(tub)
    np.testing.assert_allclose(out["log_d"], ref["log_d"].numpy(), rtol=1e-5, atol=1e-5)
    w = np.exp(-np.clip(ref["log_var"].numpy(), -8, 8))
    first = tub["track"] == 0
    mu = (w[first] * ref["log_d"].numpy()[first]).sum() / w[first].sum()
    np.testing.assert_allclose(per_track[PIXEL_D].iloc[0], log_d_px_to_um2_s(mu, 0.02, 100.0),
                               rtol=1e-4)


def test_micro_benchmark_runs(micro_model, tmp_path):
    from smlmnet.evaluation.pixel_diffusion import run

    cfg = OmegaConf.load(ROOT / "configs" / "benchmark" / "pixel_diffusion.yaml")
    cfg.models = {"mivit": str(micro_model)}
    cfg.trajectory_model = None
    cfg.seeds, cfg.n_per_cell, cfg.mle_per_cell = [1, 2], 6, 3
    cfg.D_um2_s, cfg.exposure_fraction, cfg.lengths = [0.1, 1.0], [0.0, 1.0], [4]
    table = run(cfg, tmp_path)
    assert len(table) == 4 and {"mivit", "msd", "cve", "mle", "CRLB", "ratio"} <= set(table)
    md = (tmp_path / "pixel_diffusion.md").read_text()
    assert "Commit" in md and "tubelets" in md


SHIPPED = PRETRAINED_ROOT / "mivit_pixel_diffusion"


@pytest.mark.skipif(not SHIPPED.exists(), reason="mivit_pixel_diffusion not shipped")
def test_shipped_mivit_ranks_immobile_slow_fast_and_meets_its_error_floor():
    from smlmnet.models.registry import model_dir, render_model_card

    for name in ("mivit_pixel_diffusion", "single_frame_pixel_diffusion",
                 "pix2d_pixel_diffusion"):
        card = (model_dir(name) / "MODEL_CARD.md").read_text()
        assert card == render_model_card(read_info(name))
    est = load("mivit_pixel_diffusion")
    sim = TubeletSimulator(frames=est.frames, min_length=est.frames)
    micro = dict(frame_time_s=0.02, pixel_size_nm=100.0, psf_sigma_px=1.3, photons=1000.0,
                 background_photons_per_px=20.0, exposure_fraction=1.0, camera="scmos",
                 halo_fraction=0.0)
    medians, errs = [], []
    for i, D in enumerate((1e-4, 0.05, 2.0)):  # immobile, slow, fast (µm²/s)
        s = sim.sample(np.random.default_rng(100 + i), 64, D_um2_s=D, **micro)
        d = log_d_px_to_um2_s(est.predict_tubelets(s)["log_d"], 0.02, 100.0)
        medians.append(np.median(d))
        if D >= 0.01:
            errs.append(np.log(d) - np.log(D))
    assert medians[0] < medians[1] < medians[2]
    rmse = float(np.sqrt(np.mean(np.concatenate(errs) ** 2)))
    assert rmse < 0.6, rmse


@pytest.mark.parametrize("model", ["micro", "micro adapted", "blur_likelihood"])
def test_analyze_pixel_diffusion_adds_columns_and_a_map(model, request, tmp_path):
    """The network (a micro model, also adapted to the movie without labels by
    ``--pixel-adapt``) and the classical blur likelihood behind one CLI flag."""
    import json

    from smlmnet.cli import main
    from smlmnet.simulate import load_config, save_dataset, simulate

    adapt = model == "micro adapted"
    model = (str(request.getfixturevalue("micro_model")) if model.startswith("micro")
             else model)

    res = simulate(load_config("sptpalm_membrane", ["n_frames=12", "fov.shape_px=[24,24]",
                                                    "particles.density_per_um2=4"]))
    save_dataset(res, tmp_path / "ds")
    out = tmp_path / "out"
    assert main(["analyze", str(tmp_path / "ds" / "movie.tif"), "-o", str(out), "-q",
                 "--psf-sigma-nm", "110", "--localizer", "centroid", "--threads", "1",
                 "--min-length", "3", "--pixel-diffusion", model]
                + (["--pixel-adapt", "--pixel-adapt-steps", "3"] if adapt else [])) == 0
    tracks = pd.read_csv(out / "tracks.csv")
    diff = pd.read_csv(out / "diffusion.csv")
    assert PIXEL_D in tracks and tracks[PIXEL_D].notna().all()
    assert PIXEL_D in diff and (diff[PIXEL_D] > 0).all()
    dmap = np.load(out / "diffusivity_map.npy")
    assert dmap.shape == (3, 3) and np.isfinite(dmap).any()
    assert (out / "diffusivity_map.png").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pixel diffusion model"] == model
    if model == "blur_likelihood":
        assert "Brownian" in summary["pixel diffusion assumptions"]
    if adapt:   # the adapted model is a loadable model folder that records what was done
        record = summary["pixel diffusion adaptation"]
        assert record["steps"] == 3 and record["tubelets"] > 0
        assert "Brownian" in record["teacher"]
        adapted, base = load(out / "pixel_model"), load(model)
        assert adapted.info["adaptation"] == record
        changed = [k for k, v in base.net.state_dict().items()
                   if not torch.equal(v, adapted.net.state_dict()[k])]
        assert changed
    else:
        assert not (out / "pixel_model").exists()


def test_feature_dropout_hides_the_features_of_a_share_of_tubelets_in_training_only():
    """``feature_dropout=p``: in training, a tubelet's output does not depend on its
    localization features with probability p (400 tubelets: the share within 4 binomial
    standard deviations, ±0.092 at p 0.3); in evaluation every tubelet uses them; p 0 adds no
    parameter (older weights load)."""
    assert "no_features" not in dict(MICRO_NETS["mivit_factorized"]().named_parameters())
    torch.manual_seed(0)
    net = MiViT(frames=8, dim=16, heads=2, depth_space=1, depth_time=1, feature_dropout=0.3)
    with torch.no_grad():              # the heads start at zero: give every input a say
        for prm in net.parameters():
            prm.add_(0.1 * torch.randn_like(prm))
    b = _batch(n=400, seed=1)
    other = dict(b, features=b["features"] + torch.randn_like(b["features"]))

    def same_share(mode):
        net.train(mode)
        torch.manual_seed(7)
        a = net_forward(net, b)["log_d"]
        torch.manual_seed(7)
        c = net_forward(net, other)["log_d"]
        return float(torch.isclose(a, c, atol=1e-6, rtol=0).float().mean())

    assert abs(same_share(True) - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 400)
    assert same_share(False) == 0.0
    with pytest.raises(ValueError, match="feature_dropout"):
        MiViT(frames=8, dim=16, heads=2, depth_space=1, depth_time=1, feature_dropout=1.0)


def test_spot_moments_follow_the_windowed_gaussian_and_grow_with_blur():
    """A noise-free Gaussian spot of variance v per axis through a window of variance w has
    the windowed moment v·w/(v + w) (up to the pixel sums: 1e-3) and no elongation. On
    simulated tubelets (fixed seed, 300 × 16 frames at D = 1 µm²/s) the width feature of
    continuous exposure exceeds the stroboscopic one by > 10 standard errors of the
    difference (measured: ~1.5 per-frame s.d., i.e. ~100 standard errors over 4,800 frames)."""
    K = 15
    g = torch.arange(K) + 0.5
    one = torch.ones(1, 1, dtype=torch.bool)
    for v, sigma in [(1.69 + 1 / 12, 1.3), (2.5, 1.3), (1.0, 0.9)]:
        spot = torch.exp(-((g[None] - 7.5) ** 2 + (g[:, None] - 7.5) ** 2) / (2 * v))
        spot = (spot / spot.sum() * 22.5)[None, None]
        m = spot_moments(spot, torch.zeros(1, 1, 2), torch.tensor([sigma]), one)[0, 0]
        w = [(s * sigma) ** 2 for s in (1.5, 3.0)]
        assert m[0].item() == pytest.approx(v / (v + w[0]), abs=1e-3)
        assert m[3].item() == pytest.approx(v / (v + w[1]), abs=1e-3)
        assert m[1].item() < 1e-3 and m[4].item() < 1e-3
    fixed = dict(D_um2_s=1.0, frame_time_s=0.02, pixel_size_nm=100.0, psf_sigma_px=1.3,
                 photons=1000.0, background_photons_per_px=20.0, halo_fraction=0.0,
                 camera="scmos", localizer_excess=1.0, length=16)
    width = {}
    for f in (0.0, 1.0):
        b = _batch(300, 16, seed=3, exposure_fraction=f, **fixed)
        m = spot_moments(b["x"], b["features"][..., :2], b["cond"][:, 1], b["mask"])
        width[f] = m[..., 0][b["mask"]]
    sem = (width[0.0].var() / len(width[0.0]) + width[1.0].var() / len(width[1.0])).sqrt()
    assert width[1.0].mean() - width[0.0].mean() > 10 * sem
    # masked frames give zeros and do not change the others
    b = _batch(4, 8, seed=1)
    b["mask"][:, 5:] = False
    m1 = spot_moments(b["x"], b["features"][..., :2], b["cond"][:, 1], b["mask"])
    x = b["x"].clone()
    x[~b["mask"]] = 50.0
    m2 = spot_moments(x, b["features"][..., :2], b["cond"][:, 1], b["mask"])
    torch.testing.assert_close(m1, m2)
    assert (m1[:, 5:] == 0).all()
