"""Per-track diffusion estimators for 2D Brownian motion with localization error and blur.

Every estimator shares the interface ``estimate(tracks, frame_time_s, blur_R) -> DataFrame``
with one row per track: ``track_id``, ``n_points``, ``D [um^2/s]``, ``sigma [nm]`` (estimated
localization error; for the α fit: ``alpha`` and ``K [um^2/s^alpha]``). Tracks may skip frames:
only displacements between consecutive frames (and pairs exactly n frames apart for the MSD)
are used. Positions come in nm (``x [nm]``, ``y [nm]``).

Theory (d = 2, per dimension, σ² localization variance, R blur coefficient):
E[Δ²] = 2DΔt(1 − 2R) + 2σ², E[Δ_n Δ_{n+1}] = 2RDΔt − σ², other covariances 0.

- :class:`MSDFit`: time-averaged MSD fitted with the optimal number of points (Michalet 2010,
  Michalet & Berglund 2012), iterated to a fixed point.
- :class:`CVE`: covariance-based estimator (Vestergaard, Blainey & Flyvbjerg 2014).
- :class:`MLE`: exact Gaussian maximum likelihood of the MA(1) displacement process
  (Berglund 2010), evaluated in O(N log N) with the sine transform that diagonalizes the
  tridiagonal Toeplitz covariance; σ known or estimated jointly.
- :class:`LogLogMSD`: α and K from a log–log fit of the TAMSD (the AnDi baseline).
"""

from __future__ import annotations

import abc

import numpy as np
import pandas as pd
import scipy.fft
from scipy.optimize import minimize

from smlmnet.data import contracts as C
from smlmnet.diffusion.msd import time_averaged_msd

D_COL = C.D_UM2_S
SIGMA_COL = "sigma [nm]"


def _tracks(tracks: pd.DataFrame, track_col: str = C.TRACK_ID):
    missing = [c for c in (track_col, C.FRAME, C.X_NM, C.Y_NM) if c not in tracks.columns]
    if missing:
        raise ValueError(f"track table lacks column(s) {missing}")
    for tid, g in tracks.sort_values([track_col, C.FRAME]).groupby(track_col, sort=True):
        frames = g[C.FRAME].to_numpy(np.int64)
        if np.any(np.diff(frames) == 0):
            raise ValueError(f"track {tid} has two positions in one frame")
        yield tid, frames, g[[C.X_NM, C.Y_NM]].to_numpy(float) / 1000.0  # µm


def consecutive_displacements(frames: np.ndarray, xy_um: np.ndarray) -> list[np.ndarray]:
    """Runs of displacements between consecutive frames: list of ``(n_i, 2)`` arrays (µm)."""
    breaks = np.flatnonzero(np.diff(frames) != 1) + 1
    runs = []
    for seg_f, seg_x in zip(np.split(frames, breaks), np.split(xy_um, breaks)):
        if len(seg_f) >= 2:
            runs.append(np.diff(seg_x, axis=0))
    return runs


class DiffusionEstimator(abc.ABC):
    """Estimates diffusion parameters of every track in a table."""

    name = "estimator"
    min_points = 3

    def estimate(self, tracks: pd.DataFrame, frame_time_s: float, blur_R: float = 0.0,
                 track_col: str = C.TRACK_ID) -> pd.DataFrame:
        if not frame_time_s > 0:
            raise ValueError(f"frame_time_s must be > 0; got {frame_time_s}")
        if not 0 <= blur_R <= 0.25:
            raise ValueError(f"blur coefficient R must lie in [0, 1/4]; got {blur_R}")
        rows = []
        for tid, frames, xy in _tracks(tracks, track_col):
            res = {track_col: tid, "n_points": len(frames)}
            if len(frames) >= self.min_points:
                res.update(self.estimate_track(frames, xy, frame_time_s, blur_R))
            rows.append(res)
        return pd.DataFrame(rows)

    @abc.abstractmethod
    def estimate_track(self, frames, xy_um, dt, R) -> dict:
        """Estimates for one track (frames 0-based ints, positions in µm)."""


