"""Score fixed random predictions with andi-datasets' own AnDi 2 scorer and store the inputs and
the scores in tests/data/andi2_reference.json, so that tests/test_metrics.py checks smlmnet's
scorer against the reference without andi-datasets installed.

    python benchmarks/make_andi_reference.py   # needs andi-datasets (see benchmarks/README.md)
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from smlmnet.io.provenance import provenance

warnings.filterwarnings("ignore")


def random_case(rng, n_traj=40, T=200):
    true_rows, pred_rows = [], []
    for i in range(n_traj):
        n_cp = int(rng.integers(0, 4))
        cps = sorted(rng.choice(np.arange(10, T - 10), n_cp, replace=False).tolist()) + [T]
        true_rows.append({"traj_idx": i, "changepoints": cps,
                          "alphas": rng.uniform(0.1, 1.9, len(cps)).round(3).tolist(),
                          "Ds": (10 ** rng.uniform(-2, 1, len(cps))).round(4).tolist(),
                          "states": rng.integers(0, 4, len(cps)).tolist()})
        if rng.random() < 0.1:
            continue  # missing prediction
        jitter = [int(c + rng.integers(-15, 16)) for c in cps[:-1]]
        if rng.random() < 0.3 and jitter:
            jitter = jitter[:-1]
        if rng.random() < 0.3:
            jitter.append(int(rng.integers(10, T - 10)))
        pcps = sorted(set(int(np.clip(c, 1, T - 1)) for c in jitter)) + [T]
        pred_rows.append({"traj_idx": i, "changepoints": pcps,
                          "alphas": rng.uniform(0.0, 2.0, len(pcps)).round(3).tolist(),
                          "Ds": (10 ** rng.uniform(-2, 1, len(pcps))).round(4).tolist(),
                          "states": rng.integers(0, 4, len(pcps)).tolist()})
    return pd.DataFrame(true_rows), pd.DataFrame(pred_rows)


def main():
    from andi_datasets.utils_challenge import error_SingleTraj_dataset

    cases = []
    for seed in range(5):
        true, pred = random_case(np.random.default_rng(seed))
        scores = error_SingleTraj_dataset(pred, true, prints=False, disable_tqdm=True)
        cases.append({"true": true.to_dict(orient="list"), "pred": pred.to_dict(orient="list"),
                      "scores": dict(zip(["cp_rmse", "cp_jaccard", "alpha_mae", "K_msle",
                                          "state_f1"], map(float, scores)))})
    out = Path(__file__).resolve().parents[1] / "tests" / "data" / "andi2_reference.json"
    out.write_text(json.dumps({"source": "andi_datasets.utils_challenge."
                               "error_SingleTraj_dataset", "provenance": provenance(),
                               "cases": cases}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
