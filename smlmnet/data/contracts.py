"""Data contracts shared by every stage of smlmnet.

Coordinate convention
---------------------
All positions inside smlmnet are physical coordinates in **nanometres** measured from the
top-left **corner** of the image: pixel ``(row=i, col=j)`` covers ``x ∈ [j·a, (j+1)·a)`` and
``y ∈ [i·a, (i+1)·a)`` for pixel size ``a``. The centre of pixel 0 therefore lies at
``0.5 px = a/2 nm`` (this is ThunderSTORM's convention). ``x`` runs along columns (the last
array axis), ``y`` along rows.

Array-index ("trackpy") pixel coordinates put the centre of pixel 0 at 0; convert with
:func:`nm_to_pixel_index` and :func:`pixel_index_to_nm` at every file boundary.

Units
-----
Movies are ``(T, H, W)`` arrays with ``pixel_size_nm`` and ``frame_time_s``. Tables are pandas
DataFrames whose column names carry their units (``x [nm]``, ``t [s]``, ``D [um^2/s]``); frames
are 0-based integers. For anomalous motion (α ≠ 1) the ``D [um^2/s]`` column holds the
generalized coefficient K of MSD(τ) = 2·d·K·τ^α (units µm²/s^α), which equals D for α = 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Position (in pixels) of the centre of pixel 0 in smlmnet's continuous coordinates.
PIXEL_CENTER_OFFSET_PX = 0.5

# Column names of the tables exchanged between stages.
FRAME = "frame"
TIME = "t [s]"
TRACK_ID = "track_id"
X_NM = "x [nm]"
Y_NM = "y [nm]"
PHOTONS = "photons [photon]"
ON = "on"
D_UM2_S = "D [um^2/s]"
ALPHA = "alpha"
STATE = "state"
MOTION_CLASS = "motion_class"

#: AnDi-2 motion classes used in the ``motion_class`` column.
MOTION_CLASSES = {"immobile": 0, "confined": 1, "free": 2, "directed": 3}


def nm_to_pixel_index(coord_nm, pixel_size_nm: float):
    """Convert smlmnet nm coordinates to array-index pixels (centre of pixel 0 at 0)."""
    return np.asarray(coord_nm, dtype=float) / pixel_size_nm - PIXEL_CENTER_OFFSET_PX


def pixel_index_to_nm(coord_px, pixel_size_nm: float):
    """Convert array-index pixel coordinates (centre of pixel 0 at 0) to smlmnet nm."""
    return (np.asarray(coord_px, dtype=float) + PIXEL_CENTER_OFFSET_PX) * pixel_size_nm


@dataclass
class Movie:
    """A fluorescence movie in camera units (ADU) with its physical calibration.

    Attributes:
        frames: ``(T, H, W)`` array (any real dtype; simulated movies are uint16 ADU).
        pixel_size_nm: edge length of a (square) pixel in the sample plane, nm.
        frame_time_s: interval between the starts of consecutive frames, s.
        exposure_time_s: exposure per frame, s (``<= frame_time_s``); ``None`` if unknown.
        camera: camera parameters (``baseline_adu``, ``e_per_adu``, ``em_gain``, ``qe``...)
            needed to convert ADU back to photons; empty if unknown.
    """

    frames: np.ndarray
    pixel_size_nm: float
    frame_time_s: float
    exposure_time_s: float | None = None
    camera: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # np.asarray drops the memmap subclass: keep memory-mapped movies as they are
        frames = self.frames if isinstance(self.frames, np.memmap) else np.asarray(self.frames)
        if frames.ndim != 3:
            raise ValueError(
                f"Movie frames must have shape (T, H, W); got {frames.ndim} dimensions "
                f"with shape {frames.shape}"
            )
        if 0 in frames.shape:
            raise ValueError(f"Movie is empty: shape {frames.shape}")
        dtype = frames.dtype
        if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
            raise ValueError(f"Movie frames must be real numbers; got dtype {frames.dtype}")
        # memory-mapped movies are checked batch by batch where they are read
        in_memory = not isinstance(frames, np.memmap)
        if in_memory and np.issubdtype(dtype, np.floating) and not np.isfinite(frames).all():
            bad = np.flatnonzero(~np.isfinite(frames).all(axis=(1, 2)))
            raise ValueError(
                f"the movie has NaN or infinite pixels in frames (0-based) "
                f"{', '.join(map(str, bad[:20]))}{' ...' if len(bad) > 20 else ''}; smlmnet "
                "cannot fit undefined pixels and will not guess values for them: replace them "
                "(e.g. with the camera baseline) or crop those frames before analyzing")
        if not (np.isfinite(self.pixel_size_nm) and self.pixel_size_nm > 0):
            raise ValueError(f"pixel_size_nm must be a positive number; got {self.pixel_size_nm}")
        if not (np.isfinite(self.frame_time_s) and self.frame_time_s > 0):
            raise ValueError(f"frame_time_s must be a positive number; got {self.frame_time_s}")
        if self.exposure_time_s is not None and not (
            0 <= self.exposure_time_s <= self.frame_time_s * (1 + 1e-9)
        ):
            raise ValueError(
                f"exposure_time_s={self.exposure_time_s} must lie in [0, frame_time_s="
                f"{self.frame_time_s}]"
            )
        self.frames = frames

    def first_frames(self, n: int) -> Movie:
        """The movie's first ``n`` frames (all if it has fewer), read into memory, with the
        same calibration."""
        return Movie(np.asarray(self.frames[:max(1, int(n))]), self.pixel_size_nm,
                     self.frame_time_s, self.exposure_time_s, self.camera)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.frames.shape)  # type: ignore[return-value]

    @property
    def n_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def field_of_view_nm(self) -> tuple[float, float]:
        """(width, height) of the field of view in nm."""
        return self.frames.shape[2] * self.pixel_size_nm, self.frames.shape[1] * self.pixel_size_nm
