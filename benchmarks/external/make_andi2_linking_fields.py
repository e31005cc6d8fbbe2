"""Write crowded fields of simultaneous trajectories from andi-datasets' AnDi 2 phenomenological
models, for the linking benchmark's external check (``benchmark=linking_external``).

Runs in andi-datasets' own virtual environment (never smlmnet's), see benchmarks/README.md:

    /work/ext_envs/andi/bin/python benchmarks/external/make_andi2_linking_fields.py \
        --out /work/ext_data/andi2_fields

For each model (single_state, multi_state, immobile_traps, dimerization, confinement), each
number of particles ``--n`` and each seed (``seed_andi(seed)``, andi_seed.py: numpy's and
``stochastic``'s generators), all ``N`` particles of one call of ``models_phenom()`` share one
box of ``L`` px (so they crowd and, for dimerization, interact), ``T`` frames. Parameters are
in AnDi units (px, frames): the free state's D is ``--d-fast`` px²/frame, the slow state's is
10 × smaller. Saved as ``<model>_n<N>_s<seed>.csv`` with columns ``frame``, ``track_id``,
``x [px]``, ``y [px]`` (andi's first coordinate is x), ``alpha``, ``D [px^2/frame]``,
``state`` (andi's labels per step) and a ``fields.json`` with versions and parameters. Pixel
size and frame time are the benchmark's choice (no physical units here).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from andi_seed import seed_andi  # sibling module: numpy's and stochastic's generators


def simulate(model: str, N: int, T: int, L: float, d_fast: float):
    from andi_datasets.models_phenom import models_phenom

    m = models_phenom()
    two = dict(Ds=[[d_fast, 0.0], [d_fast / 10, 0.0]], alphas=[[1.0, 0.0], [1.0, 0.0]])
    if model == "single_state":
        return m.single_state(N=N, T=T, L=L, Ds=[d_fast, 0.0], alphas=[1.0, 0.0])
    if model == "multi_state":
        return m.multi_state(N=N, T=T, L=L, M=[[0.95, 0.05], [0.05, 0.95]], **two)
    if model == "immobile_traps":
        return m.immobile_traps(N=N, T=T, L=L, r=1.0, Pu=0.1, Pb=0.5, Ds=[d_fast, 0.0],
                                alphas=[1.0, 0.0], Nt=int(N // 2))
    if model == "dimerization":
        return m.dimerization(N=N, T=T, L=L, r=1.0, Pu=0.1, Pb=0.5, **two)
    if model == "confinement":
        return m.confinement(N=N, T=T, L=L, r=8.0, Nc=int(N // 4), trans=0.1, **two)
    raise ValueError(model)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", nargs="+", default=["single_state", "multi_state",
                                                    "immobile_traps", "dimerization",
                                                    "confinement"])
    ap.add_argument("--n", type=int, nargs="+", default=[100, 300],
                    help="particles per field")
    ap.add_argument("--seeds", type=int, nargs="+", default=[2001, 2002, 2003, 2004, 2005])
    ap.add_argument("--tuning-seed", type=int, default=2999)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--box", type=float, default=128.0, help="box side L, px")
    ap.add_argument("--d-fast", type=float, default=2.0, help="free D, px²/frame")
    args = ap.parse_args()
    import andi_datasets

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for model in args.models:
        for n in args.n:
            for seed in [args.tuning_seed, *args.seeds]:
                name = f"{model}_n{n}_s{seed}.csv"
                rec = {"file": name, "model": model, "n": n, "seed": seed,
                       "tuning": seed == args.tuning_seed}
                if (out / name).exists():      # resumable: keep fields already written
                    files.append(rec)
                    continue
                t0 = time.time()
                seed_andi(seed)
                pos, lab = simulate(model, n, args.frames, args.box, args.d_fast)
                T, N = pos.shape[:2]
                frame = np.repeat(np.arange(T), N)
                tid = np.tile(np.arange(N), T)
                rows = np.column_stack([frame, tid, pos.reshape(-1, 2),
                                        lab.reshape(T * N, -1)[:, :3]])
                header = "frame,track_id,x [px],y [px],alpha,D [px^2/frame],state"
                np.savetxt(out / name, rows, delimiter=",", header=header, comments="",
                           fmt=["%d", "%d", "%.4f", "%.4f", "%.4g", "%.4g", "%d"])
                files.append({**rec, "seconds": round(time.time() - t0, 2)})
                print(name, files[-1]["seconds"], "s", flush=True)
    meta = {"generator": "andi_datasets.models_phenom.models_phenom",
            "versions": {"andi-datasets": andi_datasets.__version__,
                         "numpy": np.__version__},
            "frames": args.frames, "box_px": args.box, "d_fast_px2_per_frame": args.d_fast,
            "parameters": "see simulate() in benchmarks/external/make_andi2_linking_fields.py",
            "files": files}
    (out / "fields.json").write_text(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
