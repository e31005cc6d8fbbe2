"""Write AnDi 1 task 1 and task 2 trajectories (2D) from andi-datasets' official generator.

Runs in andi-datasets' own virtual environment (never smlmnet's), see benchmarks/README.md:

    /work/ext_envs/andi/bin/python benchmarks/external/make_andi1_trajectories.py \
        --out /work/ext_data/andi1 --seeds 1001 1002 1003 1004 1005 --n 1000

For each seed, ``challenge_theory_dataset(N=n, tasks=[1, 2], dimensions=[2], min_T=10,
max_T=1000)`` (the challenge's length mix, noise and random scale) after
``seed_andi(seed)`` (andi_seed.py: numpy's global generator and ``stochastic``'s), saved as
``seed<seed>.npz`` with, per task k ∈ {1, 2}: ``t<k>_xy`` (all points, (Σ T_i, 2)),
``t<k>_lengths`` (T_i) and ``t<k>_label`` (α for task 1, model index for task 2, AnDi's order
attm, ctrw, fbm, lw, sbm). No pickles: plain arrays only.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from andi_seed import seed_andi  # sibling module: numpy's and stochastic's generators


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1001, 1002, 1003, 1004, 1005])
    ap.add_argument("--n", type=int, default=1000, help="trajectories per task and seed")
    args = ap.parse_args()
    import andi_datasets
    from andi_datasets.datasets_challenge import challenge_theory_dataset

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        t0 = time.time()
        seed_andi(seed)
        X1, Y1, X2, Y2, _, _ = challenge_theory_dataset(N=args.n, tasks=[1, 2],
                                                        dimensions=[2], min_T=10, max_T=1000)
        arrays = {}
        for k, (X, Y) in ((1, (X1[1], Y1[1])), (2, (X2[1], Y2[1]))):
            trajs = [np.asarray(t, float).reshape(2, -1).T for t in X]
            arrays[f"t{k}_xy"] = np.concatenate(trajs)
            arrays[f"t{k}_lengths"] = np.array([len(t) for t in trajs])
            arrays[f"t{k}_label"] = np.asarray(Y, float)
        np.savez_compressed(out / f"seed{seed}.npz", **arrays)
        (out / f"seed{seed}.json").write_text(json.dumps({
            "generator": f"andi_datasets {getattr(andi_datasets, '__version__', '?')}",
            "call": f"challenge_theory_dataset(N={args.n}, tasks=[1, 2], dimensions=[2], "
                    "min_T=10, max_T=1000)", "seed": seed, "seconds": time.time() - t0}))
        print(f"seed {seed}: {len(arrays['t1_lengths'])} + {len(arrays['t2_lengths'])} "
              f"trajectories in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
