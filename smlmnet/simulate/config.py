"""Simulation configuration: typed, validated, loadable from Hydra/YAML presets.

The YAML presets in ``smlmnet/configs/simulation/`` (shipped inside the package) override the
defaults below; unknown keys are an error (so a typo never silently falls back to a default).
All quantities carry their unit in the key name: ``*_um`` (µm), ``*_nm`` (nm), ``*_s`` (s),
``D_um2_s`` (µm²/s, or the generalized coefficient K in µm²/s^α when α ≠ 1), photons per
frame, electrons (``_e``), ADU.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smlmnet.simulate.params import ConfigError, check_param

MOTION_MODELS = (
    "brownian",
    "fbm",
    "confined",
    "directed",
    "anisotropic",
    "immobile",
    "multistate",
)


@dataclass
class FieldOfViewConfig:
    """Camera field of view.

    shape_px: (height, width) in pixels. pixel_size_nm: pixel edge in the sample plane.
    margin_um: particles are simulated in the field of view grown by this margin on every
    side, so that they diffuse in and out of view.
    """

    shape_px: tuple[int, int] = (64, 64)
    pixel_size_nm: float = 100.0
    margin_um: float = 1.0


@dataclass
class MotionConfig:
    """One population of particles and its motion model.

    model: one of ``brownian``, ``fbm``, ``confined``, ``directed``, ``anisotropic``,
    ``immobile``, ``multistate``. weight: relative share of the particles.
    D_um2_s: diffusion coefficient (generalized K for α ≠ 1), alpha: anomalous exponent in
    (0, 2) (used by ``fbm``, ``confined``, ``directed``). radius_um: confinement radius (disk)
    or half edge (box) for ``confined``; shape: ``disk`` or ``box``. speed_um_s: drift speed
    for ``directed`` (direction uniform at random). anisotropy: D_major/D_minor (>= 1) and
    angle_deg: direction of the major axis for ``anisotropic`` (``None`` = uniform at random;
    D_um2_s is then the mean of the two principal values). states: for ``multistate``, a list
    of ``{D_um2_s, alpha, motion_class}`` and transition_matrix[i][j] the probability to go
    from state i to j between consecutive frames.
    """

    model: str = "brownian"
    weight: float = 1.0
    D_um2_s: Any = 0.1
    alpha: Any = 1.0
    radius_um: Any = 0.3
    shape: str = "disk"
    speed_um_s: Any = 0.5
    anisotropy: Any = 4.0
    angle_deg: Any = None
    states: list | None = None
    transition_matrix: list | None = None


@dataclass
class ParticlesConfig:
    """How many particles and how they move.

    n: exact number of particles in the simulated area (field of view + margin); if ``None``
    it is ``round(density_per_um2 × area)``. ``density_per_um2`` may be a parameter spec
    (e.g. ``{low: 0.1, high: 3}``): one density is then drawn per simulated movie, which
    spreads training data over densities.
    """

    n: int | None = None
    density_per_um2: Any = 0.1
    motions: list = field(default_factory=lambda: [MotionConfig()])


@dataclass
class PhotophysicsConfig:
    """Emitter brightness, activation, blinking and bleaching.

    photons_per_frame: mean photons an emitter gives during one exposure (per emitter, a
    parameter spec). photons_frame_cv: frame-to-frame coefficient of variation of the photon
    count (gamma distributed; 0 = constant). activation: ``start`` (all emitters on at frame 0)
    or ``uniform`` (photo-activated at a uniformly random frame, as in sptPALM).
    bleach_lifetime_frames: mean number of frames before bleaching (exponential; ``None`` =
    never). blink_on_frames/blink_off_frames: mean on and off times in frames (two-state
    Markov chain; ``None`` = no blinking).
    """

    photons_per_frame: Any = 1000.0
    photons_frame_cv: float = 0.0
    activation: str = "start"
    bleach_lifetime_frames: float | None = None
    blink_on_frames: float | None = None
    blink_off_frames: float | None = None


@dataclass
class PSFConfig:
    """Gaussian PSF integrated over pixels. sigma_nm wins; otherwise σ = 0.21 λ / NA.

    ``halo_fraction`` > 0 adds a wide Gaussian halo of σ·``halo_sigma_factor`` carrying that
    fraction of the photons: a two-Gaussian stand-in for the rings of an Airy pattern (≈ 16 %
    of the energy outside the central disk) or a slightly defocused PSF. ``sigma`` stays the
    core's σ.
    """

    sigma_nm: float | None = None
    wavelength_nm: float = 670.0
    numerical_aperture: float = 1.49
    halo_fraction: float = 0.0
    halo_sigma_factor: float = 2.5

    @property
    def sigma(self) -> float:
        if self.sigma_nm is not None:
            return float(self.sigma_nm)
        return 0.21 * self.wavelength_nm / self.numerical_aperture


@dataclass
class BackgroundConfig:
    """Background in photons per pixel per frame (``photons_per_px`` may be a parameter spec:
    one level is drawn per simulated movie).

    pattern: ``uniform``; ``gradient`` (linear ramp along x, ±variation around the mean);
    ``blobs`` (smooth random cell-like autofluorescence, peak +variation × mean).
    """

    photons_per_px: Any = 10.0
    pattern: str = "uniform"
    variation: float = 0.0


@dataclass
class CameraConfig:
    """Camera model. ``poisson`` is an ideal photon counter (1 ADU per photon, no offset).

    sCMOS: Poisson(QE·λ + spurious) + N(0, read_noise_e) → ÷ e_per_adu → round → + baseline.
    EMCCD: Poisson → Gamma(shape=counts, scale=em_gain) (excess noise factor 2) → read noise →
    ÷ e_per_adu → round → + baseline. Output is clipped to [0, 2**bit_depth − 1] ADU.
    """

    model: str = "scmos"
    qe: float = 0.9
    baseline_adu: float = 100.0
    e_per_adu: float = 1.0
    read_noise_e: float = 1.5
    em_gain: float = 1.0
    spurious_charge: float = 0.0
    bit_depth: int = 16


@dataclass
class SimulationConfig:
    """Everything needed to regenerate a simulated dataset bit for bit.

    Timing: frames start every ``frame_time_s``; the camera integrates during
    ``exposure_time_s`` (``None`` = the whole frame) at the start of each frame.
    ``illumination``: ``continuous`` (light on during the exposure: motion blur) or
    ``stroboscopic`` (a short pulse: no blur). The motion is sampled ``substeps`` times per
    frame interval (sub-step midpoints); the exposure covers
    ``round(substeps × exposure/frame_time)`` of them.
    """

    seed: int = 0
    n_frames: int = 100
    frame_time_s: float = 0.02
    exposure_time_s: float | None = None
    illumination: str = "continuous"
    substeps: int = 10
    fov: FieldOfViewConfig = field(default_factory=FieldOfViewConfig)
    particles: ParticlesConfig = field(default_factory=ParticlesConfig)
    photophysics: PhotophysicsConfig = field(default_factory=PhotophysicsConfig)
    psf: PSFConfig = field(default_factory=PSFConfig)
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)

    # ------------------------------------------------------------------ derived timing
    @property
    def exposure_s(self) -> float:
        return self.frame_time_s if self.exposure_time_s is None else float(self.exposure_time_s)

    @property
    def substep_time_s(self) -> float:
        return self.frame_time_s / self.substeps

    @property
    def exposure_substeps(self) -> int:
        """Number of motion sub-steps that the camera integrates in each frame."""
        if self.illumination == "stroboscopic":
            return 1
        return max(1, int(round(self.substeps * self.exposure_s / self.frame_time_s)))

    @property
    def fov_size_um(self) -> tuple[float, float]:
        """(width, height) of the field of view in µm."""
        h, w = self.fov.shape_px
        return w * self.fov.pixel_size_nm / 1000.0, h * self.fov.pixel_size_nm / 1000.0

    # ------------------------------------------------------------------ (de)serialization
    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["fov"]["shape_px"] = list(self.fov.shape_px)
        return out

    @classmethod
    def from_dict(cls, data: Mapping | None) -> SimulationConfig:
        """Build and validate a config from nested mappings (YAML, OmegaConf, dict)."""
        data = _to_plain(data) if data is not None else {}
        cfg = _build(cls, data, "simulation")
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid value."""
        _validate(self)


