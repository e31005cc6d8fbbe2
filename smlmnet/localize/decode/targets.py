"""Simulated truth → DECODE training targets.

Training windows come from :class:`smlmnet.models.datasets.SimulatedMovieDataset` (the shared
on-the-fly simulator, optionally domain-randomized); the network predicts the middle frame of
each window, so its targets are the middle frame's emitters and the expected background.
"""

from __future__ import annotations

import torch


def middle_frame_targets(batch: dict, n_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, M, 3)`` x, y (continuous px, centre of pixel 0 at 0.5) and photons (input
    units) of the middle frame's emitters, and their ``(B, M)`` mask."""
    em, mask = batch["emitters"], batch["emitter_mask"]
    mid = mask & (em[..., 0] == (n_frames // 2))
    return em[..., 1:4], mid
