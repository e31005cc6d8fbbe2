"""Transformer linker: labels, network, loss, inference, gap edges, shipped weights, training
entry point, registry/CLI wiring, bad tables."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from smlmnet.data import contracts as C
from smlmnet.link import LAPLinker
from smlmnet.link.transformer.infer import TransformerLinker
from smlmnet.link.transformer.loss import linking_loss
from smlmnet.link.transformer.net import LinkerNet, edge_log_probs, edge_probabilities
from smlmnet.link.transformer.targets import (
    PHOTONS,
    UNCERTAINTY,
    SimulatedLinkingDataset,
    collate_windows,
    parent_labels,
    simulate_table,
    table_item,
)
from smlmnet.metrics.tracking import tracking_metrics

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = "linker_transformer"


def tiny_net(seed=0):
    torch.manual_seed(seed)
    return LinkerNet(d_model=16, n_layers=1, n_heads=2, ff=32, pair_hidden=16)


def small_table(seed=3, n_frames=8, side=4.0, density=0.8, D=0.3):
    rng = np.random.default_rng(seed)
    return simulate_table(rng, n_frames, side, density,
                          motions=[{"model": "brownian", "D_um2_s": D}])


def test_parent_labels_follow_tracks_and_the_gap_limit():
    # track 0 at frames 0, 1, 4 (gap of 3 frames), track 1 at 0 and 5 (too far), a false
    # positive (−1) in frame 1
    frames = np.array([0, 0, 1, 1, 4, 5])
    track = np.array([0, 1, 0, -1, 0, 1])
    assert parent_labels(frames, track, 3).tolist() == [-1, -1, 0, -1, 2, -1]
    assert parent_labels(frames, track, 2).tolist() == [-1, -1, 0, -1, -1, -1]


def test_parental_softmax_gives_at_most_one_parent_and_decoding_one_parent_one_child():
    net = tiny_net().eval()
    table = small_table(density=1.5)
    item = table_item(table, 8, 3, {"cutoff_nm": 1500.0, "k_same": 3, "k_near": 4,
                                    "k_far": 1}, 2000.0)
    batch = collate_windows([item])
    T = len(batch["frame"])
    with torch.no_grad():
        out = net(batch["xy"], batch["frame"], batch["photons"], batch["sigma"], batch["nbr"])
        lp = edge_log_probs(out, T)
    i, j = out["edge_index"].unbind(1)
    assert (batch["frame"][j] - batch["frame"][i]).min() >= 1
    assert (batch["frame"][j] - batch["frame"][i]).max() <= 3
    # parental softmax: incoming edges + "no parent" sum to 1 for every child
    total = torch.exp(-lp["lse_parent"]).index_add(0, j, lp["log_parent"].exp())
    torch.testing.assert_close(total, torch.ones(T), atol=1e-5, rtol=0)
    total_c = torch.exp(-lp["lse_child"]).index_add(0, i, lp["log_child"].exp())
    torch.testing.assert_close(total_c, torch.ones(T), atol=1e-5, rtol=0)
    # decoding: at most one parent and one child, so a track never has two points per frame
    linker = TransformerLinker(net, threshold=0.05)
    edges = linker.edge_probabilities(table)
    assert len(edges) > 0
    tracks = linker.link(table.drop(columns=C.TRACK_ID))
    assert not tracks.duplicated([C.TRACK_ID, C.FRAME]).any()
    n_links = len(tracks) - tracks[C.TRACK_ID].nunique()
    assert n_links > 0


def test_loss_decreases_on_a_fixed_batch():
    ds = SimulatedLinkingDataset(length=2, seed=5, target_tokens=(40, 60))
    batch = collate_windows([ds.make_item(k) for k in range(2)])
    net = tiny_net(1)
    opt = torch.optim.Adam(net.parameters(), 5e-3)
    losses = []
    for _ in range(15):
        out = net(batch["xy"], batch["frame"], batch["photons"], batch["sigma"], batch["nbr"])
        loss = linking_loss(out, batch["parent"])["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0], losses


def test_inference_scores_edges_exactly_as_the_training_forward():
    """One window (≤ W frames, one tile): the linker's batched, window-averaged edge
    probabilities equal the net's on the training item of the same table."""
    net = tiny_net(2).eval()
    table = small_table(seed=4, n_frames=8)
    linker = TransformerLinker(net, threshold=0.5, min_prob=0.0)
    edges = linker.edge_probabilities(table)
    lo, hi = table[[C.X_NM, C.Y_NM]].min().to_numpy(), table[[C.X_NM, C.Y_NM]].max().to_numpy()
    nb = {k: v for k, v in net.neighbour_kwargs().items() if k not in ("window", "max_gap")}
    item = table_item(table, 8, 3, nb, 0.5 * (lo + hi))
    item.pop("seed")
    with torch.no_grad():
        out = net(item["xy"], item["frame"], item["photons"], item["sigma"], item["nbr"])
        p = edge_probabilities(out, len(item["frame"])).numpy()
    ref = pd.DataFrame({"i": out["edge_index"][:, 0].numpy(),
                        "j": out["edge_index"][:, 1].numpy(), "p_ref": p})
    merged = ref.merge(edges, on=["i", "j"], how="outer")
    assert len(merged) == len(ref) == len(edges)
    np.testing.assert_allclose(merged["p"], merged["p_ref"], atol=1e-5)


