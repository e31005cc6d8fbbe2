"""A pixel-diffusion network behind a table interface: a movie and its tracks (physical
units) in, per-track and per-localization D out.

Each track is cut into windows of the network's ``frames`` consecutive frames (the last one
shorter; a missing frame inside a track is a masked frame); each window becomes a tubelet:
``K × K`` pixels of the movie, converted to photons with the movie's camera, around the pixel
holding each localization (edge pixels repeated at the border), with the localization
features and the normalization of training (:func:`~.targets.tubelet_features`,
:func:`~.targets.to_network_batch`). Windows of one track are combined by inverse variance.
Memory is bounded by ``batch_size`` tubelets at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from smlmnet.data import contracts as C
from smlmnet.data.camera import adu_to_photons
from smlmnet.diffusion.mivit.lightning import net_forward
from smlmnet.diffusion.mivit.targets import (
    log_d_px_to_um2_s,
    to_network_batch,
    tubelet_features,
)
from smlmnet.simulate.movie import substep_blur_coefficient

PIXEL_D = "pixel D [um^2/s]"
PIXEL_D_LOG_STD = "pixel D log-std"
PIXEL_ALPHA = "pixel alpha"
PIXEL_ALPHA_STD = "pixel alpha std"


def load_pixel_diffusion(folder, info: dict, device: str = "cpu",
                         **kwargs) -> PixelDiffusionEstimator:
    """Registry loader of kind ``pixel_diffusion``."""
    from smlmnet.models.registry import build_net, load_weights

    net = build_net(info["net"])
    net.load_state_dict(load_weights(Path(folder), info, device))
    return PixelDiffusionEstimator(net, info=info, device=device, **kwargs)


def combine_log_estimates(mu: np.ndarray, log_var: np.ndarray, groups: np.ndarray):
    """Inverse-variance mean of ln-estimates ``(n,)`` per group label ``(n,)``: returns
    ``(labels, mu, log_var)`` sorted by label."""
    labels, inv = np.unique(groups, return_inverse=True)
    w = np.exp(-np.clip(log_var, -8, 8))
    tot = np.bincount(inv, w, len(labels))
    return labels, np.bincount(inv, w * mu, len(labels)) / tot, -np.log(tot)


class PixelDiffusionEstimator:
    """Per-track and per-localization D from pixel tubelets with a trained network.

    Args:
        net: a network of :mod:`.net`. info: the model folder's ``model.yaml``. device:
            torch device. batch_size: tubelets per forward pass (bounds memory).
        substeps: sub-steps per frame used to turn the exposure fraction into the blur R
            (default: the model's training value).
    """

    def __init__(self, net, info: dict | None = None, device: str = "cpu",
                 batch_size: int = 128, substeps: int | None = None):
        self.net = net.to(device).eval()
        self.info = info or {}
        self.device = device
        self.batch_size = int(batch_size)
        cfg = net.config()
        self.frames = int(cfg.get("frames", 16))
        self.size = int(cfg["size"])
        ranges = self.info.get("training_ranges") or {}
        self.substeps = int(substeps or ranges.get("substeps", 8))

    @torch.no_grad()
    def predict_tubelets(self, sample: dict) -> dict[str, np.ndarray]:
        """Raw outputs for numpy tubelets (keys of :meth:`TubeletSimulator.sample` that
        :func:`~.targets.to_network_batch` reads), ``batch_size`` at a time: ``log_d``,
        ``log_var``, ``log_s2`` ``(B,)``, ``frame_log_d``, ``frame_log_var`` ``(B, T)``
        and, with an α head, ``alpha``, ``alpha_log_var`` ``(B,)``."""
        n = len(sample["mask"])
        parts = []
        for s in range(0, n, self.batch_size):
            chunk = {k: np.asarray(sample[k])[s:s + self.batch_size] for k in
                     ("patches", "mask", "features", "loc_px", "blur_R", "exposure_fraction",
                      "psf_sigma_px")}
            batch = {k: v.to(self.device) for k, v in to_network_batch(chunk).items()}
            out = net_forward(self.net, batch)
            parts.append({k: v.cpu().numpy() for k, v in out.items()})
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}

    def tubelets_from_movie(self, frames: np.ndarray, camera: dict, tracks: pd.DataFrame,
                            pixel_size_nm: float, track_col: str = C.TRACK_ID) -> dict:
        """Cut windows of ``frames`` frames of every track out of a movie.

        Returns numpy arrays ``patches`` ``(W, T, K, K)`` photons, ``mask``, ``features``,
        ``loc_px`` and per window ``track`` (id) and ``frame0``; plus ``row`` ``(W, T)``:
        the index in ``tracks`` of each masked-in frame (−1 elsewhere).
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
        corner = np.floor(loc[:, :1]) - h if nW else loc[:, :1]
        return {"patches": patches, "mask": mask, "features": features,
                "loc_px": (loc - corner).astype(np.float32), "row": row,
                "track": np.asarray(win_track), "frame0": np.asarray(win_f0, np.int64)}

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
        f = 1.0 if movie.exposure_time_s is None else float(movie.exposure_time_s) / dt
        n_exp = int(np.clip(round(f * self.substeps), 1, self.substeps))
        R = substep_blur_coefficient(n_exp, self.substeps) if f > 0 else 0.0
        tub = self.tubelets_from_movie(movie.frames, movie.camera, tracks, a, track_col)
        nW = len(tub["track"])
        per_loc = tracks.copy()
        per_loc[PIXEL_D] = np.nan
        if nW == 0:
            return pd.DataFrame(columns=[track_col, "n_points", PIXEL_D, PIXEL_D_LOG_STD]), \
                per_loc
        tub.update({"blur_R": np.full(nW, R, np.float32),
                    "exposure_fraction": np.full(nW, f, np.float32),
                    "psf_sigma_px": np.full(nW, psf_sigma_nm / a, np.float32)})
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
