"""Background illumination patterns (photons per pixel per frame)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from smlmnet.simulate.config import BackgroundConfig
from smlmnet.simulate.params import sample_param


def background_image(rng: np.random.Generator, cfg: BackgroundConfig,
                     shape_hw: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` expected background photons per pixel, mean ``photons_per_px``.

    ``uniform``: constant. ``gradient``: linear ramp along x from (1 − v) to (1 + v) × mean.
    ``blobs``: smooth random field (Gaussian-filtered noise, correlation length ~H/6) scaled so
    that its peak-to-mean excess is ``variation`` × mean; never negative.
    """
    h, w = shape_hw
    b = cfg.photons_per_px
    if not isinstance(b, (int, float)):
        b = float(sample_param(b, rng, 1)[0])
    if cfg.pattern == "uniform" or cfg.variation == 0:
        return np.full((h, w), float(b))
    if cfg.pattern == "gradient":
        ramp = np.linspace(-1.0, 1.0, w) if w > 1 else np.zeros(1)
        return np.broadcast_to(b * (1 + cfg.variation * ramp)[None, :], (h, w)).copy()
    field = gaussian_filter(rng.standard_normal((h, w)), sigma=max(h, w) / 6, mode="wrap")
    field -= field.min()
    peak = field.max()
    field = field / peak if peak > 0 else field
    field = 1 + cfg.variation * field
    return b * field / field.mean()
