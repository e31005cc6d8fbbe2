"""AnDi 2 phenomenological models (smlmnet.simulate.andi2) against theory, the AnDi 2 training
path, the shipped trajnet_andi2 weights' quality floor and a micro run of the andi2_trajectory
benchmark."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from smlmnet.simulate import andi2

ROOT = Path(__file__).resolve().parents[1]
BIG_BOX = 1e5     # px: no wall within reach of any test trajectory


def _fixed(alphas, Ks, **kw):
    """Experiment parameters with zero variance (every particle has the given α, K)."""
    return {"alphas": np.array([[a, 0.0] for a in alphas]),
            "Ks": np.array([[k, 0.0] for k in Ks]), **kw}


@pytest.mark.parametrize("alpha", [0.5, 1.0, 1.5])
def test_single_state_msd_exponent_and_K(alpha):
    """Ensemble MSD from the origin, ⟨|r(τ) − r(0)|²⟩ = 4Kτ^α. Tolerance from theory: in 2D
    |r(τ) − r(0)|² of a Gaussian process is exponential (CV 1) for any α, so the mean over
    N = 1000 tracks has a relative std 1/√N ≈ 3.2 % per lag; the two-lag slope ln(M₃₂/M₁)/ln 32
    then has std √2·0.032/ln 32 ≈ 0.013 (tolerance 0.06 ≈ 4.5σ), and K = M₁/4 ± 3.2 % (15 %)."""
    rng = np.random.default_rng(1)
    K = 0.7
    s = andi2.simulate(rng, "single_state", 1000, 33, _fixed([alpha], [K]), L=BIG_BOX)
    r2 = np.sum((s["positions"] - s["positions"][:, :1]) ** 2, -1).mean(0)
    slope = np.log(r2[32] / r2[1]) / np.log(32)
    assert abs(slope - alpha) < 0.06, slope
    assert abs(r2[1] / 4 / K - 1) < 0.15, r2[1] / 4
    assert np.all(s["alpha"] == alpha) and np.all(s["K"] == K)
    assert np.all(s["state"] == andi2.STATES.index("free"))


def test_two_state_switching_gives_the_stationary_occupancy_and_rate():
    """Markov switching with p = P(0→1) = 0.02, q = P(1→0) = 0.06 per frame: stationary share
    of state 0 π₀ = q/(p+q) = 0.75 and switches per frame 2pq/(p+q) = 0.03. After 100 frames
    (relaxation e^{−(p+q)·100} = e^{−8}), N = 400 tracks × 200 frames with correlation time
    1/(p+q) = 12.5 frames give ≈ 3200 independent samples: std(π̂₀) ≈ 0.008 (tolerance 0.04);
    ≈ 2400 switches: Poisson std ≈ 2 % (tolerance 15 %)."""
    rng = np.random.default_rng(2)
    M = np.array([[0.98, 0.02], [0.06, 0.94]])
    s = andi2.simulate(rng, "multi_state", 400, 300, _fixed([1.0, 0.6], [1.0, 0.1], M=M),
                       L=BIG_BOX)
    in0 = s["K"][:, 100:] == 1.0
    assert abs(in0.mean() - 0.75) < 0.04, in0.mean()
    rate = np.mean(np.diff(in0.astype(int), axis=1) != 0)
    assert abs(rate / 0.03 - 1) < 0.15, rate
    cps = andi2.changepoints(s["alpha"], s["K"], s["state"])
    assert sum(map(len, cps)) == int(np.sum(np.diff(s["K"], axis=1) != 0))


def test_immobile_traps_freeze_particles_for_a_geometric_time():
    """Bound particles do not move (their steps are exactly 0 and labelled α = K = 0, state
    immobile); a bound period ends with probability Pu per frame, so complete bound periods are
    geometric with mean 1/Pu = 10 frames (variance 90). With n ≥ 300 periods the std of the mean
    is ≤ 0.55, and the finite window (300 frames) biases it by ≈ −var/T ≈ −0.3: tolerance 2.5."""
    rng = np.random.default_rng(3)
    p = _fixed([1.0], [1.0], r=1.5, Pb=1.0, Pu=0.1, n_traps=300)
    s = andi2.simulate(rng, "immobile_traps", 100, 300, p, L=60.0)
    imm = s["state"] == andi2.STATES.index("immobile")
    steps = np.diff(s["positions"], axis=1)
    assert np.all(steps[imm[:, 1:]] == 0)
    assert np.all(s["alpha"][imm] == 0) and np.all(s["K"][imm] == 0)
    runs = []
    for row in imm:
        edges = np.flatnonzero(np.diff(np.r_[0, row.astype(int), 0]))
        for a, b in zip(edges[::2], edges[1::2]):
            if a > 0 and b < len(row):
                runs.append(b - a)
    assert len(runs) >= 300, len(runs)
    assert abs(np.mean(runs) - 10) < 2.5, np.mean(runs)


def test_dimers_move_together_with_the_dimer_state():
    """Bound partners share one displacement per frame (exactly, away from the walls, which
    reflect each particle on its own) and the dimer state's (α, K); a dimer splits with
    probability Pu per frame, so bound periods are geometric with mean 1/Pu = 20 (tolerance as
    for the traps: ≤ 5σ + window bias)."""
    rng = np.random.default_rng(4)
    p = _fixed([1.0, 0.5], [1.0, 0.05], r=1.0, Pb=1.0, Pu=0.05)
    s = andi2.simulate(rng, "dimerization", 200, 300, p, L=40.0)
    part = s["partner"]
    steps = np.diff(s["positions"], axis=1)
    x = s["positions"]
    inner = np.all((x > 5) & (x < 35), axis=-1)              # ≥ 5 px (≫ one step) from walls
    # partner at frame t + 1 ≥ 0: step t → t + 1 was made bound (bonds form before the move)
    i, t = np.nonzero((part[:, 1:] >= 0) & inner[:, 1:] & inner[:, :-1])
    j = part[i, t + 1]
    ok = inner[j, t] & inner[j, t + 1]
    same = np.all(np.abs(steps[i[ok], t[ok]] - steps[j[ok], t[ok]]) < 1e-9, axis=1)  # round-off
    assert len(same) > 2000 and same.all(), (len(same), same.mean())
    bound = part >= 0
    assert np.all(s["K"][bound] == 0.05) and np.all(s["alpha"][bound] == 0.5)
    assert np.all(s["K"][~bound] == 1.0)
    runs = []
    for row in bound:
        edges = np.flatnonzero(np.diff(np.r_[0, row.astype(int), 0]))
        runs += [b - a for a, b in zip(edges[::2], edges[1::2]) if a > 0 and b < len(row)]
    assert len(runs) >= 200 and abs(np.mean(runs) - 20) < 5, (len(runs), np.mean(runs))


def test_confinement_keeps_particles_in_their_compartment():
    """Impermeable compartments (trans = 0): a particle that starts inside never leaves and is
    labelled confined at every frame; its time-averaged MSD plateaus at ⟨|x − y|²⟩ of two
    uniform points in a disk of radius r, which is r² (reached once 4Kτ ≫ r²: τ = 60, 4Kτ = 240
    vs r² = 9). ≈ 30 confined tracks × 140 lag windows: tolerance 15 %."""
    rng = np.random.default_rng(5)
    r = 3.0
    p = _fixed([1.0, 1.0], [1.0, 1.0], r=r, n_compartments=300, trans=0.0)
    s = andi2.simulate(rng, "confinement", 200, 200, p, L=andi2.BOX_L)
    conf0 = s["state"][:, 0] == andi2.STATES.index("confined")
    assert conf0.sum() >= 15
    assert np.all(s["state"][conf0] == andi2.STATES.index("confined"))
    x = s["positions"][conf0]
    assert np.all(np.linalg.norm(x - x.mean(1, keepdims=True), axis=-1) < 2 * r)
    plateau = np.mean(np.sum((x[:, 60:] - x[:, :-60]) ** 2, -1))
    assert abs(plateau / r ** 2 - 1) < 0.15, plateau / r ** 2
    free = s["state"] == andi2.STATES.index("free")
    assert free.any() and np.all(s["alpha"][free] == 1.0)


def test_segment_labels_and_seeding():
    rng = np.random.default_rng(6)
    a = np.array([[1, 1, 1, 0.5, 0.5, 0.5]])
    k = np.array([[1, 1, 1, 0.1, 0.1, 0.1]])
    st = np.full((1, 6), 2)
    lab = andi2.segment_labels(a, k, st, start=1)[0]
    assert lab == {"alphas": [1.0, 0.5], "Ds": [1.0, 0.1], "states": [2, 2],
                   "changepoints": [3, 6]}
    b1 = andi2.andi2_batch(np.random.default_rng(7), 20, 50, burn_in=10)
    b2 = andi2.andi2_batch(np.random.default_rng(7), 20, 50, burn_in=10)
    assert np.array_equal(b1["positions"], b2["positions"])
    assert b1["positions"].shape == (20, 50, 2) and b1["state"].shape == (20, 50)
    with pytest.raises(ValueError):
        andi2.simulate(rng, "levy", 2, 10)


def test_andi2_stream_targets_and_state_loss():
    """Per-step targets line up with the labels (label at frame t+1 for step t); changepoint
    steps are where they change; the loss has a state term and is finite."""
    from smlmnet.diffusion.trajnet.loss import trajectory_loss
    from smlmnet.diffusion.trajnet.net import TrajectoryNet
    from smlmnet.diffusion.trajnet.targets import AnDi2Stream, andi2_step_targets

    a = np.array([[9, 1, 1, 0.5, 0.5]])
    t = andi2_step_targets(a, a * 2, np.full((1, 5), 2))
    assert t["step_cp"].tolist() == [[False, False, True, False]]
    assert np.isnan(t["alpha"][0])
    st = AnDi2Stream(length=3, seed=1, tokens_per_batch=512, max_length=40, gap_probability=1)
    batches = list(st)
    assert len(batches) == 3 and all(b["step_state"].shape == b["mask"].shape for b in batches)
    torch.manual_seed(0)
    net = TrajectoryNet(width=8, max_width=16, layers=1, heads=2, per_step=True, n_states=4)
    b = batches[0]
    out = net(b["disp"], b["mask"])
    assert out["step_state_logits"].shape == (*b["mask"].shape, 4)
    terms = trajectory_loss(out, b["alpha"], b["model"], b["log_k"], batch=b)
    assert "state_ce" in terms and torch.isfinite(terms["loss"])
    # per-class weights of the state loss: weight 0 on every class present but one changes it
    present = b["step_state"][b["mask"]].unique().tolist()
    w = [1.0 if c == present[0] else 0.0 for c in range(4)]
    weighted = trajectory_loss(out, b["alpha"], b["model"], b["log_k"], batch=b,
                               state_weights=w)["state_ce"]
    assert torch.isfinite(weighted) and (len(present) == 1 or weighted != terms["state_ce"])
    # an AnDi 1 network (no n_states) keeps its configuration and has no state head
    assert "n_states" not in TrajectoryNet(per_step=True).config()


def test_train_andi2_micro_fast_dev_run(tmp_path, monkeypatch):
    """experiment=trajectory_andi2_micro composed as train.py does and built by train.py's
    build(), run with fast_dev_run (one training and one validation batch of AnDi 2
    trajectories through the per-step state model); in-process to keep the test fast."""
    import importlib.util

    from hydra import compose, initialize_config_dir

    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location("train_script", ROOT / "train.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    torch.set_num_threads(1)
    with initialize_config_dir(str(ROOT / "configs"), version_base=None):
        cfg = compose("train", ["experiment=trajectory_andi2_micro",
                                "+trainer.fast_dev_run=true",
                                f"trainer.default_root_dir={tmp_path}"])
    datamodule, model, trainer = train.build(cfg)
    assert model.net.n_states == 4 and type(datamodule.train_set).__name__ == "AnDi2Stream"
    trainer.fit(model, datamodule)
    m = trainer.callback_metrics
    assert torch.isfinite(m["train/state_ce"]) and "val/state_acc" in m, dict(m)


SHIPPED = "trajnet_andi2"
# measured with the shipped weights on the fixed set of the quality-floor test: α MAE 0.107,
# K MSLE 0.0054, state F1 0.929, changepoint JSC 0.946 (the classical pipeline of the benchmark
# on the same tracks: 0.155, 0.0247, 0.895, 0.910). Floors: 1.5× the α MAE, 2× the K MSLE,
# state F1 and JSC 0.05 below the measured values (the set is fixed; the margins absorb
# float round-off and small retrainings, not a broken or swapped weights file).
FLOORS = {"alpha_mae": 0.16, "K_msle": 0.011, "state_f1": 0.88, "cp_jaccard": 0.89}


def _shipped(name):
    return (ROOT / "smlmnet" / "pretrained" / name / "model.yaml").is_file()


@pytest.mark.skipif(not _shipped(SHIPPED), reason="no shipped AnDi 2 trajectory model")
def test_shipped_andi2_model_meets_its_quality_floor():
    """The shipped weights (hash checked on loading) on a fixed AnDi 2 set (seed 4343: not a
    training, tuning or reporting seed; 5 models × 1 experiment × 30 particles × 100 frames):
    AnDi 2 scores within the floors (FLOORS; see the comment above them for the measured values
    and margins). An untrained micro network scored α MAE 0.22–0.31, K MSLE 0.22–0.26, state
    F1 0 and JSC ≈ 0.44 on 200-frame tracks (benchmark micro run), so every floor can fail."""
    from smlmnet.evaluation.andi2 import flatten, learned_predictions, simulated_set, truth_table
    from smlmnet.metrics.diffusion import andi2_single_trajectory_scores
    from smlmnet.models.registry import model_dir, read_info, render_model_card
    from smlmnet.pretrained import load

    torch.set_num_threads(1)
    tracks = flatten(simulated_set(np.random.default_rng(4343), 1, 100, n=30))
    sc = andi2_single_trajectory_scores(truth_table(tracks), learned_predictions(load(SHIPPED),
                                                                                 tracks))
    assert (model_dir(SHIPPED) / "MODEL_CARD.md").read_text() == render_model_card(
        read_info(SHIPPED))
    assert sc["alpha_mae"] < FLOORS["alpha_mae"], sc
    assert sc["K_msle"] < FLOORS["K_msle"], sc
    assert sc["state_f1"] > FLOORS["state_f1"], sc
    assert sc["cp_jaccard"] > FLOORS["cp_jaccard"], sc


def _micro_model(folder):
    """A micro AnDi 2 trajectory model folder (random weights, per-step states)."""
    from smlmnet.diffusion.trajnet.net import TrajectoryNet
    from smlmnet.models.registry import write_model_folder

    torch.manual_seed(0)
    net = TrajectoryNet(width=8, max_width=16, layers=1, heads=2, per_step=True, n_states=4)
    return write_model_folder(folder, net.state_dict(), {
        "name": "micro", "kind": "trajectory",
        "net": {"_target_": "smlmnet.diffusion.trajnet.net.TrajectoryNet", **net.config()},
        "model_classes": list(andi2.MODELS), "description": "test", "limits": "test"})


def _tracks_table(positions, pixel_nm=100.0, first_frame=3):
    from smlmnet.data import contracts as C

    return pd.concat([pd.DataFrame({C.TRACK_ID: i, C.FRAME: first_frame + np.arange(len(p)),
                                    C.X_NM: p[:, 0] * pixel_nm, C.Y_NM: p[:, 1] * pixel_nm})
                      for i, p in enumerate(positions)], ignore_index=True)


def test_analyze_tracks_and_analyze_write_states_changepoints_and_steps(tmp_path):
    """analyze-tracks with an AnDi 2 model writes per-track α, K, state, segments and
    changepoints and a per-step table with states; `smlmnet analyze --trajectory-model` joins
    the same per-track columns to diffusion.csv and keeps the per-step table."""
    from smlmnet.cli import _add_trajectory_model, main
    from smlmnet.data import contracts as C
    from smlmnet.pipeline import AnalysisResult

    folder = _micro_model(tmp_path / "micro")
    b = andi2.andi2_batch(np.random.default_rng(3), 4, 40, models=["multi_state"])
    tracks = _tracks_table(b["positions"])
    path = tmp_path / "tracks.csv"
    tracks.to_csv(path, index=False)
    out = tmp_path / "diff.csv"
    assert main(["analyze-tracks", str(path), "--frame-time-s", "0.05", "--model", str(folder),
                 "-o", str(out), "--threads", "1"]) == 0
    res, steps = pd.read_csv(out), pd.read_csv(tmp_path / "diff_steps.csv")
    assert len(res) == 4 and set(res["state"]) <= set(andi2.STATES)
    for col in ("changepoints", "n_changepoints", "segment_alpha", "segment_K [um^2/s^alpha]",
                "segment_state"):
        assert col in res
    assert len(steps) == 4 * 39 and steps[C.FRAME].min() == 3
    np.testing.assert_allclose(steps[[f"p_{s}" for s in andi2.STATES]].sum(axis=1), 1,
                               rtol=1e-5)
    diff = pd.DataFrame({C.TRACK_ID: [0, 2], "n_points": [40, 40]})
    analysis = AnalysisResult(pd.DataFrame(), tracks, diff)
    _add_trajectory_model(analysis, str(folder), 0.05)
    assert list(analysis.diffusion[C.TRACK_ID]) == [0, 2]
    assert "micro state" in analysis.diffusion and "micro changepoints" in analysis.diffusion
    assert set(analysis.steps[C.TRACK_ID]) == {0, 2}


def test_andi2_benchmark_micro_run(tmp_path):
    """The andi2_trajectory runner end to end on a tiny set with a micro model (random
    weights) and an official-format file written here: report files, every metric for both
    methods and both track subsets, and the generator check table."""
    from omegaconf import OmegaConf

    from smlmnet.evaluation import andi2 as bench

    folder = _micro_model(tmp_path / "micro")
    off = tmp_path / "official"
    off.mkdir()
    rng = np.random.default_rng(0)
    arrays, meta = {}, {"sigma_noise": 0.12, "experiments": {}}
    for k, m in enumerate(andi2.MODELS, start=1):
        p = andi2.draw_experiment(rng, m)
        s = andi2.simulate(rng, m, 6, 30, p)
        arrays.update({f"m{k}_xy": s["positions"], f"m{k}_alpha": s["alpha"],
                       f"m{k}_D": s["K"], f"m{k}_state": s["state"].astype(np.int8),
                       f"m{k}_exp": np.zeros(6, int)})
        dic = {"N": 6, "T": 30, "L": 50.0, "alphas": p["alphas"].tolist(),
               "Ds": p["Ks"].tolist(), "M": [[0.99, 0.01], [0.01, 0.99]], "r": p.get("r", 1),
               "Pb": p.get("Pb", 1), "Pu": p.get("Pu", 0.01), "Nt": 10, "Nc": 3,
               "trans": 0.1}
        meta["experiments"][m] = [dic]
    np.savez(off / "seed11.npz", **arrays)
    import json

    (off / "seed11.json").write_text(json.dumps(meta))
    cfg = OmegaConf.create({
        "kind": "andi2_trajectory", "models": [str(folder)], "seeds": [11], "experiments": 1,
        "T": 30, "short_lengths": [10, 20], "tuning_seed": 900, "tuning_experiments": 1,
        "official_dir": str(off), "compare_generators": True, "particles": 6,
        "classical": {"cp_threshold": 20.0, "k_immobile": 0.01, "alpha_confined": 0.0}})
    table = bench.run(cfg, tmp_path / "out")
    assert set(table["data"]) == {"smlmnet", "official"}
    assert set(table["method"]) == {str(folder), "classical"}
    assert len(table) == 2 * 2 * 2
    md = (tmp_path / "out" / "andi2_trajectory.md").read_text()
    assert "generator check" in md and "Commit" in md
    per_seed = pd.read_csv(tmp_path / "out" / "andi2_trajectory.csv")
    assert len(per_seed) == 8


def test_segment_state_rule_and_tuned_thresholds_are_used():
    """segment_state: argmax without thresholds; with them, immobile first, then confined, then
    the larger of free/directed. The shipped model reads its tuned thresholds from model.yaml,
    and tune_learned_thresholds picks grid values that score at least the argmax-like start
    point (immobile ≥ 0.5, never confined) on its own tuning tracks."""
    from smlmnet.diffusion.trajnet.infer import segment_state
    from smlmnet.evaluation.andi2 import (
        STATE_CONFINED,
        STATE_IMMOBILE,
        flatten,
        simulated_set,
        truth_table,
        tune_learned_thresholds,
    )
    from smlmnet.models.registry import read_info
    from smlmnet.pretrained import load

    imm, conf, free, directed = (andi2.STATES.index(s)
                                 for s in ("immobile", "confined", "free", "directed"))
    p = np.array([0.45, 0.25, 0.2, 0.1])
    assert segment_state(p) == imm
    assert segment_state(p, {"immobile": 0.5, "confined": 0.2}) == conf
    assert segment_state(p, {"immobile": 0.5, "confined": 1.01}) == free
    assert segment_state(np.array([0.1, 0.1, 0.3, 0.5]), {"immobile": 0.5,
                                                           "confined": 1.01}) == directed
    torch.set_num_threads(1)
    est = load(SHIPPED)
    assert est.state_thresholds == read_info(SHIPPED)["thresholds"]["state"]
    tracks = flatten(simulated_set(np.random.default_rng(77), 1, 60, n=12))
    tuned = tune_learned_thresholds(est, tracks, truth_table(tracks))
    assert tuned["state"]["immobile"] in STATE_IMMOBILE
    assert tuned["state"]["confined"] in STATE_CONFINED
    scan = tuned["state F1 scan"]
    assert scan[f"{tuned['state']['immobile']}/{tuned['state']['confined']}"] >= scan["0.5/1.01"]
    assert est.state_thresholds == tuned["state"]
