"""Domain randomization: every training movie drawn from the range of microscopes users have.

A :class:`DomainRandomization` draws, per simulated item, a PSF (σ in pixels, Gaussian or with
an Airy/defocus-like halo), emitter brightness, background level and pattern, density, motion,
frame time and camera (ideal photon counter, sCMOS, EMCCD with random gain and offset), then
degrades the digitized frames the way real files are degraded: 8-bit export with the background
clipped to 0, offset-subtracted floats (negative values), hot pixels.

The degradations are applied to frames already converted to photons; they are affine changes
``y = k·x + c`` followed by clipping and rounding, so the truth follows with the same ``k`` and
``c`` (photons × k; background × k + c, clipped). Networks trained on such data must be
invariant to k and c (see ``DecodeNet(normalization="robust")``) and report photons in the
input's units.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from smlmnet.simulate.config import (
    BackgroundConfig,
    CameraConfig,
    MotionConfig,
    PhotophysicsConfig,
    SimulationConfig,
)


@dataclass
class DomainRandomization:
    """Ranges of the randomized quantities (pixel units where the physics is scale-free).

    psf_sigma_px: core σ range (uniform). halo_probability, halo_fraction,
    halo_sigma_factor: how often and how strong an Airy/defocus-like halo is.
    photons: [lo, hi] mean photons per emitter per frame; each item draws a centre
    log-uniformly and its emitters spread ``photon_spread``× around it (log-uniform), clipped
    to [lo, hi]. background_photons_per_px: [lo, hi] log-uniform; ``zero_background_probability``
    of a background-free item. density_per_px2: emitters per pixel² (uniform; 0.03 px⁻² is
    3 µm⁻² at 100 nm pixels). D_um2_s: log-uniform Brownian D (motion blur) for the mobile
    share ``1 − immobile_fraction``. frame_time_s: uniform range (continuous exposure).
    cameras: relative weights of ``poisson``, ``scmos``, ``emccd``. eight_bit_probability,
    offset_subtracted_probability, hot_pixel_probability: file degradations.
    """

    psf_sigma_px: tuple[float, float] = (0.6, 2.5)
    halo_probability: float = 0.5
    halo_fraction: tuple[float, float] = (0.05, 0.3)
    halo_sigma_factor: tuple[float, float] = (1.8, 3.0)
    photons: tuple[float, float] = (100.0, 1e5)
    photon_spread: float = 4.0
    background_photons_per_px: tuple[float, float] = (0.5, 1e4)
    zero_background_probability: float = 0.05
    density_per_px2: tuple[float, float] = (0.0005, 0.03)
    D_um2_s: tuple[float, float] = (0.001, 2.0)
    immobile_fraction: float = 0.3
    frame_time_s: tuple[float, float] = (0.01, 0.05)
    cameras: dict = field(default_factory=lambda: {"poisson": 1.0, "scmos": 1.0, "emccd": 1.0})
    eight_bit_probability: float = 0.15
    offset_subtracted_probability: float = 0.1
    hot_pixel_probability: float = 0.3
    preset_probability: float = 0.0
    replay_probability: float = 0.0
    replay: dict | None = None

    @classmethod
    def from_dict(cls, data: dict | None) -> DomainRandomization:
        data = dict(data or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"domain randomization: unknown key(s) {sorted(unknown)}; valid "
                             f"keys are {sorted(names)}")
        ranges = {f.name for f in dataclasses.fields(cls) if isinstance(f.default, tuple)}
        for key in set(data) & ranges:
            data[key] = tuple(float(v) for v in data[key])
        return cls(**data)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    def training_ranges(self) -> dict:
        """The ranges a model trained on this randomization has seen (for its model folder
        and the domain guard): PSF σ in px, photons, background photons/px, density."""
        return {"psf_sigma_px": list(self.psf_sigma_px), "photons": list(self.photons),
                "background_photons_per_px": [0.0 if self.zero_background_probability > 0
                                              else self.background_photons_per_px[0],
                                              self.background_photons_per_px[1]],
                "density_per_px2": [0.0, self.density_per_px2[1]],
                "cameras": sorted(k for k, v in self.cameras.items() if v > 0),
                "camera_calibration_needed": False,
                "degradations": {"eight_bit_clipped": self.eight_bit_probability > 0,
                                 "offset_subtracted": self.offset_subtracted_probability > 0,
                                 "hot_pixels": self.hot_pixel_probability > 0}}

    def pick(self, rng: np.random.Generator) -> DomainRandomization:
        """The randomization of one item: ``self``, or with probability
        ``replay_probability`` the ``replay`` one (use it for the item's
        :meth:`sample_config` and :meth:`degrade`). Draws from ``rng`` only when replay is
        on, so the item streams of models without replay are unchanged."""
        if self.replay_probability > 0 and rng.random() < self.replay_probability:
            return DomainRandomization.from_dict(self.replay)
        return self

    # ------------------------------------------------------------------ configs
    def sample_config(self, base: SimulationConfig, rng: np.random.Generator
                      ) -> SimulationConfig:
        """A copy of ``base`` with every randomized quantity drawn from ``rng`` (the field of
        view, number of frames, sub-steps and seed of ``base`` are kept); with probability
        ``preset_probability`` ``base`` itself."""
        if self.preset_probability > 0 and rng.random() < self.preset_probability:
            return base
        a = base.fov.pixel_size_nm
        log_u = lambda lo, hi: float(np.exp(rng.uniform(np.log(lo), np.log(hi))))  # noqa: E731
        sigma_px = rng.uniform(*self.psf_sigma_px)
        halo = rng.random() < self.halo_probability
        psf = dataclasses.replace(
            base.psf, sigma_nm=sigma_px * a,
            halo_fraction=rng.uniform(*self.halo_fraction) if halo else 0.0,
            halo_sigma_factor=rng.uniform(*self.halo_sigma_factor))
        lo, hi = self.photons
        centre = log_u(lo * np.sqrt(self.photon_spread), hi / np.sqrt(self.photon_spread))
        half = np.sqrt(self.photon_spread)
        photons = {"low": max(lo, centre / half), "high": min(hi, centre * half), "log": True}
        photo = PhotophysicsConfig(photons_per_frame=photons, photons_frame_cv=0.3,
                                   activation="start", blink_on_frames=4.0,
                                   blink_off_frames=2.0)
        if rng.random() < self.zero_background_probability:
            bg_level = 0.0
        else:
            bg_level = log_u(*self.background_photons_per_px)
        background = BackgroundConfig(photons_per_px=bg_level,
                                      pattern=str(rng.choice(["uniform", "gradient", "blobs"])),
                                      variation=float(rng.uniform(0.0, 0.8)))
        density = rng.uniform(*self.density_per_px2) / (a / 1000.0) ** 2
        motions = [MotionConfig(model="brownian", weight=1 - self.immobile_fraction,
                                D_um2_s={"low": self.D_um2_s[0], "high": self.D_um2_s[1],
                                         "log": True}),
                   MotionConfig(model="immobile", weight=self.immobile_fraction)]
        particles = dataclasses.replace(base.particles, n=None, density_per_um2=density,
                                        motions=motions)
        frame_time = rng.uniform(*self.frame_time_s)
        peak = photons["high"] / (2 * np.pi * sigma_px**2) + bg_level * (1 + 0.8)
        camera = self._camera(rng, peak)
        return dataclasses.replace(base, psf=psf, photophysics=photo, background=background,
                                   particles=particles, camera=camera,
                                   frame_time_s=frame_time, exposure_time_s=None,
                                   illumination="continuous")

    def _camera(self, rng: np.random.Generator, peak_photons: float) -> CameraConfig:
        names = list(self.cameras)
        w = np.asarray([self.cameras[n] for n in names], float)
        model = str(rng.choice(names, p=w / w.sum()))
        if model == "poisson":
            return CameraConfig(model="poisson", qe=1.0, baseline_adu=0.0, e_per_adu=1.0,
                                read_noise_e=0.0, em_gain=1.0)
        qe = rng.uniform(0.6, 0.95)
        if model == "emccd":
            gain, e_per_adu, read = rng.uniform(10, 300), rng.uniform(5, 50), rng.uniform(20, 80)
        else:
            gain, e_per_adu, read = 1.0, rng.uniform(0.3, 3.0), rng.uniform(0.5, 3.0)
        baseline = rng.uniform(0, 500)
        # keep the brightest expected pixel (with EMCCD noise headroom) below the 16-bit range
        needed = 3.0 * peak_photons * qe * gain / (60000.0 - baseline)
        return CameraConfig(model=model, qe=qe, baseline_adu=baseline,
                            e_per_adu=max(e_per_adu, needed), read_noise_e=read, em_gain=gain,
                            spurious_charge=0.002 if model == "emccd" else 0.0)

    # ------------------------------------------------------------------ file degradations
    def degrade(self, frames: np.ndarray, rng: np.random.Generator
                ) -> tuple[np.ndarray, float, float, tuple[float, float]]:
        """Degrade ``(T, H, W)`` frames in photons like an exported file.

        Returns ``(frames, k, c, (lo, hi))``: the new frames (float32) and the affine map
        y = k·x + c and clipping range that the truth must follow (photons × k; background
        × k + c, clipped to [lo, hi]).
        """
        x = np.asarray(frames, np.float32)
        k, c, lo, hi = 1.0, 0.0, -np.inf, np.inf
        u = rng.random()
        if u < self.eight_bit_probability:
            # 8-bit export: background (partly, or more than) subtracted, top mapped to ~255
            med = float(np.median(x))
            c0 = -rng.uniform(0.5, 1.3) * med
            top = float(np.percentile(x, 99.9)) + c0
            k = rng.uniform(100.0, 400.0) / max(top, 1e-3)
            c, lo, hi = k * c0, 0.0, 255.0
            x = np.clip(np.rint(k * x + c), lo, hi)
        elif u < self.eight_bit_probability + self.offset_subtracted_probability:
            c = -float(np.median(x))
            x = x + c
        if rng.random() < self.hot_pixel_probability:
            n_hot = 1 + rng.poisson(1.0)
            T, H, W = x.shape
            i, j = rng.integers(0, H, n_hot), rng.integers(0, W, n_hot)
            noise = max(float(np.std(x)), 1.0)
            level = np.median(x) + rng.uniform(5, 50, n_hot) * noise
            x[:, i, j] = np.clip(level, lo, hi)[None, :]
        return x.astype(np.float32), float(k), float(c), (float(lo), float(hi))
