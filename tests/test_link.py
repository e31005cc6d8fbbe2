"""Linking: exactness of the sparse assignment, gap closing, and LAP vs greedy."""

import itertools

import numpy as np
import pandas as pd
import pytest

from smlmnet.link import LAPLinker, NearestNeighborLinker, solve_sparse_assignment
from smlmnet.metrics import tracking_metrics


def table(points):
    return pd.DataFrame(points, columns=["frame", "x [nm]", "y [nm]"])


def brute_force(i, j, cost, alt):
    edges = [(a, b, c) for a, b, c in zip(i, j, cost) if c < alt]
    best = 0.0
    for r in range(len(edges) + 1):
        for subset in itertools.combinations(edges, r):
            if len({e[0] for e in subset}) == r and len({e[1] for e in subset}) == r:
                best = min(best, sum(c - alt for _, _, c in subset))
    return best


def test_sparse_assignment_is_optimal(rng):
    for _ in range(30):
        n = int(rng.integers(2, 6))
        k = int(rng.integers(1, 9))
        i, j = rng.integers(0, n, k), rng.integers(0, n, k)
        key = np.unique(i * 10 + j, return_index=True)[1]
        i, j, cost = i[key], j[key], rng.uniform(0, 1.2, key.size)
        a, b = solve_sparse_assignment(i, j, cost, n, n, 1.0)
        chosen = {(x, y) for x, y in zip(a, b)}
        lookup = dict(zip(zip(i, j), cost))
        total = sum(lookup[e] - 1.0 for e in chosen)
        assert len(set(a)) == len(a) and len(set(b)) == len(b)
        assert total == pytest.approx(brute_force(i, j, cost, 1.0))


def test_lap_beats_greedy_on_an_ambiguous_crossing():
    # frame 0: A at 0, B at 100; frame 1: at 60 and 170. Greedy takes the closest pair
    # B→60 (40 nm) and leaves A→170 beyond reach; LAP links A→60 and B→170 (60 + 70).
    locs = table([(0, 0, 0), (0, 100, 0), (1, 60, 0), (1, 170, 0)])
    lap = LAPLinker(search_radius_nm=150, max_gap_frames=0).link(locs)
    nn = NearestNeighborLinker(search_radius_nm=150).link(locs)
    assert lap["track_id"].nunique() == 2
    assert nn["track_id"].nunique() == 3


def test_gap_closing_bridges_missing_frames():
    locs = table([(0, 0, 0), (1, 10, 0), (4, 20, 0), (5, 30, 0)])  # frames 2 and 3 missing
    assert LAPLinker(100, max_gap_frames=2).link(locs)["track_id"].nunique() == 1
    assert LAPLinker(100, max_gap_frames=1).link(locs)["track_id"].nunique() == 2


def test_lap_recovers_sparse_brownian_tracks(rng):
    n, T = 40, 50
    start = rng.uniform(0, 50_000, (n, 1, 2))
    pos = start + np.cumsum(rng.normal(0, 60, (n, T, 2)), axis=1)
    truth = pd.DataFrame({"track_id": np.repeat(np.arange(n), T), "frame": np.tile(np.arange(T), n),
                          "x [nm]": pos[..., 0].ravel(), "y [nm]": pos[..., 1].ravel()})
    keep = rng.random(len(truth)) > 0.1  # 10 % missed detections
    truth = truth[keep].reset_index(drop=True)
    est = LAPLinker(400, max_gap_frames=3).link(truth.drop(columns="track_id"))
    m = tracking_metrics(truth, est, gate_nm=500)
    assert m["alpha"] > 0.97 and m["jsc_theta"] > 0.9


def test_linker_rejects_bad_tables():
    with pytest.raises(ValueError, match="lacks column"):
        LAPLinker().link(pd.DataFrame({"frame": [0]}))
    with pytest.raises(ValueError, match="NaN"):
        LAPLinker().link(table([(0, np.nan, 0)]))
    with pytest.raises(ValueError, match="search_radius_nm"):
        LAPLinker(search_radius_nm=0)


@pytest.mark.parametrize("peer", ["trackpy", "laptrack"])
def test_peer_adapters_agree_on_an_easy_case(peer, rng):
    pytest.importorskip(peer)
    from smlmnet.peers import LaptrackLinker, TrackpyLinker

    cls = TrackpyLinker if peer == "trackpy" else LaptrackLinker
    n, T = 10, 20
    pos = rng.uniform(0, 20_000, (n, 1, 2)) + np.cumsum(rng.normal(0, 50, (n, T, 2)), axis=1)
    truth = pd.DataFrame({"track_id": np.repeat(np.arange(n), T),
                          "frame": np.tile(np.arange(T), n),
                          "x [nm]": pos[..., 0].ravel(), "y [nm]": pos[..., 1].ravel()})
    truth = truth.sample(frac=1.0, random_state=0)  # row order must not matter
    est = cls(400, 2).link(truth.drop(columns="track_id"))
    assert tracking_metrics(truth, est, 500)["alpha"] == pytest.approx(1.0)


def test_sparse_component_solver_reaches_the_dense_optimum():
    """Large components are solved as a sparse full matching of u-track's square
    link / no-link graph; on random instances (forced onto that path) its total gain equals
    the dense Jonker–Volgenant optimum and every element is used at most once."""
    rng = np.random.default_rng(12)

    def total(sol, i, j, cost, alt):
        lut = {(a, b): c for a, b, c in zip(i, j, cost)}
        return sum(lut[(a, b)] - alt for a, b in zip(*sol))

    for _ in range(40):
        n_i, n_j = rng.integers(2, 40, 2)
        key = np.unique(rng.integers(0, n_i * n_j, rng.integers(1, n_i * n_j)))
        i, j = key // n_j, key % n_j
        cost, alt = rng.uniform(0, 5, key.size), rng.uniform(0.5, 5)
        dense = solve_sparse_assignment(i, j, cost, n_i, n_j, alt)
        sparse = solve_sparse_assignment(i, j, cost, n_i, n_j, alt, dense_max_cells=0)
        assert total(sparse, i, j, cost, alt) == pytest.approx(total(dense, i, j, cost, alt))
        assert len(set(sparse[0])) == sparse[0].size and len(set(sparse[1])) == sparse[1].size
    # a repeated pair counts once, at its cheapest cost (a sparse matrix would add them up
    # to 1.1 > the alternative 1.0 and leave the pair unlinked)
    i, j, cost = np.array([0, 0, 1]), np.array([0, 0, 1]), np.array([0.4, 0.7, 0.2])
    si, sj = solve_sparse_assignment(i, j, cost, 2, 2, 1.0, dense_max_cells=0)
    assert sorted(zip(si.tolist(), sj.tolist())) == [(0, 0), (1, 1)]
