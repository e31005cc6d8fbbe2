"""Metrics on hand-made cases and against the AnDi reference scorer's stored outputs."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smlmnet.metrics import (
    andi2_single_trajectory_scores,
    mae_alpha,
    mortensen_precision_nm,
    msle_K,
    smlm_metrics,
    tracking_metrics,
)


def locs(rows):
    return pd.DataFrame(rows, columns=["frame", "x [nm]", "y [nm]"])


def test_smlm_metrics_hand_example():
    true = locs([(0, 0, 0), (0, 1000, 0), (1, 0, 0)])
    est = locs([(0, 30, 40), (0, 5000, 0), (1, 0, 10), (2, 0, 0)])
    m = smlm_metrics(true, est)
    assert (m["tp"], m["fp"], m["fn"]) == (2, 2, 1)
    assert m["jaccard [%]"] == pytest.approx(40.0)
    assert m["rmse_lateral [nm]"] == pytest.approx(np.sqrt((50**2 + 10**2) / 2))
    assert m["efficiency [%]"] == pytest.approx(100 - np.sqrt(60**2 + 1300))


def test_greedy_pairing_takes_the_closest_first():
    true = locs([(0, 0, 0), (0, 200, 0)])
    est = locs([(0, 110, 0)])  # 110 from the first, 90 from the second
    assert smlm_metrics(true, est)["rmse_lateral [nm]"] == pytest.approx(90)


def track_table(rows):
    return pd.DataFrame(rows, columns=["track_id", "frame", "x [nm]", "y [nm]"])


def test_tracking_metrics_perfect_and_split():
    true = track_table([(0, f, 10.0 * f, 0) for f in range(10)])
    perfect = tracking_metrics(true, true, gate_nm=500)
    assert perfect["alpha"] == perfect["beta"] == perfect["jsc"] == perfect["jsc_theta"] == 1
    # estimate split in two halves: the better half pairs, the other is spurious
    split = true.copy()
    split.loc[split["frame"] >= 6, "track_id"] = 1
    m = tracking_metrics(true, split, gate_nm=500)
    eps = 500
    d_x0 = eps * 10
    d_xy = eps * 4  # the 4 frames missing from the paired half
    assert m["alpha"] == pytest.approx(1 - d_xy / d_x0)
    assert m["beta"] == pytest.approx((d_x0 - d_xy) / (d_x0 + eps * 4))
    assert m["jsc"] == pytest.approx(6 / (6 + 4 + 4))  # TP / (TP + FN + FP points)
    assert m["jsc_theta"] == pytest.approx(1 / 2)


def test_tracking_metrics_gate():
    true = track_table([(0, f, 0, 0) for f in range(4)])
    far = track_table([(7, f, 10_000, 0) for f in range(4)])
    m = tracking_metrics(true, far, gate_nm=500)
    assert m["alpha"] == 0 and m["paired"] == 0 and m["spurious"] == 1


def test_alpha_and_K_errors():
    assert mae_alpha([1.0, 0.5], [0.8, np.nan]) == pytest.approx((0.2 + 2.0) / 2)
    assert msle_K([1.0], [np.e - 1]) == pytest.approx((np.log(2) - 1) ** 2)


def test_andi2_scores_match_the_reference_scorer():
    ref = json.loads((Path(__file__).parent / "data" / "andi2_reference.json").read_text())
    assert ref["source"].startswith("andi_datasets")
    for case in ref["cases"]:
        ours = andi2_single_trajectory_scores(pd.DataFrame(case["true"]),
                                              pd.DataFrame(case["pred"]))
        for key, value in case["scores"].items():
            assert ours[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_andi2_scores_live_against_andi_datasets():
    utils = pytest.importorskip("andi_datasets.utils_challenge")
    ref = json.loads((Path(__file__).parent / "data" / "andi2_reference.json").read_text())
    case = ref["cases"][0]
    true, pred = pd.DataFrame(case["true"]), pd.DataFrame(case["pred"])
    theirs = utils.error_SingleTraj_dataset(pred, true, prints=False, disable_tqdm=True)
    ours = andi2_single_trajectory_scores(true, pred)
    assert list(ours.values()) == pytest.approx(list(theirs))


# --- the Mortensen bound: exact integral, its closed form, limits ------------------------------

def _sa2(s=130.0, a=100.0):
    return s**2 + a**2 / 12


def _tau(N, b, s=130.0, a=100.0):
    return 2 * np.pi * _sa2(s, a) * b / (N * a**2)


def test_mortensen_without_background_is_the_shot_noise_limit():
    # b → 0: τ → 0, the integral vanishes and Var = s_a²/N (MLE; the closed form agrees);
    # least squares keeps Mortensen's 16/9
    N = np.array([100.0, 1000.0, 1e4])
    shot = np.sqrt(_sa2() / N)
    for b in (0.0, 1e-9):
        assert mortensen_precision_nm(N, b, 130, 100) == pytest.approx(shot, rel=1e-6)
        assert mortensen_precision_nm(N, b, 130, 100, estimator="mle_closed_form") == \
            pytest.approx(shot, rel=1e-4)
        assert mortensen_precision_nm(N, b, 130, 100, estimator="least_squares") == \
            pytest.approx(shot * 4 / 3, rel=1e-6)


def test_mortensen_background_dominated_limit():
    # τ → ∞: 1 + ∫ ln t/(1 + t/τ) dt = 1/(4τ) − 1/(9τ²) + O(τ⁻³), so the MLE bound tends to
    # (s_a²/N)(4τ + 16/9), the least-squares bound, and the closed form to (s_a²/N)(4τ + 1.71)
    N, b = 100.0, 1e5
    tau = _tau(N, b)
    exact = mortensen_precision_nm(N, b, 130, 100) ** 2
    ls = mortensen_precision_nm(N, b, 130, 100, estimator="least_squares") ** 2
    closed = mortensen_precision_nm(N, b, 130, 100, estimator="mle_closed_form") ** 2
    assert exact == pytest.approx(ls, rel=1e-6)
    assert exact == pytest.approx(_sa2() / N * (4 * tau + 16 / 9), rel=1e-6)
    assert closed / exact == pytest.approx(1, abs=1 / tau)


def test_mortensen_integral_equals_the_dilogarithm_form():
    # ∫₀¹ ln t/(1 + t/τ) dt = τ·Li₂(−1/τ), Li₂(z) = spence(1 − z): an independent check of quad
    from scipy.special import spence

    for N, b in [(5000, 0.01), (1000, 1), (1000, 10), (300, 40), (100, 100)]:
        tau = _tau(N, b)
        var = _sa2() / N / (1 + tau * spence(1 + 1 / tau))
        assert mortensen_precision_nm(N, b, 130, 100) == pytest.approx(np.sqrt(var), rel=1e-9)


def test_mortensen_arrays_excess_noise_and_labels():
    from smlmnet.metrics import excess_noise_factor, mortensen_label

    one = mortensen_precision_nm(1000, 10, 130, 100)
    out = mortensen_precision_nm([1000, 1000, 0], [10, 10, 10], 130, 100)
    assert out.shape == (3,) and out[0] == out[1] == pytest.approx(one) and np.isnan(out[2])
    assert excess_noise_factor("emccd") == 2 and excess_noise_factor("scmos") == 1
    emccd = mortensen_precision_nm(1000, 10, 130, 100, excess_noise_factor("emccd"))
    assert emccd == pytest.approx(np.sqrt(2) * one)
    assert "exact" in mortensen_label("mle") and "closed-form" in mortensen_label(
        "mle_closed_form")
    assert "excess" in mortensen_label("mle", 2.0)
    with pytest.raises(ValueError, match="estimator"):
        mortensen_precision_nm(1000, 10, 130, 100, estimator="crlb")


def test_error_vs_bound_normalizes_each_error_by_its_own_bound():
    from smlmnet.metrics import error_vs_bound

    err = np.array([1.0, -2.0, 30.0, -3.0])
    bound = np.array([1.0, 1.0, 10.0, 10.0])
    r = error_vs_bound(err, bound)
    assert r["per-axis RMSE [nm]"] == pytest.approx(np.sqrt(np.mean(err**2)))
    assert r["RMS bound [nm]"] == pytest.approx(np.sqrt(np.mean(bound**2)))
    assert r["mean z²"] == pytest.approx((1 + 4 + 9 + 0.09) / 4)
    assert r["|z| < 1 [%]"] == pytest.approx(25.0)  # only the −3 nm error (z = −0.3)
    assert r["|z| < 2 [%]"] == pytest.approx(50.0)  # z = 1 and −0.3
    # errors drawn at the bound: mean z² ≈ 1, ~68 % within 1σ
    rng = np.random.default_rng(0)
    b = rng.uniform(5, 50, 20000)
    r = error_vs_bound(rng.normal(0, b), b)
    assert r["mean z²"] == pytest.approx(1, abs=5 * np.sqrt(2 / 20000))
    assert r["|z| < 1 [%]"] == pytest.approx(68.27, abs=2)


def test_one_greedy_matcher_for_pairing_and_linking():
    from smlmnet.link.assignment import greedy_assignment, solve_sparse_assignment
    from smlmnet.metrics import match_per_frame

    i, j, cost = np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([2.0, 1.0, 1.0])
    # ties are taken in input order: (0, 1) first, then (1, 0); (0, 0) is blocked
    assert greedy_assignment(i, j, cost, 2, 2).tolist() == [1, 2]
    si, sj = solve_sparse_assignment(i, j, cost, 2, 2, alternative=10.0, greedy=True)
    assert list(zip(si, sj)) == [(0, 1), (1, 0)]
    true = locs([(0, 0, 0), (0, 200, 0), (1, 0, 0)])
    est = locs([(0, 110, 0), (0, 10, 0), (1, 5, 0)])
    pairs = match_per_frame(true, est)
    got = sorted(zip(pairs["true_index"], pairs["est_index"], pairs["distance [nm]"]))
    assert got == [(0, 1, pytest.approx(10)), (1, 0, pytest.approx(90)),
                   (2, 2, pytest.approx(5))]
