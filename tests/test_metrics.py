"""Metrics on hand-made cases and against the AnDi reference scorer's stored outputs."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smlmnet.metrics import (
    andi2_single_trajectory_scores,
    mae_alpha,
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
