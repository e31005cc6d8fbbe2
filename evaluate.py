"""Run a benchmark: ``python evaluate.py benchmark=<name> [benchmark.key=value ...]``.

Benchmarks (configs/benchmark/): localization_crlb, localization, linking, diffusion,
andi_alpha. Each runs several methods side by side on the same seeded data and writes a
markdown table, a CSV (and plots) with the command that reproduces them to the run folder.
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from smlmnet.evaluation import run_benchmark


@hydra.main(version_base=None, config_path="configs", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    run_benchmark(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
