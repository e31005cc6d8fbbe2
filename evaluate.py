"""Run a benchmark: ``python evaluate.py benchmark=<name> [benchmark.key=value ...]``.

Benchmarks (configs/benchmark/): localization_crlb, localization, decode, linking, diffusion,
andi_alpha, andi1, andi2_trajectory, andi2_video. Each runs several methods side by side on the
same seeded data and writes a markdown table, a CSV, a JSON record (command, commit, versions,
machine, resolved config) and plots to the run folder; the markdown reports are printed at the end.
"""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from smlmnet.evaluation import run_benchmark


@hydra.main(version_base=None, config_path="configs", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    run_benchmark(cfg, out_dir)
    for md in sorted(out_dir.glob("*.md")):
        print(md.read_text())


if __name__ == "__main__":
    main()