@pytest.mark.parametrize("bad, message", [
    (lambda t: t.drop(columns=C.X_NM), "lacks column"),
    (lambda t: t.assign(**{C.Y_NM: np.where(np.arange(len(t)) == 3, np.nan, t[C.Y_NM])}),
     "NaN"),
    (lambda t: t.iloc[::-1], "not sorted by frame"),
    (lambda t: t.assign(**{PHOTONS: np.where(np.arange(len(t)) == 2, np.inf, t[PHOTONS])}),
     "photons"),
    (lambda t: t.assign(**{C.FRAME: t[C.FRAME] + 0.5}), "integers"),
])
def test_bad_tables_get_clear_errors(bad, message):
    table = small_table().drop(columns=C.TRACK_ID)
    with pytest.raises(ValueError, match=message):
        TransformerLinker(tiny_net()).link(bad(table))


def test_empty_and_single_row_tables():
    linker = TransformerLinker(tiny_net())
    table = small_table().drop(columns=C.TRACK_ID)
    assert len(linker.link(table.iloc[:0])) == 0
    assert linker.link(table.iloc[:1])[C.TRACK_ID].tolist() == [0]


@pytest.fixture(scope="module")
def shipped():
    from smlmnet.models.registry import load

    return load(SHIPPED)


def test_gap_edges_link_a_particle_dark_for_two_frames(shipped):
    """A slow particle seen in frames 0–4 and 7–11 (dark in 5 and 6) among well separated
    others: the shipped linker bridges the gap with a 3-frame edge (a LAP without gap closing
    cannot)."""
    rng = np.random.default_rng(11)
    rows = []
    starts = np.array([[5000.0, 5000.0], [8000.0, 5000.0], [5000.0, 8000.0], [8000.0, 8000.0]])
    for pid, x0 in enumerate(starts):
        path = x0 + np.cumsum(rng.normal(0, 40.0, (12, 2)), axis=0)
        for f in range(12):
            if pid == 0 and f in (5, 6):
                continue  # dark for 2 frames
            xy = path[f] + rng.normal(0, 15.0, 2)
            rows.append({C.FRAME: f, C.X_NM: xy[0], C.Y_NM: xy[1], PHOTONS: 800.0,
                         UNCERTAINTY: 15.0, "true": pid})
    table = pd.DataFrame(rows).sort_values(C.FRAME, kind="stable").reset_index(drop=True)
    locs = table.drop(columns="true")
    edges = shipped.edge_probabilities(locs)
    f = locs[C.FRAME].to_numpy()
    gap = edges[(f[edges["i"]] == 4) & (f[edges["j"]] == 7)
                & (table["true"].to_numpy()[edges["i"]] == 0)
                & (table["true"].to_numpy()[edges["j"]] == 0)]
    assert len(gap) == 1 and gap["p"].iloc[0] > shipped.threshold, gap
    tracks = shipped.link(locs)
    ids = tracks.loc[table["true"] == 0, C.TRACK_ID]
    assert ids.nunique() == 1
    # every particle is one track and no two particles share one
    assert tracks.groupby(table["true"])[C.TRACK_ID].nunique().eq(1).all()
    assert tracks[C.TRACK_ID].nunique() == 4
    no_gap = LAPLinker(300.0, max_gap_frames=0).link(locs)
    assert no_gap.loc[table["true"] == 0, C.TRACK_ID].nunique() == 2