# ---------------------------------------------------------------------- helpers
def _to_plain(data):
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(data, (DictConfig, ListConfig)):
            return OmegaConf.to_container(data, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return data


_NESTED = {
    "fov": FieldOfViewConfig,
    "particles": ParticlesConfig,
    "photophysics": PhotophysicsConfig,
    "psf": PSFConfig,
    "background": BackgroundConfig,
    "camera": CameraConfig,
}


def _build(cls, data, where: str):
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {sorted(unknown)}; valid keys are {sorted(names)}"
        )
    kwargs = {}
    for key, value in data.items():
        sub = f"{where}.{key}"
        if cls is SimulationConfig and key in _NESTED:
            value = _build(_NESTED[key], value or {}, sub)
        elif cls is ParticlesConfig and key == "motions":
            if not isinstance(value, Sequence) or isinstance(value, str) or not value:
                raise ConfigError(f"{sub}: expected a non-empty list of motion populations")
            value = [_build(MotionConfig, m, f"{sub}[{i}]") for i, m in enumerate(value)]
        elif cls is FieldOfViewConfig and key == "shape_px":
            if not isinstance(value, Sequence) or len(value) != 2:
                raise ConfigError(f"{sub}: expected [height, width] in pixels, got {value!r}")
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def _positive(value, where: str, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{where} must be {'>= 0' if allow_zero else '> 0'}; got {value!r}")


def _integer(value, where: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{where} must be an integer >= {minimum}; got {value!r}")


def _choice(value, where: str, options) -> None:
    if value not in options:
        raise ConfigError(f"{where}: {value!r} is not one of {list(options)}")


def _validate_motion(m: MotionConfig, where: str) -> None:
    _choice(m.model, f"{where}.model", MOTION_MODELS)
    _positive(m.weight, f"{where}.weight", allow_zero=True)
    if m.model == "immobile":
        return
    if m.model == "multistate":
        if not m.states:
            raise ConfigError(f"{where}.states: a multistate population needs a list of states")
        n = len(m.states)
        for i, st in enumerate(m.states):
            sw = f"{where}.states[{i}]"
            if not isinstance(st, Mapping):
                raise ConfigError(f"{sw}: expected {{D_um2_s, alpha, motion_class}}")
            unknown = set(st) - {"D_um2_s", "alpha", "motion_class"}
            if unknown:
                raise ConfigError(f"{sw}: unknown key(s) {sorted(unknown)}")
            check_param(st.get("D_um2_s", 0.1), f"{sw}.D_um2_s", low=0)
            check_param(st.get("alpha", 1.0), f"{sw}.alpha", low=0, high=2, low_open=True,
                        high_open=True)
            if "motion_class" in st:
                _choice(st["motion_class"], f"{sw}.motion_class",
                        ("immobile", "confined", "free", "directed"))
        tm = np.asarray(m.transition_matrix if m.transition_matrix is not None else [], float)
        if tm.shape != (n, n):
            raise ConfigError(
                f"{where}.transition_matrix must be {n}x{n} (one row per state); got "
                f"{m.transition_matrix!r}"
            )
        if (tm < 0).any() or not np.allclose(tm.sum(axis=1), 1.0):
            raise ConfigError(
                f"{where}.transition_matrix rows must be probabilities summing to 1; got "
                f"{m.transition_matrix!r}"
            )
        return
    check_param(m.D_um2_s, f"{where}.D_um2_s", low=0)
    check_param(m.alpha, f"{where}.alpha", low=0, high=2, low_open=True, high_open=True)
    if m.model == "confined":
        check_param(m.radius_um, f"{where}.radius_um", low=0, low_open=True)
        _choice(m.shape, f"{where}.shape", ("disk", "box"))
    if m.model == "directed":
        check_param(m.speed_um_s, f"{where}.speed_um_s", low=0)
    if m.model == "anisotropic":
        check_param(m.anisotropy, f"{where}.anisotropy", low=1)
        if m.angle_deg is not None:
            check_param(m.angle_deg, f"{where}.angle_deg")


def _validate(cfg: SimulationConfig) -> None:
    _integer(cfg.seed, "seed", 0)
    _integer(cfg.n_frames, "n_frames", 1)
    _integer(cfg.substeps, "substeps", 1)
    _positive(cfg.frame_time_s, "frame_time_s")
    _choice(cfg.illumination, "illumination", ("continuous", "stroboscopic"))
    if cfg.exposure_time_s is not None:
        _positive(cfg.exposure_time_s, "exposure_time_s")
        if cfg.exposure_time_s > cfg.frame_time_s * (1 + 1e-9):
            raise ConfigError(
                f"exposure_time_s={cfg.exposure_time_s} is longer than the frame interval "
                f"frame_time_s={cfg.frame_time_s}; the exposure must fit inside one frame"
            )
        if cfg.illumination == "continuous":
            exact = cfg.substeps * cfg.exposure_time_s / cfg.frame_time_s
            if abs(exact - round(exact)) > 1e-6:
                effective = cfg.exposure_substeps * cfg.substep_time_s
                warnings.warn(
                    f"exposure_time_s={cfg.exposure_time_s} is not a whole number of sub-steps "
                    f"({cfg.substeps} per frame); the simulated exposure is {effective:g} s. "
                    "Choose substeps so that substeps*exposure/frame_time is an integer.",
                    stacklevel=3,
                )
    # field of view
    h, w = cfg.fov.shape_px
    _integer(h, "fov.shape_px[0] (height)", 1)
    _integer(w, "fov.shape_px[1] (width)", 1)
    _positive(cfg.fov.pixel_size_nm, "fov.pixel_size_nm")
    _positive(cfg.fov.margin_um, "fov.margin_um", allow_zero=True)
    # particles
    p = cfg.particles
    if p.n is not None:
        _integer(p.n, "particles.n", 0)
    else:
        check_param(p.density_per_um2, "particles.density_per_um2", low=0)
    for i, m in enumerate(p.motions):
        _validate_motion(m, f"particles.motions[{i}]")
    if sum(m.weight for m in p.motions) <= 0:
        raise ConfigError("particles.motions: the weights must not all be zero")
    # photophysics
    ph = cfg.photophysics
    check_param(ph.photons_per_frame, "photophysics.photons_per_frame", low=0)
    _positive(ph.photons_frame_cv, "photophysics.photons_frame_cv", allow_zero=True)
    _choice(ph.activation, "photophysics.activation", ("start", "uniform"))
    for key in ("bleach_lifetime_frames", "blink_on_frames", "blink_off_frames"):
        value = getattr(ph, key)
        if value is not None:
            _positive(value, f"photophysics.{key}")
    if (ph.blink_on_frames is None) != (ph.blink_off_frames is None):
        raise ConfigError(
            "photophysics: give both blink_on_frames and blink_off_frames, or neither"
        )
    # PSF
    if cfg.psf.sigma_nm is not None:
        _positive(cfg.psf.sigma_nm, "psf.sigma_nm")
    else:
        _positive(cfg.psf.wavelength_nm, "psf.wavelength_nm")
        _positive(cfg.psf.numerical_aperture, "psf.numerical_aperture")
    _positive(cfg.psf.halo_fraction, "psf.halo_fraction", allow_zero=True)
    if cfg.psf.halo_fraction >= 1:
        raise ConfigError(f"psf.halo_fraction must be in [0, 1); got {cfg.psf.halo_fraction}")
    _positive(cfg.psf.halo_sigma_factor, "psf.halo_sigma_factor")
    # background
    check_param(cfg.background.photons_per_px, "background.photons_per_px", low=0)
    _choice(cfg.background.pattern, "background.pattern", ("uniform", "gradient", "blobs"))
    _positive(cfg.background.variation, "background.variation", allow_zero=True)
    if cfg.background.pattern == "gradient" and cfg.background.variation > 1:
        raise ConfigError("background.variation must be <= 1 for a gradient (no negative light)")
    # camera
    c = cfg.camera
    _choice(c.model, "camera.model", ("poisson", "scmos", "emccd"))
    _positive(c.qe, "camera.qe")
    if c.qe > 1:
        raise ConfigError(f"camera.qe is a quantum efficiency in (0, 1]; got {c.qe}")
    _positive(c.baseline_adu, "camera.baseline_adu", allow_zero=True)
    _positive(c.e_per_adu, "camera.e_per_adu")
    _positive(c.read_noise_e, "camera.read_noise_e", allow_zero=True)
    _positive(c.em_gain, "camera.em_gain")
    _positive(c.spurious_charge, "camera.spurious_charge", allow_zero=True)
    _integer(c.bit_depth, "camera.bit_depth", 8)
    if c.bit_depth > 16:
        raise ConfigError(f"camera.bit_depth must be <= 16 (uint16 movies); got {c.bit_depth}")


# ---------------------------------------------------------------------- presets
def config_dir() -> Path:
    """The folder holding the ``simulation/`` presets: ``smlmnet/configs`` inside the installed
    package (so a wheel install has them too); ``SMLMNET_CONFIG_DIR`` overrides it."""
    import os

    env = os.environ.get("SMLMNET_CONFIG_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "configs"


def list_presets() -> list[str]:
    """Names of the simulation presets in ``smlmnet/configs/simulation``."""
    return sorted(p.stem for p in (config_dir() / "simulation").glob("*.yaml"))


def _preset_path(preset_or_path: str | Path) -> Path:
    path = Path(preset_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    candidate = config_dir() / "simulation" / f"{preset_or_path}.yaml"
    if not candidate.is_file():
        raise ConfigError(
            f"unknown simulation preset or config file {str(preset_or_path)!r}; presets: "
            f"{', '.join(list_presets())}"
        )
    return candidate


def _load_raw(preset_or_path: str | Path, seen: tuple = ()) -> dict:
    """A preset's mapping with its ``defaults:`` list honoured: each entry (a preset name or
    YAML path, or ``_self_``) is merged in order; ``_self_`` (implicitly last) is the file's own
    keys, so a preset can say ``defaults: [sptpalm_membrane, _self_]`` and change a few keys."""
    from omegaconf import OmegaConf

    path = _preset_path(preset_or_path)
    if path.resolve() in seen:
        raise ConfigError(f"{path}: its defaults list includes itself (a cycle)")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    defaults = raw.pop("defaults", None) or []
    if not isinstance(defaults, list):
        raise ConfigError(f"{path}: 'defaults' must be a list of preset names")
    if "_self_" not in defaults:
        defaults = [*defaults, "_self_"]
    merged = OmegaConf.create({})
    for entry in defaults:
        if entry == "_self_":
            part = raw
        elif isinstance(entry, str):
            part = _load_raw(entry, (*seen, path.resolve()))
        elif isinstance(entry, dict) and len(entry) == 1 and "simulation" in entry:
            part = _load_raw(entry["simulation"], (*seen, path.resolve()))
        else:
            raise ConfigError(f"{path}: defaults entry {entry!r} is not a preset name")
        merged = OmegaConf.merge(merged, OmegaConf.create(part))
    return OmegaConf.to_container(merged, resolve=True)


def load_config(preset_or_path: str | Path = "sptpalm_membrane",
                overrides: Sequence[str] = ()) -> SimulationConfig:
    """Load a preset name (``smlmnet/configs/simulation/<name>.yaml``) or a YAML file (its
    ``defaults:`` list honoured) and apply ``key=value`` overrides (dotted keys, values parsed
    as YAML), e.g. ``["n_frames=50", "camera.em_gain=200", "particles.motions.0.D_um2_s=0.5"]``.
    """
    import yaml
    from omegaconf import OmegaConf

    raw = _load_raw(preset_or_path)
    base = OmegaConf.create(SimulationConfig.from_dict(raw).to_dict())
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        key, value = item.split("=", 1)
        key = key.strip().lstrip("+")
        if OmegaConf.select(base, key, default="__missing__") == "__missing__":
            raise ConfigError(f"override {item!r}: no config key {key!r}")
        OmegaConf.update(base, key, yaml.safe_load(value) if value else None, merge=False)
    return SimulationConfig.from_dict(base)
