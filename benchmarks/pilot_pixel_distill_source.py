"""Pilot: distil the blur-likelihood teacher into the shipped MiViT on its own training ranges.

    python benchmarks/pilot_pixel_distill_source.py STEPS LR W   # e.g. 1200 2e-4 1.0

Fine-tunes ``mivit_pixel_diffusion`` for STEPS AdamW steps (batch 64, lr LR) with the
supervised loss on simulated source batches + W × the posterior-distillation loss against the
blur likelihood (:func:`smlmnet.diffusion.mivit.adapt.adapt_unlabeled`, teacher prior: the
training range of D), then prints the RMSE of ln D of teacher, shipped and tuned network at
D 1 / 5 / 0.1 µm²/s with blur (exposure/frame 0.5 and 1; 8 and 16 frames; 384 tubelets
each, the pixel_diffusion benchmark's microscope). One seed, one run: a pilot, not a table.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from smlmnet.diffusion.mivit.adapt import (
    adapt_unlabeled,
    source_ranges,
    teacher_for,
    teacher_posterior,
)
from smlmnet.diffusion.mivit.lightning import net_forward
from smlmnet.diffusion.mivit.targets import TubeletSimulator, to_network_batch
from smlmnet.diffusion.tubelets import tubelet_features
from smlmnet.models.registry import load

MICROSCOPE = dict(frame_time_s=0.02, pixel_size_nm=100.0, psf_sigma_px=1.3, photons=1000.0,
                  background_photons_per_px=20.0, camera="scmos", halo_fraction=0.0)


@torch.no_grad()
def predict(net, sample) -> np.ndarray:
    net.eval()
    return net_forward(net, to_network_batch(sample))["log_d"].numpy()


def main(steps: int, lr: float, w: float) -> None:
    torch.set_num_threads(1)
    est = load("mivit_pixel_diffusion")
    ranges = est.info["training_ranges"]
    src = TubeletSimulator(frames=16, **source_ranges(ranges))
    teacher = teacher_for(ranges, substeps=src.substeps, frames=16)

    def draw(rng, n):
        x = src.sample(rng, n)
        return (x, *teacher_posterior(teacher, x))

    t0 = time.time()
    net, hist = adapt_unlabeled(est.net, src, draw, steps, 64, lr, 0, "all", w)
    print("train s", time.time() - t0, hist[0], hist[-1], flush=True)
    ev = TubeletSimulator(frames=16, min_length=16, **source_ranges(ranges))
    for D in (1.0, 5.0, 0.1):
        for f in (0.5, 1.0):
            for L in (8, 16):
                s = ev.sample(np.random.default_rng(int(D * 100 + f * 10 + L)), 384,
                              D_um2_s=D, exposure_fraction=f, alpha=1.0, **MICROSCOPE)
                if L < 16:
                    s["mask"][:, L:] = False
                    s["features"] = tubelet_features(s["loc_px"], s["mask"])[0]
                y = s["log_d"]

                def rmse(p, y=y):
                    return float(np.sqrt(np.mean((p - y) ** 2)))

                print(f"D{D} f{f} L{L}: teacher {rmse(teacher.predict_tubelets(s)['log_d']):.3f}"
                      f" zero {rmse(predict(est.net, s)):.3f} tuned {rmse(predict(net, s)):.3f}",
                      flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]))