def test_shipped_linker_meets_its_quality_floor(shipped):
    """A small fixed simulated table (blinking, missed detections, false positives): the
    shipped linker's PTC α stays above a floor near the LAP's with a good search radius
    (measured at export: 0.707 vs the LAP's 0.659 on this table; a swapped or broken weights
    file links nothing and scores far below)."""
    rng = np.random.default_rng(2024)
    table = simulate_table(rng, 30, 8.0, 0.5, motions=[{"model": "brownian", "D_um2_s": 0.5}],
                           fixed={"blink_on_frames": 8.0, "blink_off_frames": 2.0,
                                  "detection_probability": 0.9,
                                  "false_positive_fraction": 0.02})
    true = table[table[C.TRACK_ID] >= 0]
    locs = table.drop(columns=C.TRACK_ID)
    ours = tracking_metrics(true, shipped.link(locs), 500.0)
    lap = tracking_metrics(true, LAPLinker(500.0, 2).link(locs), 500.0)
    assert ours["alpha"] >= lap["alpha"] - 0.02, (ours, lap)
    assert ours["alpha"] >= 0.65, ours


def test_registry_cli_and_pipeline_select_the_transformer():
    from smlmnet.cli import _linker, build_parser
    from smlmnet.models.registry import kinds, list_models, read_info

    assert "linker" in kinds()
    assert SHIPPED in list_models("linker")
    assert SHIPPED not in list_models("localizer")
    info = read_info(SHIPPED)
    assert 0 < info["thresholds"]["threshold"] < 1 and info["training_command"]
    args = build_parser().parse_args(["analyze", "movie.tif", "--linker", "transformer"])
    linker = _linker(args)
    assert isinstance(linker, TransformerLinker) and linker.name == "transformer"
    # what an analysis records: the learned linker's own settings, not the LAP's flags
    linker.link(small_table().drop(columns=[C.TRACK_ID]))
    used = linker.settings()
    assert used["model"] == SHIPPED and used["max_gap_frames"] == linker.net.max_gap - 1
    assert used["threshold_used"] == linker.last_threshold and 0 < used["threshold_used"] < 1
    assert "search_radius_nm" not in used
    lap = _linker(build_parser().parse_args(["analyze", "movie.tif"])).settings()
    assert lap["search_radius_nm"] == args.search_radius_nm and lap["linker"] == "lap"
    card = (ROOT / "smlmnet" / "pretrained" / SHIPPED / "MODEL_CARD.md").read_text()
    assert "python train.py experiment=linker_transformer" in card


