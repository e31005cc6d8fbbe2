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


def confidence_scales(p, z, n_bins: int = 6) -> dict[str, list[float]]:
    """Uncertainty scale as a function of the detection probability ``p``.

    A network's predicted σ is least trustworthy where it is least sure a spot is there
    (overlaps, dim or blurred spots): normalized errors ``z`` (error / σ̂, per axis) widen as
    ``p`` falls. ``p`` is cut into ``n_bins`` quantile bins of the matched detections; each
    bin's robust scale 1.4826·median|z| (the σ of z's Gaussian core) is made non-increasing in
    ``p`` (pool-adjacent-violators, weighted by bin size) so the table cannot encode noise.

    Args:
        p: (n,) detection probabilities of matched detections. z: (n,) or (n, 2) errors / σ̂.
    Returns:
        ``{"p": bin medians (increasing), "scale": scales}`` for :func:`uncertainty_scale_at`;
        None when no bin has 10 detections (the single scale is then used).
    """
    import numpy as np

    p = np.asarray(p, float)
    if len(p) < 10:
        return None
    z = np.abs(np.asarray(z, float)).reshape(len(p), -1)
    edges = np.quantile(p, np.linspace(0, 1, n_bins + 1))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    centers, scales, weights = [], [], []
    for b in range(n_bins):
        sel = which == b
        if sel.sum() < 10:
            continue
        centers.append(float(np.median(p[sel])))
        scales.append(float(1.4826 * np.median(z[sel])))
        weights.append(float(sel.sum()))
    # pool adjacent violators: non-increasing scale with increasing p
    blocks = [[s, w, 1] for s, w in zip(scales, weights)]
    i = 0
    while i < len(blocks) - 1:
        if blocks[i][0] < blocks[i + 1][0]:
            s0, w0, n0 = blocks[i]
            s1, w1, n1 = blocks.pop(i + 1)
            blocks[i] = [(s0 * w0 + s1 * w1) / (w0 + w1), w0 + w1, n0 + n1]
            i = max(i - 1, 0)
        else:
            i += 1
    if not centers:
        return None
    monotone = [s for s, _, n in blocks for _ in range(n)]
    return {"p": centers, "scale": [round(s, 4) for s in monotone]}


def uncertainty_scale_at(p, scale: float = 1.0, by_p: dict | None = None):
    """The factor that multiplies predicted σ at detection probability ``p`` (array):
    ``by_p``'s table (:func:`confidence_scales`, linear between bin medians, constant beyond)
    when the model has one, else the single ``scale``."""
    import numpy as np

    p = np.asarray(p, float)
    if not by_p or not by_p.get("p"):
        return np.full(p.shape, float(scale))
    return np.interp(p, by_p["p"], by_p["scale"])
