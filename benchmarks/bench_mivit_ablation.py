"""Why each MiViT design choice helps: the same CPU recipe, budget and seed for every variant.

Variants (``train.py experiment=pixel_diffusion_mivit`` plus one override each):

- ``full``: factorized space–time attention with the localization features and the blur
  moments (the shipped design);
- ``no_blur_moments``: ``model.net.blur_moments=false``: without each frame's windowed spot
  width and elongation (the design before session 15; ``results/mivit_ablation/`` predates the
  blur moments, so its ``full`` is this variant; their GPU A/B:
  ``results/mivit_blur_moments/``);
- ``pixels_only``: ``model.net.use_features=false``: the network sees the pixels but not the
  localization offsets and displacements;
- ``joint``: ``model.net.attention=joint``: one attention over all space–time tokens instead
  of space, then time;
- ``single_frame``: ``experiment=pixel_diffusion_single_frame``: one blurred spot at a time,
  frames pooled by inverse variance (no temporal attention, no displacements);
- ``feature_dropout``: ``model.net.feature_dropout=0.3``: the shipped design, with the
  localization features hidden from 30 % of the training tubelets (modality dropout), so
  that the pixel pathway learns to read the blur on its own.

Each is trained for ``--steps`` optimizer steps (same data stream and seed), then all are
scored by ``evaluate.py benchmark=pixel_diffusion`` side by side on the same molecules, with
the track-based estimators and the CRLB of that benchmark:

    python benchmarks/bench_mivit_ablation.py --steps 600

Writes ``results/mivit_ablation/`` (the pixel_diffusion table of the variants, plus
``training.csv``: wall time and test RMSE of ln D of every variant's export).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "full": ["experiment=pixel_diffusion_mivit"],
    "no_blur_moments": ["experiment=pixel_diffusion_mivit", "model.net.blur_moments=false"],
    "pixels_only": ["experiment=pixel_diffusion_mivit", "model.net.use_features=false"],
    "joint": ["experiment=pixel_diffusion_mivit", "model.net.attention=joint"],
    "single_frame": ["experiment=pixel_diffusion_single_frame"],
    "feature_dropout": ["experiment=pixel_diffusion_mivit", "model.net.feature_dropout=0.3"],
}


def train_variant(name: str, overrides: list[str], steps: int, work: Path,
                  reuse: bool = False) -> dict:
    """Train one variant for ``steps`` steps and export it to ``work/name`` (``reuse``: keep
    a folder that a previous run of this script trained for the same steps)."""
    folder = work / name
    record = work / f"{name}.training.json"
    if reuse and record.is_file():
        row = json.loads(record.read_text())
        if row.get("steps") == steps and row.get("overrides") == (" ".join(overrides[1:])
                                                                    or "–"):
            return row
    cmd = [sys.executable, str(ROOT / "train.py"), *overrides, f"trainer.max_steps={steps}",
           "trainer.max_epochs=-1", f"export_pretrained={folder}",
           f"hydra.run.dir={work / (name + '_run')}", "trainer.enable_progress_bar=false",
           f"model_name=ablation_{name}"]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    info = yaml.safe_load((folder / "model.yaml").read_text())
    test = info.get("validation") or {}
    row = {"variant": name, "overrides": " ".join(overrides[1:]) or "–",
           "steps": info.get("global_steps"), "train minutes": (time.perf_counter() - t0) / 60,
           **{f"test {k}": v for k, v in test.items() if isinstance(v, (int, float))},
           "folder": str(folder)}
    record.write_text(json.dumps(row, indent=1))
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mivit_ablation"))
    p.add_argument("--work", default=None, help="where the variants' model folders go")
    p.add_argument("--reuse", action="store_true",
                   help="keep variants that --work already holds for the same --steps")
    p.add_argument("benchmark_overrides", nargs="*",
                   help="extra evaluate.py overrides, e.g. benchmark.seeds=[2001,2002]")
    args = p.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="smlmnet_ablation_"))
    work.mkdir(parents=True, exist_ok=True)
    rows = [train_variant(v, VARIANTS[v], args.steps, work, args.reuse) for v in args.variants]
    models = ",".join(f"{r['variant']}:'{r['folder']}'" for r in rows)
    cmd = [sys.executable, str(ROOT / "evaluate.py"), "benchmark=pixel_diffusion",
           "~benchmark.models", f"+benchmark.models={{{models}}}",
           "benchmark.trajectory_model=null",
           f"hydra.run.dir={args.out}", *args.benchmark_overrides]
    subprocess.run(cmd, cwd=ROOT, check=True)
    pd.DataFrame(rows).to_csv(Path(args.out) / "training.csv", index=False)
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