def test_train_fast_dev_run(tmp_path):
    """The training path of ``python train.py experiment=linker_micro`` (Hydra composition,
    data module, Lightning module) runs one training and one validation batch."""
    import lightning as L
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    from smlmnet.link.transformer.lightning import LinkerModule

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        cfg = compose("train", overrides=["experiment=linker_micro",
                                          f"hydra.runtime.output_dir={tmp_path}"],
                      return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    data, model = instantiate(cfg.data), instantiate(cfg.model)
    assert isinstance(model, LinkerModule) and model.net.max_gap == cfg.data.max_gap
    trainer = L.Trainer(fast_dev_run=True, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, data)
    metrics = trainer.callback_metrics
    assert np.isfinite(float(metrics["train/loss"]))
    assert "val/edge_accuracy" in metrics


def test_gap_closing_joins_tracks_across_longer_dark_periods_only_when_enabled(shipped):
    """A slow particle dark for 5 frames (beyond the network's 3-frame edges) among well
    separated others: the tracklet gap closing joins its two pieces; disabled, they stay two."""
    rng = np.random.default_rng(5)
    rows = []
    for pid, x0 in enumerate(np.array([[5000.0, 5000.0], [9000.0, 5000.0], [5000.0, 9000.0]])):
        path = x0 + np.cumsum(rng.normal(0, 30.0, (16, 2)), axis=0)
        for f in range(16):
            if pid == 0 and 5 <= f < 10:
                continue
            xy = path[f] + rng.normal(0, 15.0, 2)
            rows.append({C.FRAME: f, C.X_NM: xy[0], C.Y_NM: xy[1], PHOTONS: 800.0,
                         UNCERTAINTY: 15.0, "true": pid})
    table = pd.DataFrame(rows).sort_values(C.FRAME, kind="stable").reset_index(drop=True)
    locs = table.drop(columns="true")
    joined = shipped.link(locs)
    assert joined.loc[table["true"] == 0, C.TRACK_ID].nunique() == 1
    assert joined[C.TRACK_ID].nunique() == 3
    from smlmnet.models.registry import load

    apart = load(SHIPPED, close_gaps_frames=0).link(locs)
    assert apart.loc[table["true"] == 0, C.TRACK_ID].nunique() == 2


def test_window_neighbours_match_brute_force():
    """Each token's neighbour columns hold, per frame offset δ, exactly its k(δ) nearest
    tokens of frame f + δ within the cut-off, nearest first (brute force on tie-free data)."""
    from smlmnet.link.transformer.graph import window_neighbours

    rng = np.random.default_rng(5)
    W, G, cut, ks, kn, kf = 8, 3, 1500.0, 3, 4, 1
    frame = rng.integers(0, W, 300)
    xy = rng.uniform(0, 6000, (300, 2))
    nbr = window_neighbours(frame, xy, W, G, cut, ks, kn, kf)
    for t in rng.choice(300, 40, replace=False):
        col, expect = 1, []
        for delta in range(-(W - 1), W):
            k = ks if delta == 0 else (kn if abs(delta) <= G else kf)
            cand = np.flatnonzero((frame == frame[t] + delta) & (np.arange(300) != t))
            d = np.hypot(*(xy[cand] - xy[t]).T)
            near = cand[np.argsort(d)][: k][np.sort(d)[: k] <= cut]
            expect.append(np.r_[near, -np.ones(k - near.size, int)])
            col += k
        assert nbr[t, 0] == t
        np.testing.assert_array_equal(nbr[t, 1:], np.concatenate(expect))


def test_a_table_over_many_frames_restricted_to_a_window_is_that_windows_table():
    """Inference builds one neighbour table per block of overlapping windows; restricted to
    the tokens of one window it must equal the table that window gets on its own (training's
    table), for every window of the block."""
    from smlmnet.link.transformer.graph import restrict_neighbours, window_neighbours

    rng = np.random.default_rng(6)
    W, G, n_frames, n = 8, 3, 40, 2000
    frame = np.sort(rng.integers(0, n_frames, n))
    xy = rng.uniform(0, 8000, (n, 2))
    table = window_neighbours(frame, xy, W, G, 1500.0)
    scratch = np.full(n, -1, np.int64)
    for w in range(0, n_frames - W + 1, 3):
        rows = np.flatnonzero((frame >= w) & (frame < w + W))
        own = window_neighbours(frame[rows] - w, xy[rows], W, G, 1500.0)
        np.testing.assert_array_equal(restrict_neighbours(table, rows, scratch), own)
        assert (scratch == -1).all()


def test_gap_candidates_match_brute_force():
    """Gap-closing candidates (end of A → start of B, min_gap < Δframe ≤ max_gap, within
    radius[A]) are exactly the brute-force pairs over all (A, B), sorted by (A, B)."""
    from smlmnet.link.transformer.infer import _gap_candidates

    rng = np.random.default_rng(8)
    m = 400
    end_f, start_f = rng.integers(0, 60, m), rng.integers(0, 60, m)
    end_xy, start_xy = rng.uniform(0, 5000, (m, 2)), rng.uniform(0, 5000, (m, 2))
    radius = rng.uniform(100, 900, m)
    A, B = _gap_candidates(end_f, start_f, end_xy, start_xy, radius, 3, 8)
    dt = start_f[None, :] - end_f[:, None]
    d = np.hypot(*(start_xy[None, :, :] - end_xy[:, None, :]).transpose(2, 0, 1))
    ea, eb = np.nonzero((dt > 3) & (dt <= 8) & (d <= radius[:, None]))
    assert A.size > 50
    np.testing.assert_array_equal(A, ea)
    np.testing.assert_array_equal(B, eb)


def test_prefetched_tables_and_parallel_batches_give_the_same_edges(shipped):
    """Neighbour tables built ahead in a thread and network batches run in parallel worker
    threads (the defaults) change nothing: bit-identical edges and probabilities to the plain
    loop, on a table spanning many windows and batches."""
    rng = np.random.default_rng(11)
    locs = simulate_table(rng, 40, 8.0, 0.8, motions=[{"model": "brownian", "D_um2_s": 0.5}]
                          ).drop(columns=C.TRACK_ID)
    linker = TransformerLinker(shipped.net, batch_tokens=256, prefetch_tiles=4, workers=3)
    a = linker.edge_probabilities(locs)
    linker.prefetch_tiles, linker.workers = 0, 1
    b = linker.edge_probabilities(locs)
    assert len(a) > 100
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ValueError, match="workers"):
        TransformerLinker(shipped.net, workers=0)


