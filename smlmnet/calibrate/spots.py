"""Spot statistics from σ-free MLE fits: PSF σ, photons, density, on-times.

Frames are converted to photo-electrons with the camera calibration and fitted with the
functions behind :class:`smlmnet.localize.SpotFitLocalizer` (band-pass detection, Poisson MLE
of a pixelated Gaussian whose σ is a free parameter), after removing each ROI's background
tilt. Units: σ in nm, photons per spot and frame, density in localizations per µm²
per frame, on-times in frames.

PSF σ and motion blur: a molecule moving during the exposure gives a wider spot, so the σ
distribution of all spots is skewed upwards. We therefore prefer *stationary* spots: bright,
isolated spots re-detected within ``stationary_px`` (0.5 px) in an adjacent frame; their σ is
the PSF σ (plus the blur of slow motion, ≲ 1 % for D·t_E ≪ σ²). The reported value is the
median σ of the chosen spots, its standard error 1.2533·(1.4826·MAD)/√n (the SE of a median
of a normal sample). When fewer than ``min_spots`` stationary spots exist, all bright
isolated spots are used and the value is an upper bound (``psf_sigma_selection`` says which).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from smlmnet.data import contracts as C
from smlmnet.data.contracts import Movie
from smlmnet.localize.base import camera_factors
from smlmnet.localize.detect import detect_spots, extract_rois
from smlmnet.localize.fit import fit_gaussian_mle


def _detilt(rois: np.ndarray) -> np.ndarray:
    """Remove the tilt of a background plane fitted to each ROI's border pixels, keeping its
    level at the ROI centre: the MLE model has a flat background, and a steep background
    gradient would otherwise be absorbed into a wider Gaussian. ``(n, s, s)`` → same."""
    n, s, _ = rois.shape
    yy, xx = np.mgrid[0:s, 0:s].astype(float) - (s - 1) / 2
    border = np.zeros((s, s), bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    X = np.stack([np.ones(border.sum()), xx[border], yy[border]], axis=1)
    coef, *_ = np.linalg.lstsq(X, rois[:, border].T.astype(float), rcond=None)
    tilt = coef[1][:, None, None] * xx[None] + coef[2][:, None, None] * yy[None]
    return rois - tilt


def localize_for_calibration(movie: Movie, sigma_guess_nm: float, threshold: float = 5.0,
                             batch_frames: int = 128) -> pd.DataFrame:
    """σ-free Poisson MLE localizations of ``movie`` (whose ``camera`` holds the calibration).

    The same steps as :class:`smlmnet.localize.SpotFitLocalizer` (``detect_spots``,
    ``extract_rois``, ``fit_gaussian_mle`` with σ free, the same camera conversion), with
    each ROI's background tilt removed first (:func:`_detilt`). Columns: ``frame``,
    ``x [nm]``, ``y [nm]``, ``photons [photon]``, ``bg [photon/px]``, ``sigma [nm]``,
    ``chi2``, ``crlb_sigma [nm]``.
    """
    a = movie.pixel_size_nm
    sigma_px = sigma_guess_nm / a
    half = max(2, int(np.ceil(3 * sigma_px)))
    cam = camera_factors(movie)
    tables = []
    for f0 in range(0, movie.n_frames, batch_frames):
        chunk = (np.asarray(movie.frames[f0:f0 + batch_frames], np.float32)
                 - cam["baseline"]) * cam["scale"]
        spots = detect_spots(chunk, sigma_px, threshold, 2)
        if not len(spots):
            continue
        rois, corners = extract_rois(chunk, spots, half)
        r = fit_gaussian_mle(_detilt(rois) / cam["excess"], sigma_px, fit_sigma=True,
                             read_var=cam["read_var"])
        sz = rois.shape[1]
        keep = ((r["x"] > 0) & (r["x"] < sz) & (r["y"] > 0) & (r["y"] < sz)
                & (r["photons"] > 0) & np.isfinite(r["crlb_x"]))
        k = cam["excess"] / cam["qe"]
        tables.append(pd.DataFrame({
            C.FRAME: (spots[:, 0] + f0).astype(np.int64),
            C.X_NM: (corners[:, 1] + r["x"]) * a, C.Y_NM: (corners[:, 0] + r["y"]) * a,
            C.PHOTONS: r["photons"] * k, "bg [photon/px]": r["bg"] * k,
            "sigma [nm]": r["sigma"] * a, "chi2": r["chi2"],
            "crlb_sigma [nm]": r["crlb_sigma"] * a,
        })[keep])
    if not tables:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == C.FRAME else "float64")
                             for c in (C.FRAME, C.X_NM, C.Y_NM, C.PHOTONS, "bg [photon/px]",
                                       "sigma [nm]", "chi2", "crlb_sigma [nm]")})
    return pd.concat(tables, ignore_index=True)


def _link_next(xy_px: np.ndarray, frames: np.ndarray, radius_px: float) -> np.ndarray:
    """For each localization the index of its mutual nearest neighbour in the next frame
    within ``radius_px`` (−1 if none)."""
    nxt = np.full(len(xy_px), -1, np.int64)
    if len(xy_px) == 0:
        return nxt
    by_frame = {f: np.flatnonzero(frames == f) for f in np.unique(frames)}
    for f, idx in by_frame.items():
        jdx = by_frame.get(f + 1)
        if jdx is None or len(jdx) == 0:
            continue
        ta, tb = cKDTree(xy_px[idx]), cKDTree(xy_px[jdx])
        d_ab, j_ab = tb.query(xy_px[idx], distance_upper_bound=radius_px)
        d_ba, i_ba = ta.query(xy_px[jdx], distance_upper_bound=radius_px)
        for a, (d, j) in enumerate(zip(d_ab, j_ab)):
            if np.isfinite(d) and i_ba[j] == a:
                nxt[idx[a]] = jdx[j]
    return nxt


def spot_statistics(locs: pd.DataFrame, movie_shape: tuple[int, int, int],
                    pixel_size_nm: float, sigma_guess_nm: float, snr_min: float = 10.0,
                    isolation_sigmas: float = 4.0, stationary_px: float = 0.5,
                    link_radius_px: float = 1.0, min_spots: int = 20,
                    max_chi2: float = 2.0) -> dict:
    """Summaries of a localization table (see the module docstring for the PSF σ choice).

    Returns a dict with ``psf_sigma_nm``, ``psf_sigma_se_nm``, ``psf_sigma_spread_nm``
    (1.4826·MAD), ``n_psf_spots``, ``n_psf_molecules``, ``psf_sigma_selection``,
    ``sigma_values_nm`` (the σ of the chosen spots, for the histogram),
    ``photons_percentiles`` (10/25/50/75/90 %),
    ``photons_values``, ``n_localizations``, ``density_per_um2_per_frame``,
    ``on_time_mean_frames``, ``n_runs`` and ``background_fit_photons_per_px`` (median of the
    fitted local backgrounds). Values are ``None`` where there are no data.
    """
    T, H, W = movie_shape
    a = pixel_size_nm
    out: dict = {"n_localizations": int(len(locs)), "psf_sigma_nm": None,
                 "psf_sigma_se_nm": None, "psf_sigma_spread_nm": None, "n_psf_spots": 0,
                 "n_psf_molecules": 0,
                 "psf_sigma_selection": "none", "sigma_values_nm": [],
                 "photons_percentiles": None, "photons_values": [],
                 "density_per_um2_per_frame": len(locs) / (T * H * W * (a / 1000) ** 2),
                 "on_time_mean_frames": None, "n_runs": 0,
                 "background_fit_photons_per_px": None}
    if len(locs) == 0:
        return out
    frames = locs[C.FRAME].to_numpy()
    xy = np.stack([locs[C.X_NM].to_numpy(), locs[C.Y_NM].to_numpy()], axis=1) / a
    photons = locs[C.PHOTONS].to_numpy()
    sig = locs["sigma [nm]"].to_numpy()
    bg = np.clip(locs["bg [photon/px]"].to_numpy(), 0, None)
    q = [10, 25, 50, 75, 90]
    out["photons_percentiles"] = dict(zip([f"p{v}" for v in q],
                                          np.percentile(photons, q).tolist()))
    out["photons_values"] = photons.tolist()
    out["background_fit_photons_per_px"] = float(np.median(bg))

    # on-times: runs of a spot re-detected within link_radius_px in consecutive frames
    nxt = _link_next(xy, frames, link_radius_px)
    has_prev = np.zeros(len(xy), bool)
    has_prev[nxt[nxt >= 0]] = True
    lengths = []
    run_id = np.full(len(xy), -1, np.int64)
    for r, start in enumerate(np.flatnonzero(~has_prev)):
        n, i = 1, start
        run_id[i] = r
        while nxt[i] >= 0:
            i = nxt[i]
            run_id[i] = r
            n += 1
        lengths.append(n)
    out["n_runs"] = len(lengths)
    out["on_time_mean_frames"] = float(np.mean(lengths)) if lengths else None

    # PSF σ: bright, isolated, fully inside, converged, stationary
    s_px = sigma_guess_nm / a
    snr = photons / np.sqrt(photons + 4 * np.pi * s_px**2 * bg)
    isolated = np.ones(len(xy), bool)
    for f in np.unique(frames):
        idx = np.flatnonzero(frames == f)
        if len(idx) > 1:
            d, _ = cKDTree(xy[idx]).query(xy[idx], k=2)
            isolated[idx] = d[:, 1] > max(isolation_sigmas * s_px, 3.0)
    margin = max(3.0 * s_px, 2.0)
    inside = ((xy[:, 0] > margin) & (xy[:, 0] < W - margin) & (xy[:, 1] > margin)
              & (xy[:, 1] < H - margin))
    chi2 = locs["chi2"].to_numpy()
    roi_half = max(2, int(np.ceil(3 * s_px)))
    # a σ at the fit's bounds (0.3 px, half the ROI) or a poor χ² means the model does not
    # describe the spot (neighbour, strong background gradient): not a PSF measurement
    at_bound = (sig / a < 0.35) | (sig / a > 0.9 * (2 * roi_half + 1) / 2)
    good = isolated & inside & np.isfinite(sig) & (chi2 < max_chi2) & ~at_bound
    bright = good & (snr >= snr_min)
    if bright.sum() < min_spots:  # the brightest good spots instead
        order = np.argsort(-np.where(good, snr, -np.inf))
        bright = np.zeros(len(xy), bool)
        bright[order[:min_spots]] = True
        bright &= good
    # stationary: re-detected within stationary_px in the previous or next frame
    step = np.full(len(xy), np.inf)
    linked = nxt >= 0
    d = np.linalg.norm(xy[nxt[linked]] - xy[linked], axis=1)
    step[linked] = d
    prev_step = np.full(len(xy), np.inf)
    prev_step[nxt[linked]] = d
    stationary = np.minimum(step, prev_step) < stationary_px
    chosen = bright & stationary
    if chosen.sum() >= min_spots:
        out["psf_sigma_selection"] = "bright isolated stationary spots"
    else:
        chosen = bright
        out["psf_sigma_selection"] = ("bright isolated spots (too few stationary ones: σ may "
                                      "be widened by motion blur, an upper bound)")
    if chosen.sum() == 0:
        out["psf_sigma_selection"] = "none"
        return out
    s = sig[chosen]
    med = float(np.median(s))
    spread = float(1.4826 * np.median(np.abs(s - med)))
    # repeated fits of one molecule share its local background and neighbourhood: the SE
    # counts molecules (runs), from the scatter of the per-run medians
    runs = run_id[chosen]
    per_run = np.array([np.median(s[runs == r]) for r in np.unique(runs)])
    run_spread = float(1.4826 * np.median(np.abs(per_run - np.median(per_run))))
    se = 1.2533 * max(run_spread, spread / np.sqrt(len(s) / len(per_run))) / np.sqrt(
        len(per_run))
    out.update({"psf_sigma_nm": med, "psf_sigma_spread_nm": spread,
                "psf_sigma_se_nm": float(se), "n_psf_spots": int(len(s)),
                "n_psf_molecules": int(len(per_run)), "sigma_values_nm": s.tolist()})
    return out
