"""Trajectory network (smlmnet/diffusion/trajnet): masking, scale invariance, training path,
inference in physical units, registry loading, and the shipped weights' quality floor."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from smlmnet.data import contracts as C
from smlmnet.diffusion.trajnet.loss import trajectory_loss
from smlmnet.diffusion.trajnet.net import TrajectoryNet
from smlmnet.diffusion.trajnet.targets import AnDi1Stream, displacement_batch
from smlmnet.simulate.andi1 import MODELS, andi1_batch

ROOT = Path(__file__).resolve().parents[1]


def _net(**kw):
    torch.manual_seed(0)
    return TrajectoryNet(**{"width": 8, "max_width": 16, "layers": 1, "heads": 2, **kw}).eval()


@pytest.mark.parametrize("layers,per_step", [(0, False), (2, True)])
def test_padded_and_unpadded_inputs_give_identical_outputs(layers, per_step):
    torch.set_num_threads(1)
    net = _net(layers=layers, per_step=per_step)
    lengths = [9, 10, 31, 64, 257]
    L = 300
    x = torch.randn(len(lengths), L, 2)
    m = torch.zeros(len(lengths), L, dtype=torch.bool)
    for i, n in enumerate(lengths):
        m[i, :n] = True
    # garbage in the padding must not matter either
    x = torch.where(m[..., None], x, torch.full_like(x, 1e3))
    with torch.no_grad():
        out = net(x, m)
        for i, n in enumerate(lengths):
            alone = net(x[i:i + 1, :n], m[i:i + 1, :n])
            for k in ("alpha", "log_k_rel", "log_s2", "model_logits"):
                torch.testing.assert_close(out[k][i], alone[k][0], atol=2e-5, rtol=1e-5)
            for k in ("step_alpha", "step_log_k_rel", "step_cp_logit") if per_step else ():
                torch.testing.assert_close(out[k][i, :n], alone[k][0], atol=2e-5, rtol=1e-5)
    # and the outputs do depend on the valid steps (the test can fail)
    y = x.clone()
    y[0, 3] += 5.0
    with torch.no_grad():
        assert not torch.allclose(net(y, m)["model_logits"][0], out["model_logits"][0])


def test_outputs_are_scale_invariant_and_log_k_moves_with_the_unit():
    net = _net()
    b = andi1_batch(np.random.default_rng(0), 4, 50)
    disp, mask = displacement_batch(b["positions"])
    d, m = torch.from_numpy(disp), torch.from_numpy(mask)
    with torch.no_grad():
        a, c = net(d, m), net(d * 1000, m)
    torch.testing.assert_close(a["alpha"], c["alpha"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a["model_logits"], c["model_logits"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(c["log_s2"] - a["log_s2"],
                               torch.full((4,), float(np.log(1e6))), atol=1e-4, rtol=0)


def test_pick_changepoints_peaks_above_threshold_and_apart():
    from smlmnet.diffusion.trajnet.infer import pick_changepoints

    p = np.zeros(100)
    p[[20, 22, 60]] = [0.9, 0.8, 0.6]
    p[80] = 0.3
    assert pick_changepoints(p, 0.5) == [20, 60]
    assert pick_changepoints(p, 0.2) == [20, 60, 80]
    assert pick_changepoints(p, 0.95) == []
    assert pick_changepoints(np.array([np.nan, 0.9]), 0.5) == [1]


def test_two_segment_tracks_have_their_changepoint_where_stated():
    from smlmnet.simulate.andi1 import two_segment_batch

    b = two_segment_batch(np.random.default_rng(3), 20, 200, models=("fbm",),
                          noise_levels=(0.0,), jump_log10=(1.0, 1.0))
    d = np.linalg.norm(np.diff(b["positions"], axis=1), axis=-1)
    for i, c in enumerate(b["cp"]):
        assert 5 <= c <= 194
        # steps 10× larger after the changepoint
        assert np.median(d[i, c:]) > 4 * np.median(d[i, :c])
        assert (b["step_alpha"][i, :c] == b["step_alpha"][i, 0]).all()
        assert np.allclose(b["step_logK"][i, c:] - b["step_logK"][i, :c].mean(),
                           np.log(100), atol=2.0)


def test_stream_is_seeded_sharded_and_masks_gaps():
    s = AnDi1Stream(length=6, seed=3, tokens_per_batch=300, max_batch=8, max_length=80,
                    gap_probability=1.0, max_gap_rate=0.3)
    a, b = s.make_batch(2), s.make_batch(2)
    torch.testing.assert_close(a["disp"], b["disp"])
    assert a["disp"].shape[0] == min(8, 300 // a["disp"].shape[1])
    assert (~a["mask"]).any() and (a["disp"][~a["mask"]] == 0).all()
    assert len(list(s)) == 6
    assert set(a) >= {"disp", "mask", "alpha", "model", "log_k", "seed"}


def test_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    net = TrajectoryNet(width=8, max_width=16, layers=1, heads=2, per_step=True)
    batch = AnDi1Stream(length=1, seed=0, tokens_per_batch=2000, max_batch=64,
                        min_length=40, max_length=40,
                        changepoint_probability=0.3).make_batch(0)
    assert (batch["cp"] >= 0).any() and (batch["cp"] < 0).any()
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    losses = []
    for _ in range(40):
        terms = trajectory_loss(net(batch["disp"], batch["mask"]), batch["alpha"],
                                batch["model"], batch["log_k"], batch=batch)
        assert {"cp_bce", "step_alpha_l1", "alpha_l1"} <= set(terms)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        losses.append(float(terms["loss"].detach()))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_train_fast_dev_run_and_export_roundtrip(tmp_path):
    """train.py experiment=trajectory_micro runs, exports a model folder that the registry
    loads as a TrajectoryEstimator; its predictions equal the network's forward pass."""
    from smlmnet.diffusion.trajnet.infer import K_COLUMN, TrajectoryEstimator
    from smlmnet.pretrained import load, read_info

    folder = tmp_path / "model"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "experiment=trajectory_micro",
         f"hydra.run.dir={tmp_path}", f"export_pretrained={folder}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "train/loss" in proc.stdout
    info = read_info(folder)
    assert info["kind"] == "trajectory" and info["training_ranges"]["length_points"] == [10, 60]
    assert info["thresholds"]["changepoint"] in [r["threshold"] for r in info["threshold_scan"]]
    assert "experiment=trajectory_micro" in info["training_command"]
    est = load(folder)
    assert isinstance(est, TrajectoryEstimator)

    b = andi1_batch(np.random.default_rng(1), 3, 30, scale_log10=(2, 2))
    rows = []
    for i, p in enumerate(b["positions"]):
        keep = np.ones(30, bool)
        if i == 1:
            keep[10] = False                      # a missing frame inside track 1
        f = np.flatnonzero(keep)
        rows.append(pd.DataFrame({C.TRACK_ID: i, C.FRAME: f + 5, C.X_NM: p[f, 0],
                                  C.Y_NM: p[f, 1]}))
    tracks = pd.concat(rows, ignore_index=True).sample(frac=1, random_state=0)
    res = est.predict(tracks, frame_time_s=0.1)
    assert list(res[C.TRACK_ID]) == [0, 1, 2] and list(res["n_points"]) == [30, 29, 30]
    present = np.ones((3, 30), bool)
    present[1, 10] = False
    disp, mask = displacement_batch(b["positions"] / 1000.0, present)   # nm → µm
    assert mask[1, 9] == mask[1, 10] == False  # noqa: E712  (both steps touching frame 10)
    with torch.no_grad():
        out = est.net(torch.from_numpy(disp), torch.from_numpy(mask))
    np.testing.assert_allclose(res[C.ALPHA], out["alpha"].numpy(), rtol=1e-5, atol=1e-6)
    # K in µm²/s^α: ln K = ln K_frame − α ln Δt
    log_k = (out["log_k_rel"] + out["log_s2"]).numpy() - out["alpha"].numpy() * np.log(0.1)
    np.testing.assert_allclose(np.log(res[K_COLUMN]), log_k, rtol=1e-4, atol=1e-4)
    probs = res[[f"p_{m}" for m in MODELS]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert set(res["model"]) <= set(MODELS)
    assert "changepoints" in res and (res["n_changepoints"] >= 0).all()
    steps = est.predict_steps(tracks, frame_time_s=0.1)
    assert len(steps) == 3 * 29 and steps[C.FRAME].min() == 5
    s1 = steps[steps[C.TRACK_ID] == 1].reset_index(drop=True)
    assert s1["changepoint_probability"].isna().sum() == 2     # the two steps of the gap
    np.testing.assert_allclose(s1[C.ALPHA].to_numpy()[mask[1]],
                               out["step_alpha"][1].numpy()[mask[1]], rtol=1e-5, atol=1e-6)


SHIPPED = "trajnet_andi1"
SHIPPED_CP = "trajnet_andi1_cp"
# measured with the shipped weights on the fixed set of the quality-floor test:
# trajnet_andi1: α MAE 0.180, accuracy 0.868; trajnet_andi1_cp: 0.182, 0.835 (MSD log-log 0.300)
FLOORS = {SHIPPED: (0.27, 0.70), SHIPPED_CP: (0.27, 0.70)}


def _shipped(name):
    return (ROOT / "smlmnet" / "pretrained" / name / "model.yaml").is_file()


@pytest.mark.parametrize("name", [n for n in FLOORS if _shipped(n)])
def test_shipped_trajectory_model_meets_its_quality_floor(name):
    """The shipped weights (hash checked) on 400 fixed AnDi 1 trajectories of 100–300
    points (seed 4242, not a training or reporting seed): α MAE below the floor and below the
    MSD log-log baseline, model accuracy above the floor. Floors: 1.5× the α MAE and 0.8× the
    accuracy measured with the shipped weights on this set (see FLOORS); a swapped or broken
    weights file scores ≈ 0.5 MAE and 0.2 accuracy; the sampling std of both at n = 400 is
    ≈ 0.01–0.02, far inside the margins."""
    from smlmnet.diffusion.estimators import LogLogMSD
    from smlmnet.evaluation.andi1 import _table, andi1_test_set
    from smlmnet.pretrained import load

    torch.set_num_threads(1)
    s = andi1_test_set(np.random.default_rng(4242), 400, (100, 300), (0.1, 0.5, 1.0))
    est = load(name)
    table = _table(s["positions"])
    res = est.predict(table, frame_time_s=1.0)
    mae = np.mean(np.abs(res[C.ALPHA].to_numpy() - s["alpha"]))
    acc = np.mean(np.array([MODELS.index(m) for m in res["model"]]) == s["model"])
    msd = np.mean(np.abs(LogLogMSD().estimate(table, 1.0)[C.ALPHA].to_numpy() - s["alpha"]))
    mae_floor, acc_floor = FLOORS[name]
    from smlmnet.models.registry import model_dir, read_info, render_model_card

    # the card is generated from model.yaml, never edited by hand
    assert (model_dir(name) / "MODEL_CARD.md").read_text() == render_model_card(read_info(name))
    assert mae < mae_floor and mae < msd, (mae, msd)
    assert acc > acc_floor, acc


@pytest.mark.skipif(not _shipped(SHIPPED_CP), reason="no shipped changepoint model")
def test_shipped_model_finds_the_changepoint_of_a_jump_in_D():
    """Brownian tracks of 200 points (20 nm noise, Δt 20 ms) whose D jumps from 0.05 to
    1.25 µm²/s (×25) at frame 120: the step of highest changepoint probability lies within
    AnDi's 10-frame gate in ≥ 19 of 20 tracks; at the shipped threshold (0.8, tuned for JSC on
    validation tracks of which 3 in 4 have no changepoint, so it is conservative) a changepoint
    is reported inside the gate in ≥ 14 of 20 (measured: 15), and tracks without a jump rarely
    get one (≤ 3 of 20; measured: 0)."""
    from smlmnet.pretrained import load

    torch.set_num_threads(1)
    rng = np.random.default_rng(21)
    dt, n, T, c = 0.02, 20, 200, 120
    D = np.where(np.arange(T - 1) < c, 0.05, 1.25)
    steps = rng.normal(0, 1, (n, T - 1, 2)) * np.sqrt(2 * D * dt)[None, :, None]
    jump = np.concatenate([np.zeros((n, 1, 2)), np.cumsum(steps, 1)], 1) * 1000
    flat = np.cumsum(rng.normal(0, np.sqrt(2 * 0.05 * dt), (n, T, 2)), 1) * 1000
    rows = []
    for k, xy in enumerate(np.concatenate([jump, flat]) + rng.normal(0, 20, (2 * n, T, 2))):
        rows.append(pd.DataFrame({C.TRACK_ID: k, C.FRAME: np.arange(T) + 7,
                                  C.X_NM: xy[:, 0], C.Y_NM: xy[:, 1]}))
    est = load(SHIPPED_CP)
    tracks = pd.concat(rows)
    res = est.predict(tracks, frame_time_s=dt)
    steps = est.predict_steps(tracks, frame_time_s=dt)
    best = steps.groupby(C.TRACK_ID)["changepoint_probability"].idxmax()
    peak = steps.loc[best.to_numpy(), C.FRAME].to_numpy() - 7
    assert np.sum(np.abs(peak[:n] - c) < 10) >= 19, peak[:n]
    cps = [[int(v) - 7 for v in str(x).split(";")] if isinstance(x, str) and x else []
           for x in res["changepoints"]]
    hits = sum(any(abs(v - c) < 10 for v in cp) for cp in cps[:n])
    assert hits >= 14, cps[:n]
    assert sum(len(cp) > 0 for cp in cps[n:]) <= 3, cps[n:]


@pytest.mark.skipif(not _shipped(SHIPPED), reason="no shipped trajectory model")
@pytest.mark.parametrize("fmt", ["smlmnet", "trackpy", "trackmate"])
def test_analyze_tracks_cli_in_physical_units(fmt, tmp_path):
    """Brownian tracks (D = 0.5 µm²/s, Δt = 10 ms, 10 nm noise ≪ the 100 nm step) in three
    table formats: median α within 0.15 of 1 and median K within 30 % of D (per-track K from
    200 points has a relative spread ≈ 10 %, so the median of 40 is far inside)."""
    from smlmnet.cli import main
    from smlmnet.io.tables import read_tracks_csv

    rng = np.random.default_rng(11)
    D, dt, n, T = 0.5, 0.01, 40, 200
    xy = np.cumsum(rng.normal(0, np.sqrt(2 * D * dt), (n, T, 2)), axis=1) * 1000 + 5000
    xy += rng.normal(0, 10, xy.shape)                                    # nm
    tid, frame = np.repeat(np.arange(n), T), np.tile(np.arange(T), n)
    x, y = xy[..., 0].ravel(), xy[..., 1].ravel()
    path = tmp_path / "tracks.csv"
    extra = []
    if fmt == "smlmnet":
        pd.DataFrame({C.TRACK_ID: tid, C.FRAME: frame, C.X_NM: x, C.Y_NM: y}).to_csv(path,
                                                                                   index=False)
    elif fmt == "trackpy":
        pd.DataFrame({"frame": frame, "particle": tid, "x": x / 100 - 0.5,
                      "y": y / 100 - 0.5}).to_csv(path, index=False)
        extra = ["--pixel-size-nm", "100"]
    else:
        df = pd.DataFrame({"LABEL": "ID", "TRACK_ID": tid, "FRAME": frame,
                           "POSITION_X": x / 1000, "POSITION_Y": y / 1000})
        head = pd.DataFrame([{"LABEL": "Label", "TRACK_ID": "Track ID", "FRAME": "Frame",
                              "POSITION_X": "X", "POSITION_Y": "Y"},
                             {"LABEL": "", "TRACK_ID": "", "FRAME": "", "POSITION_X": "(micron)",
                              "POSITION_Y": "(micron)"}])
        pd.concat([head, df.astype(object)]).to_csv(path, index=False)
    tracks, detected = read_tracks_csv(path, 100 if fmt == "trackpy" else None)
    assert detected == fmt
    np.testing.assert_allclose(tracks[C.X_NM].to_numpy(), x, rtol=1e-9, atol=1e-6)
    out = tmp_path / "diffusion.csv"
    assert main([ "analyze-tracks", str(path), "--frame-time-s", str(dt), "-o", str(out),
                 "--threads", "1", *extra]) == 0
    res = pd.read_csv(out)
    assert len(res) == n
    assert abs(res[C.ALPHA].median() - 1.0) < 0.15
    assert abs(res["K [um^2/s^alpha]"].median() / D - 1) < 0.3
    assert abs(res["msd_loglog alpha"].median() - 1.0) < 0.15


def test_read_tracks_csv_refuses_pixels_without_a_pixel_size(tmp_path):
    from smlmnet.io.tables import read_tracks_csv

    path = tmp_path / "t.csv"
    pd.DataFrame({"frame": [0, 1], "particle": [0, 0], "x": [1.0, 2.0], "y": [1.0, 1.0]}
                 ).to_csv(path, index=False)
    with pytest.raises(ValueError, match="pixel size"):
        read_tracks_csv(path)
    pd.DataFrame({"a": [1]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="not a tracks table"):
        read_tracks_csv(path)


def test_classical_changepoint_finds_a_jump_in_D_and_not_noise():
    from smlmnet.diffusion.changepoint import single_changepoint

    rng = np.random.default_rng(5)
    found, false = [], 0
    for _ in range(30):
        d = rng.normal(0, 1, (200, 2))
        d[120:] *= 3.0                                  # D ×9 from step 120
        found += single_changepoint(d)
        false += len(single_changepoint(rng.normal(0, 1, (200, 2))))
    err = np.abs(np.array(found) - 120)
    # within AnDi's 10-frame gate, mostly within a step or two
    assert len(found) == 30 and err.max() < 10 and np.median(err) <= 2
    assert false <= 2


@pytest.mark.skipif(not _shipped(SHIPPED), reason="no shipped trajectory model")
def test_a_trajectory_model_is_refused_as_a_localizer():
    from smlmnet.guard import select_localizer
    from smlmnet.simulate import load_config, simulate

    movie = simulate(load_config("sptpalm_membrane", ["n_frames=2", "fov.shape_px=[16,16]"])).movie
    with pytest.raises(ValueError, match="analyze-tracks"):
        select_localizer("decode", movie, 110.0, model=SHIPPED)