def test_prefetch_keeps_order_raises_producer_errors_and_stops_early():
    from smlmnet.link.prefetch import prefetch

    assert list(prefetch(range(100), depth=3)) == list(range(100))
    assert list(prefetch(iter([]), depth=2)) == []

    def failing():
        yield 1
        raise RuntimeError("producer failed")

    with pytest.raises(RuntimeError, match="producer failed"):
        list(prefetch(failing(), depth=2))
    produced = []

    def counting():
        for i in range(10_000):
            produced.append(i)
            yield i

    for i in prefetch(counting(), depth=2):
        if i == 5:
            break
    assert len(produced) < 100          # the producer stopped soon after the consumer


def test_init_from_starts_from_a_model_folder_and_refuses_another_network(tmp_path):
    """``model.init_from`` (fine-tuning): the module's network starts with the folder's weights;
    a folder of a network with other arguments is refused with the differences named."""
    from smlmnet.link.transformer.lightning import LinkerModule
    from smlmnet.models.registry import write_model_folder

    net = tiny_net(1)
    folder = write_model_folder(tmp_path / "m", net.state_dict(), {
        "name": "m", "kind": "linker", "description": "test", "limits": "test",
        "net": {"_target_": "smlmnet.link.transformer.net.LinkerNet", **net.config()}})
    module = LinkerModule(tiny_net(2), init_from=str(folder))
    for k, v in net.state_dict().items():
        assert torch.equal(module.net.state_dict()[k], v), k
    with pytest.raises(ValueError, match="d_model"):
        LinkerModule(LinkerNet(d_model=32, n_layers=1, n_heads=2, ff=32, pair_hidden=16),
                     init_from=str(folder))


