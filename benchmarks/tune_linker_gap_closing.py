"""Tune the transformer linker's decoding threshold and gap closing on TUNING data only, and
compare linker model folders on the same tables.

Data: the linking benchmark's grid at its tuning seed (``grid.tuning_seed``, 1000) and
andi-datasets' AnDi 2 fields of seed 2999 (benchmarks/external/make_andi2_linking_fields.py),
observed as ``benchmark=linking_external`` observes them. Each value is a setting's PTC α
minus the LAP's best α over the benchmark's search grid on the same table. The network runs
once per model and table; every (threshold, gap-closing crowding, shortest closed gap)
setting decodes those edges (gap closing as in the model folder otherwise). The benchmarks
report other seeds (1–5 and 2001–2005). Writes ``benchmarks/results/linker_tuning/``
``tune_linker_gap_closing.csv`` (one row per table × model × setting) and its summary (mean
and worst Δα per part: grid, andi).

    python benchmarks/tune_linker_gap_closing.py                     # ~4 min on 2 CPU cores
    python benchmarks/tune_linker_gap_closing.py --models linker_transformer my_linker
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def main(argv=None) -> int:
    import numpy as np
    import torch
    from omegaconf import OmegaConf

    from smlmnet.data import contracts as C
    from smlmnet.evaluation.linking import grid_table, mean_state_D
    from smlmnet.evaluation.linking_external import observe_field, read_field
    from smlmnet.link import LAPLinker
    from smlmnet.link.transformer.infer import (
        BIRTH_SHARE_MIN_P,
        adaptive_decoding_threshold,
        birth_share,
    )
    from smlmnet.metrics.tracking import tracking_metrics
    from smlmnet.models import registry

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["linker_transformer"],
                   help="shipped names or model folders")
    p.add_argument("--thresholds", nargs="+", type=float,
                   default=[0.02, 0.05, 0.1, 0.2, 0.3, 0.4])
    p.add_argument("--crowding", nargs="+", type=float, default=[0.1, 0.3, 1.0])
    p.add_argument("--min-gap", nargs="+", default=["0"],
                   help="gap closing's shortest gap: frames, or G (the network's max gap)")
    p.add_argument("--adaptive", nargs="*", type=float, default=[],
                   help="also decode with the adaptive threshold clip(k · birth share, lowest "
                        "--thresholds, highest) for each k given")
    p.add_argument("--adaptive-power", nargs="+", type=float, default=[1.0],
                   help="powers q of the adaptive rule clip(k · share^q, ...), each with every "
                        "k of --adaptive")
    p.add_argument("--out", default="benchmarks/results/linker_tuning")
    args = p.parse_args(argv)

    torch.set_num_threads(1)
    g = OmegaConf.load("configs/benchmark/linking.yaml").grid
    ext = OmegaConf.load("configs/benchmark/linking_external.yaml")
    linkers = {m: registry.load(m) for m in args.models}
    gate = OmegaConf.load("configs/benchmark/linking.yaml").gate_px * float(g.pixel_size_nm)

    def alpha(truth, labels, locs):
        est = locs.copy()
        est[C.TRACK_ID] = labels
        return tracking_metrics(truth, est, gate)["alpha"]

    rows = []

    def score(part, name, tab, radii, gaps):
        truth = tab[tab[C.TRACK_ID] >= 0]
        locs = tab.drop(columns=[c for c in (C.TRACK_ID, "state") if c in tab])
        locs = locs.reset_index(drop=True)
        lap = max(tracking_metrics(truth, LAPLinker(float(r), int(gp)).link(locs), gate)["alpha"]
                  for r in radii for gp in gaps)
        fr = locs[C.FRAME].to_numpy(np.int64)
        xy = locs[[C.X_NM, C.Y_NM]].to_numpy(float)
        for model, linker in linkers.items():
            edges = linker.edge_probabilities(
                locs, keep_above=min(min(args.thresholds) / 2, BIRTH_SHARE_MIN_P))
            shipped = linker.close_gaps_crowding, linker.close_gaps_min_gap
            births = birth_share(fr, edges, linker.net.max_gap)
            settings = [(th, th) for th in args.thresholds] + [
                (f"auto {k:g}" + (f" ^{q:g}" if q != 1 else ""),
                 adaptive_decoding_threshold(births, k, min(args.thresholds),
                                             max(args.thresholds), q))
                for q in args.adaptive_power for k in args.adaptive]
            for label, th in settings:
                labels = linker.tracks_from_edges(len(locs), edges, threshold=th)
                for lam in args.crowding:
                    for mg in args.min_gap:
                        linker.close_gaps_crowding = lam
                        linker.close_gaps_min_gap = None if mg == "G" else int(mg)
                        joined = (linker.close_gaps(fr, xy, labels)
                                  if linker.close_gaps_frames > 0 else labels)
                        rows.append({"part": part, "case": name, "LAP": lap, "model": model,
                                     "threshold": label, "used threshold": th,
                                     "birth share": births, "crowding": lam, "min gap": mg,
                                     "Δα vs LAP": alpha(truth, joined, locs) - lap})
            linker.close_gaps_crowding, linker.close_gaps_min_gap = shipped
        print(part, name, f"LAP {lap:.3f}", flush=True)

    cells = [(float(rho), float(D), "brownian") for rho in g.densities for D in g.D_um2_s]
    for motion, rhos in (g.get("extra_cells") or {}).items():
        D_eff = mean_state_D(OmegaConf.to_container(g.motions[motion], resolve=True))
        cells += [(float(rho), D_eff, motion) for rho in rhos]
    for rho, D, motion in cells:
        score("grid", f"{motion} {rho} {D:.2f}",
              grid_table(g, rho, D, int(g.tuning_seed), motion), g.search_radius_nm, g.max_gap)
    for model in ("single_state", "multi_state", "immobile_traps", "dimerization",
                  "confinement"):
        for n in (100, 300):
            truth = read_field(Path(ext.fields_root) / f"{model}_n{n}_s2999.csv",
                               float(ext.observation.pixel_size_nm))
            score("andi", f"{model} {n}", observe_field(truth, ext.observation, 2999),
                  ext.lap_search_radius_nm, ext.lap_max_gap)
    table = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "tune_linker_gap_closing.csv", index=False)
    table["threshold"] = table["threshold"].astype(str)
    summary = (table.groupby(["model", "threshold", "crowding", "min gap", "part"])["Δα vs LAP"]
               .agg(["mean", "min"]).unstack("part").round(4))
    summary.to_csv(out / "tune_linker_gap_closing_summary.csv")
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
