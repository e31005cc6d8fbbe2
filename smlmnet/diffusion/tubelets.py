"""The table interface shared by every pixel-diffusion estimator: tubelets cut from a movie
around its tracks in, per-track and per-localization D out.

Each track is cut into windows of the estimator's ``frames`` consecutive frames (the last one
shorter; a missing frame inside a track is a masked frame); each window becomes a tubelet:
``K × K`` pixels of the movie, converted to photons with the movie's camera, around the pixel
holding each localization (edge pixels repeated at the border), with the localization
features (:func:`tubelet_features`). Windows of one track are combined by inverse variance.
Memory is bounded by ``batch_size`` tubelets at a time.

A subclass supplies :meth:`TubeletDiffusionEstimator.predict_tubelets` (a network,
:class:`smlmnet.diffusion.mivit.infer.PixelDiffusionEstimator`, or the motion-blur
likelihood, :class:`smlmnet.diffusion.blur_likelihood.BlurLikelihoodEstimator`), so the
CLI and the benchmarks swap them. Units: tubelets in pixels and frames (``ln D_px``,
``D_px = D·Δt/a²``), tables in nm, s and µm²/s.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from smlmnet.data import contracts as C
from smlmnet.data.camera import adu_to_photons, fit_units
from smlmnet.simulate.movie import substep_blur_coefficient

PIXEL_D = "pixel D [um^2/s]"
PIXEL_D_LOG_STD = "pixel D log-std"
PIXEL_ALPHA = "pixel alpha"
PIXEL_ALPHA_STD = "pixel alpha std"

#: pixel-diffusion estimators that need no weights, by the name the CLI and configs use
CLASSICAL_PIXEL_ESTIMATORS = {
    "blur_likelihood": "smlmnet.diffusion.blur_likelihood:BlurLikelihoodEstimator",
}


def log_d_px_to_um2_s(log_d_px, frame_time_s, pixel_size_nm):
    """``ln D_px`` (px²/frame) → D in µm²/s (numpy or torch, broadcasting)."""
    lib = torch if torch.is_tensor(log_d_px) else np
    return lib.exp(log_d_px) * (pixel_size_nm / 1000.0) ** 2 / frame_time_s


def um2_s_to_log_d_px(d_um2_s, frame_time_s, pixel_size_nm):
    """D in µm²/s → ``ln D_px`` (px²/frame); the inverse of :func:`log_d_px_to_um2_s`."""
    return np.log(np.asarray(d_um2_s, float) * np.asarray(frame_time_s, float)
                  / (np.asarray(pixel_size_nm, float) / 1000.0) ** 2)


def tubelet_features(loc_px: np.ndarray | torch.Tensor, mask) -> tuple:
    """Per-frame features ``(B, T, 4)`` and patch origins ``(B, T, 2)`` from localizations.

    Args:
        loc_px: ``(B, T, 2)`` localizations (x, y) in continuous pixel units (pixel j covers
            [j, j+1)). mask: ``(B, T)`` bool, frames where the molecule was localized.
    Returns:
        ``(features, origin)``: features = offset of the localization from the patch centre
        (x, y, in [−0.5, 0.5)) and asinh of the displacement from the previous frame (0 where
        that frame or the previous one is masked); ``origin`` = integer pixel of the patch
        centre (the patch spans ``origin − K//2 .. origin + K//2``).
    """
    loc = np.asarray(loc_px, np.float64)
    mask = np.asarray(mask, bool)
    origin = np.floor(loc)
    offset = loc - origin - 0.5
    disp = np.zeros_like(loc)
    disp[:, 1:] = np.diff(loc, axis=1)
    valid = np.zeros_like(mask)
    valid[:, 1:] = mask[:, 1:] & mask[:, :-1]
    disp = np.where(valid[..., None], np.arcsinh(disp), 0.0)
    offset = np.where(mask[..., None], offset, 0.0)
    return np.concatenate([offset, disp], axis=-1).astype(np.float32), origin.astype(np.int64)


def combine_log_estimates(mu: np.ndarray, log_var: np.ndarray, groups: np.ndarray):
    """Inverse-variance mean of ln-estimates ``(n,)`` per group label ``(n,)``: returns
    ``(labels, mu, log_var)`` sorted by label."""
    labels, inv = np.unique(groups, return_inverse=True)
    w = np.exp(-np.clip(log_var, -8, 8))
    tot = np.bincount(inv, w, len(labels))
    return labels, np.bincount(inv, w * mu, len(labels)) / tot, -np.log(tot)


def load_pixel_estimator(name: str, **kwargs) -> TubeletDiffusionEstimator:
    """A pixel-diffusion estimator by name: one of :data:`CLASSICAL_PIXEL_ESTIMATORS`
    (built with ``kwargs``), else a model of kind ``pixel_diffusion`` from the registry (a
    shipped name or a model folder)."""
    import importlib

    if str(name) in CLASSICAL_PIXEL_ESTIMATORS:
        module, cls = CLASSICAL_PIXEL_ESTIMATORS[str(name)].split(":")
        return getattr(importlib.import_module(module), cls)(**kwargs)
    from smlmnet.models.registry import load

    return load(name, **kwargs)


class TubeletDiffusionEstimator:
    """Base of the pixel-diffusion estimators: cutting tubelets and the table interface.

    Subclasses set ``frames`` (T), ``size`` (K, odd), ``substeps`` (motion sub-steps per
    frame that turn the exposure fraction into the blur R) and ``batch_size``, and implement
    :meth:`predict_tubelets`.
    """

    frames: int = 16
    size: int = 15
    substeps: int = 8
    batch_size: int = 128

    def predict_tubelets(self, sample: dict) -> dict[str, np.ndarray]:
        """``log_d``, ``log_var`` ``(B,)`` (ln D_px and its variance) and ``frame_log_d``
        ``(B, T)`` for numpy tubelets with ``patches`` (photons), ``mask``, ``features``,
        ``loc_px``, ``blur_R``, ``exposure_fraction`` and ``psf_sigma_px``; optionally
        ``alpha`` and ``alpha_log_var``."""
        raise NotImplementedError

    def tubelets_from_movie(self, frames: np.ndarray, camera: dict, tracks: pd.DataFrame,
                            pixel_size_nm: float, track_col: str = C.TRACK_ID) -> dict:
        """Cut windows of ``frames`` frames of every track out of a movie.

        Returns numpy arrays ``patches`` ``(W, T, K, K)`` photons, ``mask``, ``features``,
        ``loc_px`` and per window ``track`` (id) and ``frame0``; plus ``row`` ``(W, T)``:
        the index in ``tracks`` of each masked-in frame (−1 elsewhere), ``inside``
        ``(W, T)``: the patch lies wholly inside the movie (no repeated edge pixels), and the
        camera's noise for likelihood fits (:func:`smlmnet.data.camera.fit_units`):
        ``fit_scale`` (QE/excess: photons → Poisson-like fit units) and ``read_var``
        (read-noise variance per pixel in those units).
        """
        T, K, h = self.frames, self.size, self.size // 2
        Hm, Wm = frames.shape[1:]
        win_track, win_f0, rows_l, loc_l = [], [], [], []
        for tid, g in tracks.groupby(track_col, sort=True):
            g = g.sort_values(C.FRAME)
            f = g[C.FRAME].to_numpy(np.int64)
            if len(np.unique(f)) != len(f):
                raise ValueError(f"track {tid} has several points in one frame")
            idx = g.index.to_numpy()
            xy = g[[C.X_NM, C.Y_NM]].to_numpy(float) / pixel_size_nm
            for f0 in range(int(f[0]), int(f[-1]) + 1, T):
                sel = (f >= f0) & (f < f0 + T)
                if not sel.any():
                    continue
                row = np.full(T, -1, np.int64)
                loc = np.full((T, 2), np.nan)
                row[f[sel] - f0] = idx[sel]
                loc[f[sel] - f0] = xy[sel]
                win_track.append(tid)
                win_f0.append(f0)
                rows_l.append(row)
                loc_l.append(loc)
        nW = len(win_track)
        row = np.asarray(rows_l, np.int64).reshape(nW, T)
        mask = row >= 0
        loc = np.asarray(loc_l, float).reshape(nW, T, 2)
        # fill missing frames with the last localization (masked out anyway)
        loc = pd.DataFrame(loc.reshape(nW, -1).T).ffill().bfill().to_numpy().T.reshape(
            nW, T, 2) if nW else loc
        features, origin = tubelet_features(loc, mask)
        fr = np.asarray(win_f0, np.int64)[:, None] + np.arange(T)[None, :]
        fr = np.clip(fr, 0, frames.shape[0] - 1)
        off = np.arange(-h, h + 1)
        patches = np.zeros((nW, T, K, K), np.float32)
        for s in range(0, nW, self.batch_size):
            sl = slice(s, s + self.batch_size)
            m = mask[sl]
            ys = np.clip(origin[sl][..., 1, None] + off, 0, Hm - 1)  # (b, T, K)
            xs = np.clip(origin[sl][..., 0, None] + off, 0, Wm - 1)
            b = np.asarray(frames[fr[sl][..., None, None], ys[..., :, None], xs[..., None, :]])
            patches[sl] = adu_to_photons(b, camera) * m[..., None, None]
        units = fit_units(camera)
        inside = mask & (origin[..., 0] - h >= 0) & (origin[..., 0] + h < Wm) \
            & (origin[..., 1] - h >= 0) & (origin[..., 1] + h < Hm)
        corner = np.floor(loc[:, :1]) - h if nW else loc[:, :1]
        return {"patches": patches, "mask": mask, "features": features,
                "loc_px": (loc - corner).astype(np.float32), "row": row, "inside": inside,
                "fit_scale": units["qe"] / units["excess"], "read_var": units["read_var"],
                "track": np.asarray(win_track), "frame0": np.asarray(win_f0, np.int64)}

    def movie_tubelets(self, movie, tracks: pd.DataFrame, psf_sigma_nm: float,
                       track_col: str = C.TRACK_ID) -> dict:
        """:meth:`tubelets_from_movie` plus what every estimator reads per window: ``blur_R``
        and ``exposure_fraction`` (from the movie's exposure; ``None`` = continuous),
        ``psf_sigma_px``, ``frame_time_s`` and ``pixel_size_nm``; arguments as
        :meth:`estimate` (``tracks`` with a reset index)."""
        a, dt = float(movie.pixel_size_nm), float(movie.frame_time_s)
        f = 1.0 if movie.exposure_time_s is None else float(movie.exposure_time_s) / dt
        n_exp = int(np.clip(round(f * self.substeps), 1, self.substeps))
        R = substep_blur_coefficient(n_exp, self.substeps) if f > 0 else 0.0
        tub = self.tubelets_from_movie(movie.frames, movie.camera, tracks, a, track_col)
        nW = len(tub["track"])
        tub.update({"blur_R": np.full(nW, R, np.float32),
                    "exposure_fraction": np.full(nW, f, np.float32),
                    "psf_sigma_px": np.full(nW, psf_sigma_nm / a, np.float32),
                    "frame_time_s": np.full(nW, dt), "pixel_size_nm": np.full(nW, a)})
        return tub

    def estimate(self, movie, tracks: pd.DataFrame, psf_sigma_nm: float,
                 track_col: str = C.TRACK_ID) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Per-track and per-localization D.

        Args:
            movie: a :class:`smlmnet.data.contracts.Movie` (ADU with its camera; its
                ``exposure_time_s`` sets the exposure fraction, ``None`` = continuous over
                the whole frame). tracks: ``track_id``, ``frame``, ``x [nm]``, ``y [nm]``.
            psf_sigma_nm: the PSF σ of the microscope (nm).
        Returns:
            ``(per_track, per_localization)``: per track ``track_id``, ``n_points``,
            ``pixel D [um^2/s]`` and ``pixel D log-std`` (predicted std of ln D), with an
            α head also ``pixel alpha`` and ``pixel alpha std`` (windows of a track
            combined by inverse variance; ``pixel D`` is then K in µm²/s^α); the
            ``tracks`` table with ``pixel D [um^2/s]`` per localization added (the frame's
            estimate from its window; the index is reset).
        """
        tracks = tracks.reset_index(drop=True)
        a, dt = float(movie.pixel_size_nm), float(movie.frame_time_s)
        tub = self.movie_tubelets(movie, tracks, psf_sigma_nm, track_col)
        per_loc = tracks.copy()
        per_loc[PIXEL_D] = np.nan
        if len(tub["track"]) == 0:
            return pd.DataFrame(columns=[track_col, "n_points", PIXEL_D, PIXEL_D_LOG_STD]), \
                per_loc
        out = self.predict_tubelets(tub)
        labels, mu, lv = combine_log_estimates(out["log_d"], out["log_var"], tub["track"])
        per_track = pd.DataFrame({
            track_col: labels,
            "n_points": tracks.groupby(track_col, sort=True).size().loc[labels].to_numpy(),
            PIXEL_D: log_d_px_to_um2_s(mu, dt, a), PIXEL_D_LOG_STD: np.exp(0.5 * lv)})
        if "alpha" in out:   # networks with an α head; D is then K in µm²/s^α
            _, a_mu, a_lv = combine_log_estimates(out["alpha"], out["alpha_log_var"],
                                                  tub["track"])
            per_track[PIXEL_ALPHA] = a_mu
            per_track[PIXEL_ALPHA_STD] = np.exp(0.5 * a_lv)
        m = tub["row"] >= 0
        per_loc.loc[tub["row"][m], PIXEL_D] = log_d_px_to_um2_s(out["frame_log_d"][m], dt, a)
        return per_track, per_loc


def diffusivity_map(per_localization: pd.DataFrame, pixel_size_nm: float,
                    shape_hw: tuple[int, int], bin_px: int = 8) -> np.ndarray:
    """Median per-localization D (µm²/s) in square bins of ``bin_px`` camera pixels over the
    field of view (Pix2D's diffusivity map): ``(ceil(H/bin), ceil(W/bin))``, NaN where no
    localization has an estimate."""
    H, W = shape_hw
    ny, nx = -(-int(H) // bin_px), -(-int(W) // bin_px)
    out = np.full((ny, nx), np.nan)
    d = per_localization[PIXEL_D].to_numpy(float) if PIXEL_D in per_localization else []
    ok = np.isfinite(d)
    if not np.any(ok):
        return out
    px = per_localization[[C.X_NM, C.Y_NM]].to_numpy(float)[ok] / pixel_size_nm
    ix = np.clip((px[:, 0] // bin_px).astype(int), 0, nx - 1)
    iy = np.clip((px[:, 1] // bin_px).astype(int), 0, ny - 1)
    cell = pd.Series(np.log(d[ok])).groupby(iy * nx + ix).median()
    out.flat[cell.index.to_numpy()] = np.exp(cell.to_numpy())
    return out
