"""Write AnDi 2 single-trajectory data (2D) from andi-datasets' official phenomenological models.

Runs in andi-datasets' own virtual environment (never smlmnet's), see benchmarks/README.md:

    /work/ext_envs/andi/bin/python benchmarks/external/make_andi2_trajectories.py \
        --out /work/ext_data/andi2 --seeds 2001 2002 2003 2004 2005 --experiments 4

For each seed (``seed_andi(seed)``, andi_seed.py: numpy's and ``stochastic``'s generators)
and each of the five AnDi 2 models (1 single_state, 2 multi_state, 3 immobile_traps,
4 dimerization, 5 confinement), ``--experiments`` experiments are drawn, each with the
challenge's own parameter sampler ``datasets_challenge._get_dic_andi2(model)`` (N = 50
particles, T = 200 frames, box L = 230.4 px, D ≈ 1 px²/frame, α and the slow state's D
drawn per experiment) and simulated with ``models_phenom().<model>(**dic)``. Every particle's
full trajectory is kept (no field-of-view cut), and Gaussian localization noise of std
``sigma_noise`` = 0.12 px per coordinate is added, as ``challenge_phenom_dataset`` does.

Saved as ``seed<seed>.npz`` (plain arrays, no pickles), per model k ∈ 1..5:
``m<k>_xy`` (n, T, 2) noisy positions (px), ``m<k>_alpha`` / ``m<k>_D`` / ``m<k>_state``
(n, T) per-frame labels (label at frame t describes the displacement t−1 → t; state
0 immobile, 1 confined, 2 free, 3 directed; D is K with MSD = 4Kτ^α, px²/frame^α),
``m<k>_exp`` (n,) experiment index; and ``seed<seed>.json`` with each experiment's
parameters (the dictionaries passed to andi-datasets).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from andi_seed import seed_andi  # sibling module: numpy's and stochastic's generators

MODEL_NAMES = {1: "single_state", 2: "multi_state", 3: "immobile_traps", 4: "dimerization",
               5: "confinement"}


def _jsonable(d):
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in d.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[2001, 2002, 2003, 2004, 2005])
    ap.add_argument("--experiments", type=int, default=4, help="experiments per model and seed")
    ap.add_argument("--sigma-noise", type=float, default=None)
    args = ap.parse_args()
    import andi_datasets
    from andi_datasets.datasets_challenge import _defaults_andi2, _get_dic_andi2
    from andi_datasets.models_phenom import models_phenom

    sigma = args.sigma_noise if args.sigma_noise is not None else _defaults_andi2().sigma_noise
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        t0 = time.time()
        seed_andi(seed)
        arrays, meta = {}, {"generator": f"andi_datasets {andi_datasets.__version__}",
                            "seed": seed, "sigma_noise": sigma, "experiments": {}}
        for k, name in MODEL_NAMES.items():
            xy, lab, exp = [], [], []
            meta["experiments"][name] = []
            for e in range(args.experiments):
                dic = _get_dic_andi2(k)
                dic.pop("model")
                meta["experiments"][name].append(_jsonable(dic))
                pos, labels = getattr(models_phenom(), name)(**dic)   # (T, N, 2), (T, N, ≥3)
                pos = np.transpose(pos, (1, 0, 2))
                pos = pos + np.random.randn(*pos.shape) * sigma
                xy.append(pos)
                lab.append(np.transpose(labels[..., :3], (1, 0, 2)))
                exp.append(np.full(pos.shape[0], e))
            lab = np.concatenate(lab)
            arrays[f"m{k}_xy"] = np.concatenate(xy)
            arrays[f"m{k}_alpha"] = lab[..., 0]
            arrays[f"m{k}_D"] = lab[..., 1]
            arrays[f"m{k}_state"] = lab[..., 2].astype(np.int8)
            arrays[f"m{k}_exp"] = np.concatenate(exp)
        np.savez_compressed(out / f"seed{seed}.npz", **arrays)
        meta["seconds"] = time.time() - t0
        (out / f"seed{seed}.json").write_text(json.dumps(meta))
        print(f"seed {seed}: {sum(len(arrays[f'm{k}_exp']) for k in MODEL_NAMES)} "
              f"trajectories in {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
