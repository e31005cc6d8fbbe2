"""Tune the transformer linker's decoding threshold and gap closing on TUNING data only.

Data: the linking benchmark's grid at its tuning seed (``grid.tuning_seed``, 1000) and
andi-datasets' AnDi 2 fields of seed 2999 (benchmarks/external/make_andi2_linking_fields.py),
observed as ``benchmark=linking_external`` observes them. Each value is the variant's PTC α
minus the LAP's best α over the benchmark's search grid on the same table. The benchmarks
report other seeds (1–5 and 2001–2005). Writes
``benchmarks/results/linker_tuning/tune_linker_gap_closing.csv``.

    python benchmarks/tune_linker_gap_closing.py     # ~4 min on 2 CPU cores
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

#: label → TransformerLinker overrides
VARIANTS = {
    "v2 (0.2, G, .03)": dict(threshold=0.2, close_gaps_min_gap=None, close_gaps_crowding=0.03),
    "0.2 mg0 .3": dict(threshold=0.2, close_gaps_min_gap=0, close_gaps_crowding=0.3),
    "0.2 mg0 .1": dict(threshold=0.2, close_gaps_min_gap=0, close_gaps_crowding=0.1),
    "0.1 mg0 .3": dict(threshold=0.1, close_gaps_min_gap=0, close_gaps_crowding=0.3),
    "0.1 G .03": dict(threshold=0.1, close_gaps_min_gap=None, close_gaps_crowding=0.03),
    "0.15 mg0 .1": dict(threshold=0.15, close_gaps_min_gap=0, close_gaps_crowding=0.1),
    "0.3 mg0 .3": dict(threshold=0.3, close_gaps_min_gap=0, close_gaps_crowding=0.3),
}


def main() -> int:
    import torch
    from omegaconf import OmegaConf

    from smlmnet.data import contracts as C
    from smlmnet.evaluation.linking import grid_table, mean_state_D
    from smlmnet.evaluation.linking_external import observe_field, read_field
    from smlmnet.link import LAPLinker
    from smlmnet.metrics.tracking import tracking_metrics
    from smlmnet.models import registry

    torch.set_num_threads(1)
    g = OmegaConf.load("configs/benchmark/linking.yaml").grid
    ext = OmegaConf.load("configs/benchmark/linking_external.yaml")
    linkers = {k: registry.load("linker_transformer", **v) for k, v in VARIANTS.items()}
    gate = OmegaConf.load("configs/benchmark/linking.yaml").gate_px * float(g.pixel_size_nm)

    def split(tab):
        drop = [c for c in (C.TRACK_ID, "state") if c in tab]
        return tab[tab[C.TRACK_ID] >= 0], tab.drop(columns=drop)

    def alpha(truth, est):
        return tracking_metrics(truth, est, gate)["alpha"]

    rows = []

    def score(name, tab, radii, gaps):
        truth, locs = split(tab)
        lap = max(alpha(truth, LAPLinker(float(r), int(gp)).link(locs))
                  for r in radii for gp in gaps)
        row = {"case": name, "LAP": lap}
        for label, linker in linkers.items():
            row[label] = alpha(truth, linker.link(locs.copy())) - lap
        rows.append(row)
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()},
              flush=True)

    cells = [(float(rho), float(D), "brownian") for rho in g.densities for D in g.D_um2_s]
    for motion, rhos in (g.get("extra_cells") or {}).items():
        D_eff = mean_state_D(OmegaConf.to_container(g.motions[motion], resolve=True))
        cells += [(float(rho), D_eff, motion) for rho in rhos]
    for rho, D, motion in cells:
        score(f"grid {motion} {rho} {D:.2f}", grid_table(g, rho, D, int(g.tuning_seed), motion),
              g.search_radius_nm, g.max_gap)
    for model in ("single_state", "multi_state", "immobile_traps", "dimerization",
                  "confinement"):
        for n in (100, 300):
            truth = read_field(Path(ext.fields_root) / f"{model}_n{n}_s2999.csv",
                               float(ext.observation.pixel_size_nm))
            score(f"andi {model} {n}", observe_field(truth, ext.observation, 2999),
                  ext.lap_search_radius_nm, ext.lap_max_gap)
    table = pd.DataFrame(rows)
    out = Path("benchmarks/results/linker_tuning")
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "tune_linker_gap_closing.csv", index=False)
    d = table.drop(columns=["case", "LAP"])
    for part in ("grid", "andi"):
        sel = table["case"].str.startswith(part)
        print(f"mean Δα vs LAP, {part}:", d[sel].mean().round(4).to_dict())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
