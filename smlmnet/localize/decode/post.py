"""From DECODE probability maps to an emitter list.

Candidates are local maxima of p (3×3); each gets the probability mass of its pixel and its
4 neighbours, and is kept when that mass exceeds ``threshold``. A pixel that is not a local
maximum but has p > ``second_threshold`` is kept too (two emitters in adjacent pixels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CROSS = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])


def detect_emitters(out: dict[str, torch.Tensor], threshold: float = 0.6,
                    second_threshold: float = 0.6, min_p: float = 0.1
                    ) -> dict[str, torch.Tensor]:
    """Detections in maps ``(B, H, W)``.

    Returns a dict of 1D tensors: ``batch``, ``x``, ``y`` (continuous px), ``photons``,
    ``sigma_x``, ``sigma_y`` (px), ``sigma_photons``, ``p`` (integrated probability),
    ``background``.
    """
    p = out["p"]
    p4 = p[:, None]
    local_max = (p4 == F.max_pool2d(p4, 3, stride=1, padding=1))[:, 0] & (p > min_p)
    mass = F.conv2d(p4, CROSS.to(p)[None, None], padding=1)[:, 0]
    keep = (local_max & (mass > threshold)) | (~local_max & (p > second_threshold))
    b, i, j = torch.nonzero(keep, as_tuple=True)
    score = torch.where(local_max[b, i, j], mass[b, i, j], p[b, i, j]).clamp(max=1.0)
    return {"batch": b, "x": j.to(p.dtype) + 0.5 + out["dx"][b, i, j],
            "y": i.to(p.dtype) + 0.5 + out["dy"][b, i, j], "photons": out["photons"][b, i, j],
            "sigma_x": out["sigma_x"][b, i, j], "sigma_y": out["sigma_y"][b, i, j],
            "sigma_photons": out["sigma_photons"][b, i, j], "p": score,
            "background": out["background"][b, i, j]}
