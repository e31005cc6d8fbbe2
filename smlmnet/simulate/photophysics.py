"""Emitter photophysics at frame resolution: activation, bleaching, blinking, photon counts."""

from __future__ import annotations

import numpy as np

from smlmnet.simulate.config import PhotophysicsConfig
from smlmnet.simulate.params import sample_param


def alive_mask(rng: np.random.Generator, cfg: PhotophysicsConfig, n: int,
               n_frames: int) -> np.ndarray:
    """``(n, n_frames)`` bool: activated and not yet bleached.

    Activation at frame 0 (``start``) or at a uniformly random frame (``uniform``); the
    emitter then bleaches after an exponential lifetime of mean ``bleach_lifetime_frames``.
    """
    if cfg.activation == "uniform":
        start = rng.integers(0, n_frames, size=n)
    else:
        start = np.zeros(n, dtype=np.int64)
    if cfg.bleach_lifetime_frames is None:
        lifetime = np.full(n, np.inf)
    else:
        lifetime = rng.exponential(cfg.bleach_lifetime_frames, size=n)
    age = np.arange(n_frames)[None, :] - start[:, None]
    return (age >= 0) & (age < lifetime[:, None])


def blinking_mask(rng: np.random.Generator, cfg: PhotophysicsConfig, n: int,
                  n_frames: int) -> np.ndarray:
    """``(n, n_frames)`` bool on-states of a two-state Markov chain (exponential on/off
    times of means ``blink_on_frames``/``blink_off_frames``), started in equilibrium."""
    if cfg.blink_on_frames is None:
        return np.ones((n, n_frames), dtype=bool)
    p_off = 1.0 - np.exp(-1.0 / cfg.blink_on_frames)  # on -> off per frame
    p_on = 1.0 - np.exp(-1.0 / cfg.blink_off_frames)  # off -> on per frame
    on = np.empty((n, n_frames), dtype=bool)
    on[:, 0] = rng.random(n) < p_on / (p_on + p_off)
    u = rng.random((n, n_frames))
    for f in range(1, n_frames):
        on[:, f] = np.where(on[:, f - 1], u[:, f] >= p_off, u[:, f] < p_on)
    return on


def photon_counts(rng: np.random.Generator, cfg: PhotophysicsConfig, n: int,
                  n_frames: int) -> np.ndarray:
    """``(n, n_frames)`` expected photons per frame of an emitter that is on.

    Brightness per emitter from ``photons_per_frame``; frame-to-frame gamma fluctuation of
    coefficient of variation ``photons_frame_cv`` (mean preserved).
    """
    mean = sample_param(cfg.photons_per_frame, rng, n)[:, None]
    if cfg.photons_frame_cv <= 0:
        return np.repeat(mean, n_frames, axis=1)
    shape = 1.0 / cfg.photons_frame_cv**2
    return mean * rng.gamma(shape, 1.0 / shape, size=(n, n_frames))