def test_regime_mixture_draws_its_share_and_keeps_the_stream_without_regimes():
    """``data.regimes``: each item takes a regime's range overrides with its probability
    (binomial: 0.3 of 2,000 draws within 4 standard deviations, ±0.041); a persistent item has
    no false positives and its tracks outlast the window; no regimes = the unchanged stream."""
    from smlmnet.link.transformer.targets import DEFAULT_RANGES, REGIMES, regime_ranges

    rng = np.random.default_rng(0)
    mix = [{"name": "persistent", "probability": 0.3}]
    share = np.mean([regime_ranges(rng, DEFAULT_RANGES, mix)["lifetime_frames"]
                     == REGIMES["persistent"]["lifetime_frames"] for _ in range(2000)])
    assert abs(share - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 2000)
    with pytest.raises(ValueError, match="unknown regime"):
        regime_ranges(rng, DEFAULT_RANGES, [{"name": "nope", "probability": 0.5}])
    with pytest.raises(ValueError, match="sum to at most 1"):
        regime_ranges(rng, DEFAULT_RANGES, [{"name": "persistent", "probability": 1.5}])

    plain = SimulatedLinkingDataset(length=4, seed=5)
    empty = SimulatedLinkingDataset(length=4, seed=5, regimes=[])
    for k in range(4):
        a, b = plain.make_item(k), empty.make_item(k)
        assert torch.equal(a["xy"], b["xy"]) and torch.equal(a["parent"], b["parent"])

    rng = np.random.default_rng(1)
    persistent = regime_ranges(rng, DEFAULT_RANGES, [{"name": "persistent", "probability": 1}])
    df = simulate_table(rng, 12, 10.0, 1.0, ranges=persistent,
                        motions=[{"model": "brownian", "D_um2_s": 0.1}])
    assert (df[C.TRACK_ID] < 0).mean() < 0.02          # false positives ≤ 1 % (+ Poisson)
    spans = df[df[C.TRACK_ID] >= 0].groupby(C.TRACK_ID)[C.FRAME].agg(["min", "max"])
    assert len(spans) > 60
    # a track seen neither in the first nor in the last frame: both detections missed (≤
    # 0.25² at the lowest detection probability), a start or bleach inside 12 frames of a
    # ≥ 300-frame life (≈ 1 %) or a crossing of the field's edge; 0.15 is > 3 binomial sds
    inside = spans[(spans["min"] > 0) & (spans["max"] < 11)]
    assert len(inside) <= 0.15 * len(spans)


def test_birth_share_and_the_adaptive_threshold_follow_the_movie():
    """The birth share counts localizations (away from the movie's ends) whose incoming edge
    probabilities sum below 0.5; the adaptive threshold is clip(k · share^power, min, max) and
    the decoding uses it; bad settings get clear errors."""
    from smlmnet.link.transformer.infer import birth_share

    frames = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    edges = pd.DataFrame({"i": [0, 2, 4, 6, 3], "j": [2, 4, 6, 8, 5],
                          "p": [0.9, 0.8, 0.3, 0.9, 0.2]})
    # inner rows (frames 1..3 for G = 1): 2, 3, 4, 5, 6, 7; sums 0.9, 0, 0.8, 0.2, 0.3, 0
    assert birth_share(frames, edges, 1) == pytest.approx(4 / 6)
    # edges a decoding rule may or may not keep (p <= 1e-3) never change the share
    faint = pd.concat([edges, pd.DataFrame({"i": [1] * 600, "j": [3] * 600, "p": [9e-4] * 600})])
    assert birth_share(frames, faint, 1) == pytest.approx(4 / 6)

    linker = TransformerLinker(tiny_net(), threshold=0.3,
                               adaptive_threshold={"per_birth_share": 2.0, "min": 0.02,
                                                   "max": 0.4})
    locs = small_table().drop(columns=[C.TRACK_ID])
    out = linker.link(locs)
    b = linker.last_birth_share
    assert 0 <= b <= 1
    assert linker.last_threshold == pytest.approx(float(np.clip(2 * b, 0.02, 0.4)))
    squared = TransformerLinker(tiny_net(), adaptive_threshold={
        "per_birth_share": 20.0, "min": 0.002, "max": 0.4, "power": 2.0})
    squared.link(locs)
    assert squared.last_birth_share == pytest.approx(b)
    assert squared.last_threshold == pytest.approx(float(np.clip(20 * b * b, 0.002, 0.4)))
    edges = linker.edge_probabilities(out.drop(columns=[C.TRACK_ID]), keep_above=0.01)
    expect = linker.tracks_from_edges(len(out), edges, threshold=linker.last_threshold)
    linker.close_gaps_frames = 0
    again = linker.link(locs)[C.TRACK_ID].to_numpy()
    same = pd.crosstab(again, expect)                 # identical partitions up to labels
    assert ((same > 0).sum(1) == 1).all() and ((same > 0).sum(0) == 1).all()
    for bad in ({"per_birth_share": 2.0, "min": 0.5, "max": 0.4},
                {"per_birth_share": 0.0, "min": 0.02, "max": 0.4}, {"min": 0.02},
                {"per_birth_share": 2.0, "min": 0.02, "max": 0.4, "power": 0.0}):
        with pytest.raises(ValueError, match="adaptive_threshold"):
            TransformerLinker(tiny_net(), adaptive_threshold=bad)
