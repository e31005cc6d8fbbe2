"""Emitter photophysics at frame resolution: activation, bleaching, blinking, photon counts."""

from __future__ import annotations

import numpy as np

from smlmnet.simulate.config import PhotophysicsConfig
from smlmnet.simulate.params import sample_param
from smlmnet.simulate.streams import RowReplay


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


class PhotophysicsStream:
    """:func:`alive_mask`, :func:`blinking_mask` and :func:`photon_counts` frame chunk by frame
    chunk, with the same random numbers (the per-frame uniforms and gamma fluctuations are
    replayed from saved generator states, see :mod:`smlmnet.simulate.streams`).

    :meth:`chunk` returns ``(alive, on, photons)`` of chunk ``c`` exactly as the whole-movie
    ``alive``, ``blinking & alive`` and ``photon_counts * on``; call it in order 0, 1, ...
    """

    def __init__(self, rng: np.random.Generator, cfg: PhotophysicsConfig, n: int,
                 frame_bounds: list[int]):
        self.cfg, self.n, self.fb = cfg, n, [int(f) for f in frame_bounds]
        n_frames = self.fb[-1]
        # alive_mask
        if cfg.activation == "uniform":
            self.start = rng.integers(0, n_frames, size=n)
        else:
            self.start = np.zeros(n, dtype=np.int64)
        if cfg.bleach_lifetime_frames is None:
            self.lifetime = np.full(n, np.inf)
        else:
            self.lifetime = rng.exponential(cfg.bleach_lifetime_frames, size=n)
        # blinking_mask
        self.u = None
        if cfg.blink_on_frames is not None:
            self.p_off = 1.0 - np.exp(-1.0 / cfg.blink_on_frames)
            self.p_on = 1.0 - np.exp(-1.0 / cfg.blink_off_frames)
            self.on0 = rng.random(n) < self.p_on / (self.p_on + self.p_off)
            self.u = RowReplay(rng, n, self.fb, lambda r, shape: r.random(shape))
            self.prev_on = None
        # photon_counts
        self.mean = sample_param(cfg.photons_per_frame, rng, n)[:, None]
        self.gamma = None
        if cfg.photons_frame_cv > 0:
            shape = 1.0 / cfg.photons_frame_cv**2
            self.gamma = RowReplay(rng, n, self.fb,
                                   lambda r, size: r.gamma(shape, 1.0 / shape, size=size))
        self.next_chunk = 0

    def chunk(self, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if c != self.next_chunk:
            raise RuntimeError(f"chunks must be generated in order: expected {self.next_chunk}")
        self.next_chunk += 1
        f0, f1 = self.fb[c], self.fb[c + 1]
        n, k = self.n, f1 - f0
        age = np.arange(f0, f1)[None, :] - self.start[:, None]
        alive = (age >= 0) & (age < self.lifetime[:, None])
        if self.u is None:
            on = np.ones((n, k), dtype=bool)
        else:
            u = self.u.get(c)
            on = np.empty((n, k), dtype=bool)
            prev = self.prev_on
            for f in range(k):
                if prev is None:
                    on[:, f] = self.on0
                else:
                    on[:, f] = np.where(prev, u[:, f] >= self.p_off, u[:, f] < self.p_on)
                prev = on[:, f]
            self.prev_on = on[:, -1].copy()
        on &= alive
        if self.gamma is None:
            photons = np.repeat(self.mean, k, axis=1)
        else:
            photons = self.mean * self.gamma.get(c)
        return alive, on, photons * on
