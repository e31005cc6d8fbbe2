"""Tubelets (pixel patches around a tracked molecule) with their truth, simulated on the fly.

A tubelet is ``T`` frames × ``K × K`` pixels cut around the *measured* localization of one
molecule in each frame (Brownian or, with ``anomalous_probability``, fractional Brownian).
Only the patches are rendered (no movie), vectorized over molecules, frames and motion
sub-steps, with the simulator's physics:

- motion: Brownian on ``substeps`` equally spaced sub-steps per frame (or fractional Brownian
  motion with exponent α, exact fGn on the same sub-step grid, :func:`smlmnet.simulate.fbm.
  fgn_2d`, with MSD(τ) = 2·K·τ^α per axis, so that K is the Brownian D at a lag of one frame
  whatever α); the camera integrates the first ``n_exp`` of them (``n_exp = 1``:
  stroboscopic, no blur; ``n_exp = substeps``: continuous exposure, blur coefficient
  R = 1/6), each with an equal share of the frame's photons, through the pixel-integrated
  Gaussian PSF (:func:`smlmnet.simulate.psf.pixel_integrals`, optional wide halo), so the
  blur has its true shape;
- background (uniform photons/px) and camera (ideal, sCMOS, EMCCD: :func:`smlmnet.simulate.
  camera.camera_adu` with :meth:`DomainRandomization._camera`), converted back to photons
  with :func:`smlmnet.data.camera.adu_to_photons`, as the pipeline does;
- localization: the exposure-averaged position plus Gaussian noise of the Mortensen (2010)
  bound (× a factor ≥ 1 for an imperfect localizer); the patch of each frame is centred on
  the pixel that holds the noisy localization, and the sub-pixel offset and the displacement
  of the localizations are given to the network beside the pixels.

Units: the network works in pixels and frames. Its target is ``ln D_px`` with
``D_px = D·Δt/a²`` (px²/frame; for α ≠ 1 the generalized K·Δt^α/a², px²/frame^α) and, for
networks with an α head, α; :func:`log_d_px_to_um2_s` converts back to µm²/s (µm²/s^α). Per
molecule: D log-uniform in ``D_um2_s``, exposure/frame fraction (stroboscopic with
``stroboscopic_probability``, else uniform), frame time, pixel size, PSF σ, photons,
background and camera drawn from :class:`~smlmnet.simulate.randomize.DomainRandomization`'s
ranges, and a track length uniform in ``[min_length, frames]`` (frames past it are masked).

Patches are normalized by :func:`normalize_tubelets` in training and inference alike.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset

from smlmnet.data.camera import adu_to_photons, camera_dict
from smlmnet.diffusion.tubelets import (  # noqa: F401  (re-exported)
    log_d_px_to_um2_s,
    tubelet_features,
)
from smlmnet.localize.fit import mortensen_sigma_px as localization_sigma_px
from smlmnet.models.datasets import _rank_and_world, item_seed, shard_indices
from smlmnet.simulate.camera import camera_adu
from smlmnet.simulate.fbm import fgn_2d
from smlmnet.simulate.movie import substep_blur_coefficient
from smlmnet.simulate.psf import pixel_integrals
from smlmnet.simulate.randomize import DomainRandomization

#: number of per-frame features: localization offset in the patch (x, y) and asinh of the
#: displacement from the previous localization (x, y), in pixels
N_FEATURES = 4
#: number of per-tubelet conditioning scalars: exposure/frame fraction, PSF σ (px),
#: log10 signal photons per frame, log10 background photons per px
N_COND = 4


def normalize_tubelets(patches, mask, eps: float = 1.0):
    """The one normalization of patches in photons (training and inference).

    Args:
        patches: ``(B, T, K, K)`` photons. mask: ``(B, T)`` bool (valid frames).
    Returns:
        ``(x, signal, background)``: ``x`` = (patch − background)/signal × K²/10 with the
        background the median over the tubelet's valid pixels and the signal the mean over
        valid frames of the summed background-subtracted photons (floored at the shot noise
        √(K²(background + ``eps``)) of the summed background); masked
        frames are zero. ``signal`` (photons/frame) and ``background`` (photons/px) ``(B,)``.
    """
    p = torch.as_tensor(patches, dtype=torch.float32)
    m = torch.as_tensor(mask, dtype=torch.bool)
    B, T, K, _ = p.shape
    flat = p.masked_fill(~m[:, :, None, None], float("nan")).reshape(B, -1)
    bg = torch.nanmedian(flat, dim=1).values.nan_to_num(0.0)
    per_frame = (p - bg[:, None, None, None]).sum(dim=(2, 3))
    signal = (per_frame * m).sum(1) / m.sum(1).clamp(min=1)
    # floor: the shot noise of a patch's summed background (keeps dim spots bounded)
    signal = torch.maximum(signal, (K * K * (bg.clamp(min=0) + eps)).sqrt())
    x = (p - bg[:, None, None, None]) / signal[:, None, None, None] * (K * K / 10.0)
    x = x * m[:, :, None, None]
    return x, signal, bg


def conditioning(exposure_fraction, psf_sigma_px, signal, background) -> torch.Tensor:
    """``(B, 4)`` conditioning scalars of a tubelet (see :data:`N_COND`)."""
    cols = [torch.as_tensor(v, dtype=torch.float32).reshape(-1) for v in
            (exposure_fraction, psf_sigma_px)]
    B = max(len(c) for c in cols + [torch.as_tensor(signal).reshape(-1)])
    cols = [c.expand(B) if len(c) == 1 else c for c in cols]
    cols.append(torch.log10(torch.as_tensor(signal, dtype=torch.float32).clamp(min=1.0)))
    cols.append(torch.log10(torch.as_tensor(background, dtype=torch.float32).clamp(min=0) + 1))
    return torch.stack(cols, dim=1)


def render_tubelets(pos_px: np.ndarray, weights: np.ndarray, origin: np.ndarray, size: int,
                    sigma_px: np.ndarray, halo_fraction: np.ndarray | None = None,
                    halo_sigma_px: np.ndarray | None = None) -> np.ndarray:
    """Expected photons of moving emitters in patches.

    Args:
        pos_px: ``(B, T, S, 2)`` sub-step positions (x, y), continuous px.
        weights: ``(B, T, S)`` photons of each sub-step (0 outside the exposure).
        origin: ``(B, T, 2)`` integer centre pixel of each patch. size: K (odd).
        sigma_px: ``(B,)`` PSF σ. halo_fraction, halo_sigma_px: ``(B,)`` optional halo.
    Returns:
        ``(B, T, K, K)`` float64 expected photons (rows y, columns x).
    """
    B, T, S, _ = pos_px.shape
    rel = pos_px - (origin[:, :, None, :] - size // 2)
    out = np.zeros((B, T, size, size))
    parts = [(np.ones(B), sigma_px)]
    if halo_fraction is not None:
        parts = [(1 - halo_fraction, sigma_px), (halo_fraction, halo_sigma_px)]
    for share, sig in parts:
        s = np.repeat(sig, T * S)
        ex = pixel_integrals(rel[..., 0].ravel(), s, size).reshape(B, T, S, size)
        ey = pixel_integrals(rel[..., 1].ravel(), s, size).reshape(B, T, S, size)
        out += np.einsum("btsy,btsx->btyx", ey * (weights * share[:, None, None])[..., None],
                         ex)
    return out


class TubeletSimulator:
    """Draws batches of tubelets with truth (see the module docstring for the physics).

    Args:
        frames: T (frames per tubelet). size: K (odd patch edge, px). substeps: motion
            sub-steps per frame. min_length: shortest track (frames ≥ it are valid).
        D_um2_s: log-uniform range of D. exposure_fraction: uniform range of exposure/frame
            for continuous illumination; ``stroboscopic_probability``: share with one sub-step.
        pixel_size_nm: uniform range. frame_time_s, psf_sigma_px, photons,
            background_photons_per_px, halo and cameras: ``None`` takes the
            :class:`DomainRandomization` ranges (the generalist localizer's).
        localizer_excess: uniform range of the factor on the Mortensen localization error.
        alpha, anomalous_probability: the share of molecules that move by fractional
            Brownian motion, with α uniform in ``alpha``; the others are Brownian (α = 1).
            0 (default): all Brownian, and the random draws are those of a Brownian-only
            simulator (same seeds, same tubelets).
    """

    def __init__(self, frames: int = 16, size: int = 15, substeps: int = 8, min_length: int = 4,
                 D_um2_s=(0.01, 10.0), exposure_fraction=(0.0, 1.0),
                 stroboscopic_probability: float = 0.15, pixel_size_nm=(80.0, 160.0),
                 frame_time_s=None, psf_sigma_px=None, photons=None,
                 background_photons_per_px=None, halo_probability: float | None = None,
                 cameras: dict | None = None, localizer_excess=(1.0, 1.5),
                 alpha=(1.0, 1.0), anomalous_probability: float = 0.0) -> None:
        dr = DomainRandomization()
        if size % 2 != 1:
            raise ValueError(f"patch size must be odd; got {size}")
        if not 1 <= min_length <= frames:
            raise ValueError(f"need 1 <= min_length <= frames; got {min_length}, {frames}")
        self.frames, self.size, self.substeps = int(frames), int(size), int(substeps)
        self.min_length = int(min_length)
        tup = lambda v, d: tuple(float(x) for x in (d if v is None else v))  # noqa: E731
        self.D_um2_s = tup(D_um2_s, None)
        self.exposure_fraction = tup(exposure_fraction, None)
        self.stroboscopic_probability = float(stroboscopic_probability)
        self.pixel_size_nm = tup(pixel_size_nm, None)
        self.frame_time_s = tup(frame_time_s, dr.frame_time_s)
        self.psf_sigma_px = tup(psf_sigma_px, dr.psf_sigma_px)
        self.photons = tup(photons, dr.photons)
        self.background_photons_per_px = tup(background_photons_per_px,
                                             dr.background_photons_per_px)
        self.halo_probability = float(dr.halo_probability if halo_probability is None
                                      else halo_probability)
        self.cameras = dict(dr.cameras if cameras is None else cameras)
        self.localizer_excess = tup(localizer_excess, None)
        self.alpha = tup(alpha, None)
        self.anomalous_probability = float(anomalous_probability)
        if not (0 < self.alpha[0] <= self.alpha[1] < 2):
            raise ValueError(f"alpha range must lie in (0, 2); got {alpha}")
        if not 0 <= self.anomalous_probability <= 1:
            raise ValueError("anomalous_probability must lie in [0, 1]; got "
                             f"{anomalous_probability}")
        self._dr = DomainRandomization(halo_fraction=dr.halo_fraction,
                                       halo_sigma_factor=dr.halo_sigma_factor,
                                       cameras=self.cameras)

    def ranges(self) -> dict:
        """The ranges this simulator draws from (for a model folder's ``training_ranges``)."""
        return {"frames": [self.min_length, self.frames], "patch_px": self.size,
                "substeps": self.substeps, "D_um2_s": list(self.D_um2_s),
                "exposure_fraction": list(self.exposure_fraction),
                "stroboscopic_probability": self.stroboscopic_probability,
                "pixel_size_nm": list(self.pixel_size_nm),
                "frame_time_s": list(self.frame_time_s),
                "psf_sigma_px": list(self.psf_sigma_px), "photons": list(self.photons),
                "background_photons_per_px": list(self.background_photons_per_px),
                "halo_probability": self.halo_probability,
                "cameras": sorted(k for k, v in self.cameras.items() if v > 0),
                "localizer_error_factor": list(self.localizer_excess),
                "alpha": list(self.alpha),
                "anomalous_probability": self.anomalous_probability}

    @staticmethod
    def _log_uniform(rng, lo_hi, n):
        lo, hi = lo_hi
        return np.exp(rng.uniform(np.log(lo), np.log(hi), n))

    def sample(self, rng: np.random.Generator, batch: int, **fixed) -> dict:
        """A batch of ``batch`` tubelets. ``fixed`` may pin per-molecule quantities to a
        scalar or a ``(batch,)`` array: ``D_um2_s``, ``exposure_fraction`` (0 =
        stroboscopic), ``frame_time_s``, ``pixel_size_nm``, ``psf_sigma_px``, ``photons``,
        ``background_photons_per_px``, ``length``, ``halo_fraction``, ``camera`` (a model
        name), ``localizer_excess``.

        Returns a dict of numpy arrays: ``patches`` ``(B, T, K, K)`` photons, ``mask``
        ``(B, T)``, ``loc_px`` ``(B, T, 2)`` measured localizations (px, relative to the
        first frame's patch corner), ``true_px`` ``(B, T, 2)`` exposure-averaged positions,
        ``features`` ``(B, T, 4)``, ``log_d`` ``(B,)`` ln D_px (fBM: ln K_px), ``alpha``,
        ``log_s2`` ``(B,)`` ln σ_loc² (px²), ``blur_R`` (Brownian blur coefficient: exact
        for α = 1 only), ``exposure_fraction``, ``D [um^2/s]``, ``frame_time_s``,
        ``pixel_size_nm``, ``psf_sigma_px``, ``photons``, ``background``, ``sigma_loc_px``,
        ``length`` (all ``(B,)``).
        """
        B, T, S, K = int(batch), self.frames, self.substeps, self.size

        def draw(name, default):
            v = fixed.get(name)
            return np.broadcast_to(np.asarray(v, float), (B,)).copy() if v is not None else \
                default()

        D = draw("D_um2_s", lambda: self._log_uniform(rng, self.D_um2_s, B))
        strobe = rng.random(B) < self.stroboscopic_probability
        f = draw("exposure_fraction",
                 lambda: np.where(strobe, 0.0, rng.uniform(*self.exposure_fraction, B)))
        n_exp = np.clip(np.rint(f * S), 1, S).astype(int)
        f_eff = np.where(f <= 0, 0.0, n_exp / S)
        dt = draw("frame_time_s", lambda: rng.uniform(*self.frame_time_s, B))
        a = draw("pixel_size_nm", lambda: rng.uniform(*self.pixel_size_nm, B))
        sigma = draw("psf_sigma_px", lambda: rng.uniform(*self.psf_sigma_px, B))
        N = draw("photons", lambda: self._log_uniform(rng, self.photons, B))
        bg = draw("background_photons_per_px",
                  lambda: self._log_uniform(rng, self.background_photons_per_px, B))
        halo = draw("halo_fraction", lambda: np.where(
            rng.random(B) < self.halo_probability, rng.uniform(*self._dr.halo_fraction, B), 0))
        halo_sigma = sigma * rng.uniform(*self._dr.halo_sigma_factor, B)
        length = draw("length", lambda: rng.integers(self.min_length, T + 1, B)).astype(int)
        excess = draw("localizer_excess", lambda: rng.uniform(*self.localizer_excess, B))

        # motion on the sub-step grid (px), D_px in px²/frame (fBM: K_px in px²/frame^α)
        d_px = D * dt / (a / 1000.0) ** 2
        if "alpha" in fixed or self.anomalous_probability > 0:
            alpha = draw("alpha", lambda: np.where(
                rng.random(B) < self.anomalous_probability,
                rng.uniform(*self.alpha, B), 1.0))
            # unit fGn on sub-steps of 1/S frame: Var = 2 K_px (1/S)^α per axis and sub-step
            steps = fgn_2d(rng, alpha, T * S) * np.sqrt(2 * d_px * S ** -alpha)[:, None, None]
        else:
            alpha = np.ones(B)
            steps = rng.normal(size=(B, T * S, 2)) * np.sqrt(2 * d_px / S)[:, None, None]
        pos = np.cumsum(steps, axis=1).reshape(B, T, S, 2)
        pos += rng.uniform(0, 1, (B, 1, 1, 2)) + 4 * K  # start anywhere in a pixel, > 0
        exposed = np.arange(S)[None, :] < n_exp[:, None]  # (B, S)
        true = (pos * exposed[:, None, :, None]).sum(2) / n_exp[:, None, None]

        photons = N[:, None] * rng.lognormal(-0.5 * 0.3**2, 0.3, (B, T))
        weights = photons[:, :, None] * exposed[:, None, :] / n_exp[:, None, None]
        cam_names = fixed.get("camera")
        cams = []
        for i in range(B):
            if cam_names is not None:
                self._dr.cameras = {str(cam_names): 1.0}
            peak = N[i] * 2 / (2 * np.pi * sigma[i] ** 2) + bg[i]
            cams.append(self._dr._camera(rng, peak))
        self._dr.cameras = self.cameras
        emccd = np.array([c.model == "emccd" for c in cams])
        s_loc = localization_sigma_px(photons.mean(1), bg, sigma, np.where(emccd, 2.0, 1.0))
        s_loc = s_loc * excess
        loc = true + rng.normal(size=true.shape) * s_loc[:, None, None]
        mask = np.arange(T)[None, :] < length[:, None]
        features, origin = tubelet_features(loc, mask)
        expected = render_tubelets(pos, weights, origin, K, sigma, halo, halo_sigma)
        expected += bg[:, None, None, None]
        patches = np.empty(expected.shape, np.float32)
        for i, cam in enumerate(cams):
            adu, _ = camera_adu(rng, expected[i], cam)
            patches[i] = adu_to_photons(adu, camera_dict(cam))
        patches *= mask[:, :, None, None]
        corner = np.floor(loc[:, :1]) - K // 2
        R = np.array([substep_blur_coefficient(n, S) if fv > 0 else 0.0
                      for n, fv in zip(n_exp, f)])
        return {"patches": patches, "mask": mask, "features": features,
                "loc_px": (loc - corner).astype(np.float32),
                "true_px": (true - corner).astype(np.float32),
                "log_d": np.log(d_px).astype(np.float32),
                "alpha": alpha.astype(np.float32),
                "log_s2": np.log(s_loc**2).astype(np.float32),
                "blur_R": R.astype(np.float32), "exposure_fraction": f_eff.astype(np.float32),
                "D [um^2/s]": D, "frame_time_s": dt, "pixel_size_nm": a,
                "psf_sigma_px": sigma.astype(np.float32), "photons": N, "background": bg,
                "sigma_loc_px": s_loc, "length": length,
                "camera": np.array([c.model for c in cams])}


def to_network_batch(sample: dict) -> dict[str, torch.Tensor]:
    """Numpy tubelets (from :meth:`TubeletSimulator.sample` or :mod:`.infer`) → the tensors
    a network and its losses read: ``x`` ``(B, T, K, K)`` normalized patches, ``features``,
    ``cond`` ``(B, 4)``, ``mask``, ``loc_px``, ``blur_R`` and, when present, the targets
    ``log_d``, ``log_s2`` and ``alpha``."""
    mask = torch.as_tensor(np.asarray(sample["mask"], bool))
    x, signal, bg = normalize_tubelets(sample["patches"], mask)
    out = {"x": x, "features": torch.as_tensor(np.asarray(sample["features"], np.float32)),
           "cond": conditioning(sample["exposure_fraction"], sample["psf_sigma_px"], signal, bg),
           "mask": mask, "loc_px": torch.as_tensor(np.asarray(sample["loc_px"], np.float32)),
           "blur_R": torch.as_tensor(np.asarray(sample["blur_R"], np.float32))}
    for key in ("log_d", "log_s2", "alpha"):
        if key in sample:
            out[key] = torch.as_tensor(np.asarray(sample[key], np.float32))
    return out


class TubeletStream(IterableDataset):
    """Batches of simulated tubelets (use ``DataLoader(batch_size=None)``); batch ``i`` of
    epoch ``e`` is simulated from seed ``item_seed(seed, e, i)``, sharded over workers and
    ranks with :func:`~smlmnet.models.datasets.shard_indices`.

    Args:
        length: batches per epoch (``None``: endless). seed: base seed. batch_size:
            tubelets per batch. simulator: keyword arguments of :class:`TubeletSimulator`.
    """

    def __init__(self, length: int | None = 100, seed: int = 0, batch_size: int = 128,
                 simulator: dict | None = None) -> None:
        super().__init__()
        self.length, self.seed, self.batch_size = length, int(seed), int(batch_size)
        self.simulator = TubeletSimulator(**dict(simulator or {}))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.length is None:
            raise TypeError("an endless TubeletStream has no length")
        rank, world = _rank_and_world()
        return len(range(rank, self.length, world))

    def make_batch(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(item_seed(self.seed, self.epoch, index))
        return to_network_batch(self.simulator.sample(rng, self.batch_size))

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return (self.make_batch(i) for i in shard_indices(self.length))

