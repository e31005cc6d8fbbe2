"""Benchmark runners behind ``evaluate.py`` (one per ``configs/benchmark`` kind)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig


def run_benchmark(cfg: DictConfig, out_dir: str | Path):
    """Run ``cfg.benchmark`` (its ``kind`` picks the runner) and write its report."""
    from smlmnet.evaluation import (
        andi1,
        andi2,
        andi2_video,
        diffusion,
        generalist,
        linking,
        linking_external,
        localization,
        pixel_anomalous,
        pixel_anomalous_external,
        pixel_diffusion,
        pixel_diffusion_external,
        transfer,
    )

    runners = {"localization_crlb": localization.run_crlb,
               "localization": localization.run_movie,
               "decode": localization.run_decode,
               "linking": linking.run,
               "linking_external": linking_external.run,
               "diffusion_epsilon": diffusion.run_epsilon,
               "andi_alpha": diffusion.run_andi_alpha,
               "andi1": andi1.run,
               "andi2_trajectory": andi2.run,
               "andi2_video": andi2_video.run,
               "transfer": transfer.run,
               "generalist": generalist.run,
               "pixel_diffusion": pixel_diffusion.run,
               "pixel_anomalous": pixel_anomalous.run,
               "pixel_anomalous_external": pixel_anomalous_external.run,
               "pixel_diffusion_external": pixel_diffusion_external.run}
    kind = cfg.benchmark.kind
    if kind not in runners:
        raise ValueError(f"unknown benchmark kind {kind!r}; choose from {sorted(runners)}")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    bench = cfg.benchmark
    if cfg.get("ckpt_path"):
        from omegaconf import open_dict

        with open_dict(bench):
            bench.ckpt_path = cfg.ckpt_path
    return runners[kind](bench, out_dir)