def _ols(x, y, w=None):
    A = np.column_stack([x, np.ones_like(x)])
    if w is not None:
        A, y = A * w[:, None], y * w
    (slope, intercept), *_ = np.linalg.lstsq(A, y, rcond=None)
    return slope, intercept


class MSDFit(DiffusionEstimator):
    """D and σ from a linear fit of the TAMSD over the optimal number of lags (Michalet).

    With x = σ²/(DΔt) − 2R and N points, the slope is fitted on
    p = f·L/(f³ + L³)^{1/3} lags with f = 2 + 1.35·x^0.6, L = 0.8 + 0.564·N, starting from
    p = 2 and iterating until p is stable.
    """

    name = "msd"

    def __init__(self, max_iterations: int = 10) -> None:
        self.max_iterations = max_iterations

    def estimate_track(self, frames, xy, dt, R) -> dict:
        n = int(frames[-1] - frames[0] + 1)
        # p = f·L/(f³ + L³)^{1/3} < L = 0.8 + 0.564·N: no larger lag is ever fitted
        max_lag = int(np.clip(np.ceil(0.8 + 0.564 * len(frames)), 2, max(2, n - 1)))
        msd, npairs = time_averaged_msd(frames, xy, max_lag)
        valid = np.isfinite(msd)
        p, D, s2 = 2, np.nan, np.nan
        for _ in range(self.max_iterations):
            lags = np.arange(1, p + 1)
            ok = valid[:p]
            if ok.sum() < 2:
                break
            slope, intercept = _ols(lags[ok] * dt, msd[:p][ok])
            D = slope / 4.0
            s2 = intercept / 4.0 + 2 * R * D * dt
            x = max(s2 / (D * dt) - 2 * R, 0.0) if D > 0 else 10.0
            f = 2 + 1.35 * x**0.6
            L = 0.8 + 0.564 * len(frames)
            p_new = int(np.clip(round(f * L / (f**3 + L**3) ** (1 / 3)), 2, max_lag))
            if p_new == p:
                break
            p = p_new
        return {D_COL: D, SIGMA_COL: np.sqrt(s2) * 1000 if s2 >= 0 else np.nan, "n_lags_fit": p}


class CVE(DiffusionEstimator):
    """Covariance-based estimator: D̂ = ⟨Δ²⟩/2Δt + ⟨Δ_nΔ_{n+1}⟩/Δt,
    σ̂² = R⟨Δ²⟩ + (2R − 1)⟨Δ_nΔ_{n+1}⟩, averaged over x and y."""

    name = "cve"

    def estimate_track(self, frames, xy, dt, R) -> dict:
        D, sigma_nm, _ = cve_estimate(consecutive_displacements(frames, xy), dt, R)
        return {D_COL: D, SIGMA_COL: sigma_nm}


def cve_estimate(runs: list[np.ndarray], dt: float, R: float) -> tuple[float, float, int]:
    """The CVE formula, the one implementation of the package (per track in :class:`CVE`,
    pooled over tracks in :func:`ensemble_cve`): from displacement runs (µm),
    D̂ = ⟨Δ²⟩/2Δt + ⟨Δ_nΔ_{n+1}⟩/Δt and σ̂² = R⟨Δ²⟩ + (2R − 1)⟨Δ_nΔ_{n+1}⟩, the moments
    averaged over every displacement (and consecutive pair) of every run and over x and y.

    Returns:
        ``(D [µm²/s], σ [nm], number of displacements)``; NaNs where there is no pair of
        consecutive displacements (σ̂² < 0 gives σ = NaN).
    """
    sq = [r**2 for r in runs]
    prods = [r[1:] * r[:-1] for r in runs if len(r) >= 2]
    n = int(sum(len(q) for q in sq))
    if n == 0 or not prods:
        return np.nan, np.nan, n
    m2 = np.concatenate(sq).mean()
    m11 = np.concatenate(prods).mean()
    D = m2 / (2 * dt) + m11 / dt
    s2 = R * m2 + (2 * R - 1) * m11
    return float(D), float(np.sqrt(s2) * 1000) if s2 >= 0 else np.nan, n


