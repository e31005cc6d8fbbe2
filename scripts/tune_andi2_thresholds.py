"""Tune a per-step trajectory model's changepoint and segment-state thresholds for the AnDi 2
metrics and record them in its model folder (``thresholds`` of ``model.yaml``, card rewritten).

The tuning data is the same as the classical baseline's in ``evaluate.py
benchmark=andi2_trajectory``: smlmnet's AnDi 2 generator at a seed that no benchmark reports
(default 900), ``--experiments`` experiments of 50 particles per model, T = 200 frames.

    python scripts/tune_andi2_thresholds.py smlmnet/pretrained/trajnet_andi2 --seed 900 \
        --experiments 4
"""

from __future__ import annotations

import argparse

import numpy as np
import yaml

from smlmnet.evaluation.andi2 import flatten, simulated_set, truth_table, tune_learned_thresholds
from smlmnet.io.atomic import atomic_write_path
from smlmnet.models.registry import load, model_dir, read_info, render_model_card


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="model folder (or shipped name) of kind trajectory")
    ap.add_argument("--seed", type=int, default=900)
    ap.add_argument("--experiments", type=int, default=4)
    ap.add_argument("--T", type=int, default=200)
    args = ap.parse_args(argv)
    folder = model_dir(args.model)
    est = load(str(folder))
    tracks = flatten(simulated_set(np.random.default_rng(args.seed), args.experiments, args.T))
    tuned = tune_learned_thresholds(est, tracks, truth_table(tracks))
    info = yaml.safe_load((folder / "model.yaml").read_text())
    info["thresholds"] = {**(info.get("thresholds") or {}), "changepoint": tuned["changepoint"],
                          **({"state": tuned["state"]} if "state" in tuned else {})}
    f1 = tuned.get("state F1 scan", {})
    info["threshold_tuning"] = {
        "data": f"smlmnet's AnDi 2 generator, seed {args.seed}, {args.experiments} experiments "
                f"× 5 models × 50 tracks of {args.T} frames (the classical baseline's tuning "
                "data in evaluate.py benchmark=andi2_trajectory)",
        "command": "python scripts/tune_andi2_thresholds.py " + " ".join(
            [str(args.model), f"--seed {args.seed}", f"--experiments {args.experiments}"]),
        "changepoint_jsc": {float(k): round(float(v), 4) for k, v in tuned["JSC scan"].items()},
        **({"state_f1_best5 (immobile/confined)": dict(
            sorted(f1.items(), key=lambda kv: -kv[1])[:5])} if f1 else {})}
    with atomic_write_path(folder / "model.yaml", overwrite=True) as tmp:
        tmp.write_text(yaml.safe_dump(info, sort_keys=False, allow_unicode=True))
    with atomic_write_path(folder / "MODEL_CARD.md", overwrite=True) as tmp:
        tmp.write_text(render_model_card(read_info(folder)))
    print({k: tuned[k] for k in ("changepoint", "state") if k in tuned})
    return tuned


if __name__ == "__main__":
    main()