def ma1_negloglik(D, s2, dt, R, spectra) -> float:
    """−log L of MA(1) displacement runs; ``spectra`` = (cos_k, y_k² summed over dims, d)
    concatenated over all runs of a track."""
    cos_k, y2, d = spectra
    a = 2 * D * dt * (1 - 2 * R) + 2 * s2
    b = 2 * R * D * dt - s2
    lam = a + 2 * b * cos_k
    if np.any(lam <= 0):
        return np.inf
    return 0.5 * (d * np.sum(np.log(2 * np.pi * lam)) + np.sum(y2 / lam))


def ma1_spectra(runs: list[np.ndarray]):
    """Sine-transform each displacement run (the DST-I diagonalizes the tridiagonal Toeplitz
    covariance of a run); returns the concatenated (cos_k, Σ_dims y_k², d)."""
    cos_parts, y2_parts = [], []
    for r in runs:
        n = len(r)
        k = np.arange(1, n + 1)
        y = scipy.fft.dst(r, type=1, axis=0, norm="ortho")
        cos_parts.append(np.cos(np.pi * k / (n + 1)))
        y2_parts.append(np.sum(y**2, axis=1))
    return np.concatenate(cos_parts), np.concatenate(y2_parts), runs[0].shape[1]


class MLE(DiffusionEstimator):
    """Maximum likelihood D (and σ) for Brownian motion with localization noise and blur.

    Args:
        sigma_nm: known localization error (nm); ``None`` estimates it jointly.
    """

    name = "mle"

    def __init__(self, sigma_nm: float | None = None) -> None:
        self.sigma_nm = sigma_nm

    def estimate_track(self, frames, xy, dt, R) -> dict:
        runs = consecutive_displacements(frames, xy)
        if sum(len(r) for r in runs) < 2:
            return {D_COL: np.nan, SIGMA_COL: np.nan}
        spectra = ma1_spectra(runs)
        cve = CVE().estimate_track(frames, xy, dt, R)
        m2 = np.mean(np.concatenate([r**2 for r in runs]))
        D0 = cve[D_COL] if np.isfinite(cve[D_COL]) and cve[D_COL] > 0 else m2 / (4 * dt)
        D0 = max(D0, 1e-6 * m2 / dt + 1e-12)
        if self.sigma_nm is not None:
            s2 = (self.sigma_nm / 1000.0) ** 2
            res = minimize(lambda p: ma1_negloglik(np.exp(p[0]), s2, dt, R, spectra),
                           [np.log(D0)], method="Nelder-Mead",
                           options={"xatol": 1e-6, "fatol": 1e-9})
            return {D_COL: float(np.exp(res.x[0])), SIGMA_COL: self.sigma_nm}
        s0 = cve[SIGMA_COL] / 1000 if np.isfinite(cve[SIGMA_COL]) else np.sqrt(m2) / 4
        s0 = max(s0, 1e-4 * np.sqrt(m2) + 1e-9)
        starts = [(np.log(D0), 2 * np.log(s0)), (np.log(D0), 2 * np.log(np.sqrt(m2) / 3))]
        best = None
        for start in starts:
            res = minimize(lambda p: ma1_negloglik(np.exp(p[0]), np.exp(p[1]), dt, R, spectra),
                           start, method="Nelder-Mead",
                           options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 2000})
            if best is None or res.fun < best.fun:
                best = res
        return {D_COL: float(np.exp(best.x[0])), SIGMA_COL: float(np.exp(best.x[1] / 2)) * 1000}


class LogLogMSD(DiffusionEstimator):
    """α and K from an OLS fit of log TAMSD vs log τ over lags 1..max_lag (≤ N/2)."""

    name = "msd_loglog"

    def __init__(self, max_lag: int = 10) -> None:
        self.max_lag = max_lag

    def estimate_track(self, frames, xy, dt, R) -> dict:
        span = int(frames[-1] - frames[0])
        max_lag = int(max(2, min(self.max_lag, span // 2 if span >= 4 else span)))
        msd, _ = time_averaged_msd(frames, xy, max_lag)
        lags = np.arange(1, max_lag + 1) * dt
        ok = np.isfinite(msd) & (msd > 0)
        if ok.sum() < 2:
            return {C.ALPHA: np.nan, "K [um^2/s^alpha]": np.nan}
        alpha, logc = _ols(np.log(lags[ok]), np.log(msd[ok]))
        return {C.ALPHA: float(alpha), "K [um^2/s^alpha]": float(np.exp(logc) / 4)}


class DiffusionTensor(DiffusionEstimator):
    """Anisotropic 2D diffusion tensor with the CVE noise/blur correction per component:
    D_ij = ⟨Δ_iΔ_j⟩/2Δt + (⟨Δ_i,nΔ_j,n+1⟩ + ⟨Δ_j,nΔ_i,n+1⟩)/2Δt; returns D_xx, D_yy, D_xy,
    the principal values and the major-axis angle (degrees)."""

    name = "tensor"

    def estimate_track(self, frames, xy, dt, R) -> dict:
        runs = consecutive_displacements(frames, xy)
        if not runs:
            return {}
        d = np.concatenate(runs)
        lag1 = [(r[:-1], r[1:]) for r in runs if len(r) >= 2]
        m = d.T @ d / len(d)
        if lag1:
            a = np.concatenate([p for p, _ in lag1])
            b = np.concatenate([q for _, q in lag1])
            c = a.T @ b / len(a)
            m = m + c + c.T
        D = m / (2 * dt)
        w, v = np.linalg.eigh(D)
        angle = float(np.degrees(np.arctan2(v[1, 1], v[0, 1])) % 180)
        return {"D_xx [um^2/s]": D[0, 0], "D_yy [um^2/s]": D[1, 1], "D_xy [um^2/s]": D[0, 1],
                "D_major [um^2/s]": w[1], "D_minor [um^2/s]": w[0], "angle [deg]": angle}


ESTIMATORS = {"msd": MSDFit, "cve": CVE, "mle": MLE, "msd_loglog": LogLogMSD,
              "tensor": DiffusionTensor}


def diffusion_table(tracks: pd.DataFrame, frame_time_s: float, blur_R: float = 0.0,
                    methods=("msd", "cve", "mle", "msd_loglog"),
                    track_col: str = C.TRACK_ID) -> pd.DataFrame:
    """One row per track with the results of several estimators side by side
    (columns prefixed by the method name, e.g. ``mle D [um^2/s]``)."""
    out = None
    for name in methods:
        est = ESTIMATORS[name]() if isinstance(name, str) else name
        res = est.estimate(tracks, frame_time_s, blur_R, track_col)
        res = res.rename(columns={c: f"{est.name} {c}" for c in res.columns
                                  if c not in (track_col, "n_points")})
        out = res if out is None else out.merge(res.drop(columns="n_points"), on=track_col)
    return out


def crlb_relative_std_D(n_steps, eps=0.0, dims: int = 2, sigma_known: bool = False):
    """Cramér–Rao bound on std(D̂)/D from ``n_steps`` displacements (Vestergaard 2014):
    2/(Nd) without noise; σ known: (2/(Nd))(1+2ε)^{3/2}/(1+ε); σ estimated:
    (2/(Nd))(1 + 2√(1+2ε)); ε = σ²/(DΔt) − 2R."""
    n_steps = np.asarray(n_steps, float)
    eps = np.asarray(eps, float)
    base = 2.0 / (n_steps * dims)
    if sigma_known:
        return np.sqrt(base * (1 + 2 * eps) ** 1.5 / (1 + eps))
    return np.sqrt(base * (1 + 2 * np.sqrt(1 + 2 * eps)))


def ensemble_cve(tracks: pd.DataFrame, frame_time_s: float, blur_R: float = 0.0,
                 track_col: str = C.TRACK_ID) -> dict[str, float]:
    """Population D and σ from the CVE moments pooled over all tracks (each displacement and
    each pair of consecutive displacements counts once), for a homogeneous population
    (:func:`cve_estimate` on the runs of every track)."""
    runs = [r for _, frames, xy in _tracks(tracks, track_col)
            for r in consecutive_displacements(frames, xy)]
    D, sigma_nm, n = cve_estimate(runs, frame_time_s, blur_R)
    if not np.isfinite(D):
        n = 0
    return {"D [um^2/s]": D, "sigma [nm]": sigma_nm, "n_displacements": n}
