"""D from a tubelet's pixels by the physics of motion blur: a classical pixel estimator.

A molecule that moves during the exposure leaves a spot wider than the PSF: for a spot fitted
with an isotropic pixel-integrated Gaussian, σ̂² − σ_PSF² ≈ z, the mean over both axes of the
*gyration* of the path within the exposure. For Brownian motion observed on ``n`` equally
spaced sub-positions of the exposure (sub-step variance ``v = 2·D_px/S`` per axis, ``S``
sub-steps per frame), z = v · Σ_k μ_k E_k with E_k ~ Exp(1) independent and μ_k the
eigenvalues of the centred random-walk quadratic form (:func:`gyration_eigenvalues`): a
hypoexponential variable whose scale is D and whose shape is fixed, so every frame carries
information on D of its own, beside the displacements between frames (about one unit of
Fisher information on ln D per displacement and, from a perfectly measured gyration of 8
sub-positions, about two per frame).

:class:`BlurLikelihoodEstimator` fits every frame of a tubelet
(:func:`smlmnet.localize.fit.fit_gaussian_mle`, σ free) and evaluates on a grid of ln D_px
the sum of

- the exact Gaussian likelihood of the tubelet's localizations' displacements with
  per-frame localization variance (the fit's Cramér–Rao bound) and the blur coefficient R
  (Berglund 2010; Vestergaard 2014): Var Δ = 2D(1 − 2R) + σ_t² + σ_{t+1}²,
  Cov(Δ_t, Δ_{t+1}) = 2RD − σ_{t+1}²;
- each frame's width likelihood: the hypoexponential density above convolved with the
  Gaussian error of σ̂² (the fit's bound), mixed with a small D-independent outlier term.

It returns the posterior mean and variance of ln D_px under a flat prior on ln D_px over
``log_d_px_range``: the same ``predict_tubelets`` contract as the pixel networks
(:class:`smlmnet.diffusion.mivit.infer.PixelDiffusionEstimator`), so a benchmark swaps them.
Only the localizations the tubelet is cut around, its pixels, the PSF σ and the exposure
fraction are used: no truth, no training. Units: pixels and frames (``D_px = D·Δt/a²``).

Assumptions (recorded in every report that uses it): Brownian motion; the PSF σ known
(calibrated) to about 2.5 % (one offset of σ² per tubelet, prior s.d. 5 %, is profiled out);
the isotropic Gaussian's σ̂² − σ_PSF² reads the path's gyration G. Checked on noise-free
renders of 8-point walks: within 4 % on average while G ≤ 2 σ_PSF² (with a shape scatter of
≈ 14 % of G that the model leaves out); beyond, the fit locks onto part of a long smear and
reads G low (median 0.5–0.9 G at G = 4–10 σ²), so D is read low when the blur is long
against the PSF (smlmnet's grid: D 5 µm²/s with continuous exposure, ln-D bias ≈ −0.15;
AnDi's narrow PSF: ≈ −0.3). Two remedies were tried and left out: a truncated readout with
a broken-readout density gave back as much as it won; dropping the widths where the track
says the blur is over 4 PSF variances helped with true positions but hurt with real
localizations on AnDi movies, whose track alone reads D high there. The σ² offset was added
after the first AnDi run (seeds 3201–3205) showed widths misleading at D 0.01 (σ²
calibrated ≈ 4 % below this fit's); seeds 3301–3303 are the held-out check.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erfcx

from smlmnet.diffusion.tubelets import TubeletDiffusionEstimator, um2_s_to_log_d_px
from smlmnet.localize.fit import fit_gaussian_mle, mortensen_sigma_px
from smlmnet.simulate.movie import substep_blur_coefficient

#: eigenvalues kept exactly in the hypoexponential; the rest are folded into a shift and the
#: Gaussian error (their share of the mean is < 3 % for any number of sub-positions)
MAX_EXACT_EIGENVALUES = 6


def gyration_eigenvalues(n_positions: int) -> np.ndarray:
    """Eigenvalues ``(n − 1,)`` (descending) of A with g = ξᵀAξ the per-axis gyration
    (1/n)·Σ_j (x_j − x̄)² of ``n`` positions of a random walk with unit-variance steps ξ.
    Their sum is (n² − 1)/(6n) (the mean gyration); ``n`` ≤ 1: empty (no blur)."""
    n = int(n_positions)
    if n <= 1:
        return np.zeros(0)
    L = np.tril(np.ones((n, n - 1)), k=-1)        # x_j = Σ_{i<j} ξ_i
    H = np.eye(n) - 1.0 / n
    return np.sort(np.linalg.eigvalsh(L.T @ H @ L / n))[::-1]


def _log_erfcx(u: np.ndarray) -> np.ndarray:
    """log erfcx(u), finite for any u (erfcx(u) → 2·exp(u²) as u → −∞)."""
    u = np.asarray(u, float)
    safe = np.maximum(u, -5.0)
    return np.where(u > -5.0, np.log(erfcx(safe)), np.log(2.0) + u * u)


def _hypoexp_weights(r: np.ndarray) -> np.ndarray:
    """w_k = Π_{j≠k} r_j/(r_j − r_k) ``(..., K)`` of a hypoexponential with distinct rates
    ``r`` ``(..., K)``: its density is Σ_k w_k r_k e^{−r_k x} (Σ_k w_k = 1)."""
    K = r.shape[-1]
    diff = r[..., None, :] - r[..., :, None]             # [k, j] = r_j − r_k
    eye = np.eye(K, dtype=bool)
    return np.prod(np.where(eye, 1.0, r[..., None, :] / np.where(eye, 1.0, diff)), axis=-1)


def _signed_logsumexp(log_abs: np.ndarray, sign: np.ndarray, floor: float = 1e-300):
    """log Σ_k sign_k·exp(log_abs_k) over the last axis, floored where it cancels to ≤ 0."""
    top = np.max(log_abs, axis=-1, keepdims=True)
    total = np.sum(sign * np.exp(log_abs - top), axis=-1)
    return top[..., 0] + np.log(np.maximum(total, floor))


def hypoexp_normal_logpdf(z: np.ndarray, means: np.ndarray, var: np.ndarray) -> np.ndarray:
    """log density at ``z`` of G + N(0, var), G = Σ_k means_k·E_k with E_k ~ Exp(1)
    independent (a hypoexponential variable).

    Args:
        z: observations, broadcastable against ``means[..., 0]`` and ``var``.
        means: ``(..., K)`` distinct positive component means (K ≥ 1).
        var: Gaussian variance (> 0).
    Each exponential component convolved with the Gaussian is an exponentially modified
    Gaussian, (r/2)·exp(−z²/2s²)·erfcx((r s² − z)/(√2 s)) (r = 1/mean); the signed sum over
    components is taken in log space, floored where it cancels (far below the mode).
    """
    z = np.asarray(z, float)[..., None]
    r = 1.0 / np.asarray(means, float)
    s2 = np.asarray(var, float)[..., None]
    w = _hypoexp_weights(r)
    log_terms = np.log(np.abs(w) * r / 2.0) + _log_erfcx((r * s2 - z) / np.sqrt(2.0 * s2))
    return -z[..., 0] ** 2 / (2.0 * s2[..., 0]) + _signed_logsumexp(log_terms, np.sign(w))


def width_loglik(z: np.ndarray, z_var: np.ndarray, d_px: np.ndarray, n_exposed: np.ndarray,
                 substeps: int, outlier_fraction: float, outlier_scale: np.ndarray,
                 offset_sd: np.ndarray | None = None) -> np.ndarray:
    """Log-likelihood ``(B, G)`` of the frames' width excesses for each D on the grid:
    z_t = G_t + δ + N(0, z_var) with G_t the hypoexponential gyration of
    :func:`gyration_eigenvalues`, mixed per frame with a D-independent Cauchy of weight
    ``outlier_fraction`` (failed fits), and δ ~ N(0, ``offset_sd``²) one offset shared by a
    tubelet's frames (the PSF σ² is known only so well: calibrated on other spots, with
    another fit). δ is profiled out per D: δ̂(D) is the precision-weighted mean of
    z_t − E[G | D] shrunk toward 0 by its prior (Gaussian approximation of G), and the
    likelihood is read at z − δ̂(D) with the prior's log density added.

    Args:
        z: ``(B, T)`` σ̂² − σ_PSF² (px²), NaN where a frame has no valid fit.
        z_var: ``(B, T)`` variance of σ̂² (px⁴). d_px: ``(G,)`` grid of D_px (px²/frame).
        n_exposed: ``(B,)`` sub-positions integrated per exposure (1: stroboscopic: no term).
        outlier_scale: ``(B,)`` Cauchy scale (px²) of the outlier density.
        offset_sd: ``(B,)`` s.d. of δ (px², > 0); None: no offset.
    """
    B, T = z.shape
    out = np.zeros((B, len(d_px)))
    valid = np.isfinite(z)
    zc = np.where(valid, z, 0.0)
    for n in np.unique(n_exposed):
        rows = np.nonzero(n_exposed == n)[0]
        mu = gyration_eigenvalues(int(n))
        if mu.size == 0:
            continue
        exact, rest = mu[:MAX_EXACT_EIGENVALUES], mu[MAX_EXACT_EIGENVALUES:]
        v = 2.0 * d_px / substeps                                          # (G,)
        means = v[:, None] * exact[None, :]                                # (G, K)
        shift = v * rest.sum()                                             # (G,)
        rest_var = v**2 * np.sum(rest**2)                                  # (G,) Var of Σ μE
        var = z_var[rows][:, None, :] + rest_var[None, :, None]            # (b, G, T)
        zr, ok = zc[rows][:, None, :], valid[rows][:, None, :]
        delta, log_prior = np.zeros((len(rows), len(d_px), 1)), 0.0
        if offset_sd is not None:
            # Var G = Σ means² (exponentials) + rest; E G = v·Σ μ
            w = np.where(ok, 1.0 / (var + (means**2).sum(-1)[None, :, None]), 0.0)
            resid = zr - (v * mu.sum())[None, :, None]
            tau2 = (np.asarray(offset_sd, float)[rows] ** 2)[:, None]        # (b, 1)
            delta = ((w * resid).sum(-1) / (w.sum(-1) + 1.0 / tau2))[..., None]
            log_prior = -0.5 * (delta[..., 0] ** 2 / tau2 + np.log(2 * np.pi * tau2))
        zn = zr - delta                                                    # (b, G, T)
        scale = outlier_scale[rows][:, None, None]
        cauchy = np.log(outlier_fraction / np.pi / scale) - np.log1p((zn / scale) ** 2)
        model = hypoexp_normal_logpdf(zn - shift[None, :, None], means[None, :, None, :], var)
        mixed = np.logaddexp(np.log1p(-outlier_fraction) + model, cauchy)
        out[rows] = np.sum(np.where(ok, mixed, 0.0), axis=-1) + log_prior
    return out


def track_loglik(pos: np.ndarray, pos_var: np.ndarray, valid: np.ndarray, d_px: np.ndarray,
                 R: np.ndarray) -> np.ndarray:
    """Exact Gaussian log-likelihood ``(B, G)`` of a track's displacements (both axes) for
    each D_px on the grid, with per-frame localization variance and blur coefficient R: the
    shared displacement model
    (:func:`smlmnet.diffusion.displacement_model.displacement_loglik`)
    evaluated in float64 without gradients.

    Args:
        pos: ``(B, T, 2)`` positions (px). pos_var: ``(B, T)`` localization variance per axis
            (px²). valid: ``(B, T)`` bool. d_px: ``(G,)``. R: ``(B,)`` blur coefficient.
    A displacement needs both of its frames; two displacements are correlated only when
    they share a frame (a gap splits the track into independent pieces).
    """
    import torch

    from smlmnet.diffusion.displacement_model import displacement_loglik

    f64 = lambda a: torch.tensor(np.asarray(a, np.float64))  # noqa: E731
    B = len(pos)
    with torch.no_grad():
        ll, _ = displacement_loglik(f64(np.broadcast_to(d_px, (B, len(d_px)))), f64(pos_var),
                                    f64(pos), torch.tensor(np.asarray(valid, bool)), f64(R))
    return ll.numpy()


class BlurLikelihoodEstimator(TubeletDiffusionEstimator):
    """Posterior of ln D_px from each tubelet's pixels: displacements + motion-blur widths.

    Args:
        substeps: motion sub-steps per frame of the blur model (the exposure fraction f
            integrates ``round(f·substeps)`` sub-positions). The default, 64, is continuous
            motion to within 0.4 % of the mean gyration (f ≥ 0.25): what a camera sees. A
            simulator's own number (smlmnet's tubelets: 8) makes the model exact for its
            movies; with 8 on continuous motion the widths would read D 2 % (f = 1) to 33 %
            (f = 0.25) high.
        log_d_px_range: flat prior on ln D_px (px²/frame), also the grid's span.
        grid_points: grid size over that range.
        outlier_fraction: weight of the D-independent (Cauchy) density in each frame's
            width likelihood (failed fits, neighbours).
        use_widths: False leaves the width term out (a pixel-fitted track MLE: the
            ablation that shows what the blur adds).
        max_offset_px: a frame whose fitted centre lies farther than this (or than 2σ̂)
            from the tubelet's localization (a neighbour, a failed fit) gives no width (px).
        max_width_noise: a frame whose spot is too dim for its width to be read, with a
            predicted relative precision of σ̂² (√2·σ_loc/σ_PSF, Mortensen's σ_loc from the
            fitted photons and background) above this, gives no width: there the fit is far
            from its Cramér–Rao bound and its σ̂ has heavy tails (set on a dim EMCCD probe,
            400 photons over 50/px: 0.35, widths hurt; the default microscope: 0.08).
        psf_var_uncertainty: relative s.d. of the PSF σ² the widths are measured against (a
            calibration from other spots and another fit: 0.05 = σ known to 2.5 %); one
            offset per tubelet is profiled out (:func:`width_loglik`), so blur smaller than
            that reads as no information rather than as D.
        positions: the track part's positions: ``given`` (the localizations the tubelet was
            cut around, with the fits' Cramér–Rao bound as their error) or ``fitted`` (the
            per-frame fits' own centres: immune to a localizer worse than its bound).
        frames: tubelet frames (windows of a track in :meth:`estimate`). size: patch side
            (px, odd) of the tubelets cut from a movie.
        batch_size: tubelets per chunk (bounds memory: chunk × grid × T² floats).
        prior_d_um2_s: ``(lo, hi)`` µm²/s: a log-uniform prior of D over this range instead
            of the flat prior over the whole grid, converted to ln D_px per tubelet with its
            ``frame_time_s`` and ``pixel_size_nm`` (keys of the sample; :meth:`estimate`
            adds them). A network's training range is the prior it learned, so this makes
            the estimator comparable to it (and a teacher for it, ``ssl distill``); an
            uninformative track then reads the middle of the range instead of sliding to
            the grid's edge. ``None``: flat over the grid.
    """

    def __init__(self, substeps: int = 64, log_d_px_range: tuple[float, float] = (-9.0, 5.0),
                 grid_points: int = 141, outlier_fraction: float = 0.02,
                 use_widths: bool = True, max_offset_px: float = 1.5,
                 max_width_noise: float = 0.2, psf_var_uncertainty: float = 0.05,
                 positions: str = "given", frames: int = 16,
                 size: int = 15, batch_size: int = 64,
                 prior_d_um2_s: tuple[float, float] | None = None):
        self.substeps = int(substeps)
        self.grid = np.linspace(*map(float, log_d_px_range), int(grid_points))
        self.outlier_fraction = float(outlier_fraction)
        self.use_widths = bool(use_widths)
        self.max_offset_px = float(max_offset_px)
        self.max_width_noise = float(max_width_noise)
        self.psf_var_uncertainty = float(psf_var_uncertainty)
        if positions not in ("given", "fitted"):
            raise ValueError(f"positions must be 'given' or 'fitted'; got {positions!r}")
        self.positions = positions
        self.frames = int(frames)
        self.size = int(size)
        self.batch_size = int(batch_size)
        self.prior_d_um2_s = (None if prior_d_um2_s is None
                              else tuple(float(v) for v in prior_d_um2_s))

    def assumptions(self) -> str:
        """One line for reports."""
        return (f"blur likelihood: Brownian, {self.substeps} motion sub-steps per frame, "
                "isotropic Gaussian fit per frame (σ free), σ̂² − σ_PSF² = path gyration + "
                f"fit error (its CRLB) + one offset per tubelet (s.d. "
                f"{self.psf_var_uncertainty:g} σ²), no widths from spots dimmer than "
                f"{self.max_width_noise:g} relative σ̂² precision, "
                + (f"flat prior on ln D over [{self.prior_d_um2_s[0]:g}, "
                   f"{self.prior_d_um2_s[1]:g}] µm²/s" if self.prior_d_um2_s else
                   f"flat prior on ln D_px over [{self.grid[0]:g}, {self.grid[-1]:g}]")
                + ", posterior mean"
                + ("" if self.use_widths else "; widths not used (track part only)")
            + ("; track of the fitted centres" if self.positions == "fitted" else ""))

    def fit_frames(self, patches: np.ndarray, mask: np.ndarray, loc_px: np.ndarray,
                   psf_sigma_px: np.ndarray, inside: np.ndarray | None = None,
                   fit_scale: np.ndarray | float = 1.0, read_var: float = 0.0) -> dict:
        """Fit every masked-in frame (isotropic Gaussian, σ free) to ``patches``·``fit_scale``
        (photons → Poisson-like units: QE/excess, ½ for an EMCCD's excess noise) with the
        read-noise variance ``read_var`` of those units, as the MLE localizer does.

        Returns ``pos`` ``(B, T, 2)``: the fitted centres in the tubelet's coordinates (those
        of ``loc_px``) and ``pos_ok`` ``(B, T)``: the fit converged within
        max(``max_offset_px``, 2σ̂) of the localization; ``pos_var`` ``(B, T)``: the
        localization variance per axis (px²), the fit's Cramér–Rao bound (the tubelet's
        median where a fit failed); ``z`` and ``z_var``
        ``(B, T)``: σ̂² − σ_PSF² and its variance, NaN where the width is not usable: the fit
        failed, its centre lies farther than max(``max_offset_px``, 2σ̂) from the
        localization (a neighbour, a failed fit), σ̂ fills the patch, the patch crosses
        the movie's border (``inside`` False) or the spot is too dim
        (``max_width_noise``).
        """
        B, T, K, _ = patches.shape
        mask = np.asarray(mask, bool)
        idx = np.nonzero(mask)
        sig = np.broadcast_to(np.asarray(psf_sigma_px, float).reshape(-1, 1), (B, T))[idx]
        scale = np.broadcast_to(np.asarray(fit_scale, float).reshape(-1, 1), (B, T))[idx]
        pos_var = np.full((B, T), np.nan)
        pos = np.zeros((B, T, 2))
        pos_ok = np.zeros((B, T), bool)
        z = np.full((B, T), np.nan)
        z_var = np.ones((B, T))
        if len(idx[0]):
            fit = {}
            # one fit per distinct PSF σ (the start value; σ is free)
            for s in np.unique(sig):
                sel = sig == s
                part = fit_gaussian_mle(patches[idx][sel] * scale[sel, None, None], float(s),
                                        fit_sigma=True, read_var=float(read_var))
                for k, v in part.items():
                    fit.setdefault(k, np.zeros(len(sig), np.asarray(v).dtype))[sel] = v
            origin = np.floor(loc_px[idx]) - K // 2        # patch corner, tubelet coords
            xy = origin + np.stack([fit["x"], fit["y"]], axis=1)
            # the Levenberg–Marquardt fit only ever accepts steps that raise the likelihood:
            # a fit that has not met the step tolerance (wide, flat spots: the longest blur)
            # is still usable, and dropping it would bias D low
            converged = np.isfinite(fit["crlb_sigma"]) & (fit["crlb_sigma"] > 0)
            offset = np.hypot(*(xy - loc_px[idx]).T)
            near = converged & (offset <= np.maximum(self.max_offset_px, 2 * fit["sigma"]))
            pos[idx] = xy
            crlb = 0.5 * (fit["crlb_x"] ** 2 + fit["crlb_y"] ** 2)
            # a fit whose own bound does not place the spot inside the patch (a flat,
            # diverged fit: seen at 400 photons on 6,000 background photons/px) locates
            # nothing: no position from it, and the tubelet's median variance instead
            located = converged & (crlb <= (K / 4.0) ** 2)
            good = near & located & (fit["sigma"] < 0.45 * K)
            if inside is not None:
                good &= np.asarray(inside, bool)[idx]
            # too dim for a width: the spot's predicted relative precision of σ̂², √2·σ_loc/σ
            # from its photons and background (not from σ̂, which grows with the blur)
            rel = np.sqrt(2.0) * mortensen_sigma_px(fit["photons"], fit["bg"], sig) / sig
            good &= rel <= self.max_width_noise
            pos_ok[idx] = near & located
            pos_var[idx] = np.where(located, crlb, np.nan)
            z[idx] = np.where(good, fit["sigma"] ** 2 - sig**2, np.nan)
            z_var[idx] = (2.0 * fit["sigma"] * fit["crlb_sigma"]) ** 2
        fallback = np.nanmedian(np.where(mask, pos_var, np.nan), axis=1, keepdims=True) \
            if np.isfinite(pos_var).any() else np.full((B, 1), np.nan)
        pos_var = np.where(np.isfinite(pos_var), pos_var, fallback)
        pos_var = np.where(np.isfinite(pos_var), pos_var, 0.1)   # no converged fit at all
        return {"pos": pos, "pos_ok": pos_ok, "pos_var": pos_var, "z": z,
                "z_var": np.nan_to_num(z_var, nan=1.0)}

    def loglik(self, sample: dict) -> np.ndarray:
        """``(B, G)`` log-likelihood of every tubelet of ``sample`` on :attr:`grid`."""
        patches = np.asarray(sample["patches"], float)[:, :self.frames]
        mask = np.asarray(sample["mask"], bool)[:, :self.frames]
        loc = np.asarray(sample["loc_px"], float)[:, :self.frames]
        B = len(mask)
        sigma = np.broadcast_to(np.asarray(sample["psf_sigma_px"], float).reshape(-1), (B,))
        f = np.broadcast_to(np.asarray(sample["exposure_fraction"], float).reshape(-1), (B,))
        S = self.substeps
        n_exp = np.where(f > 0, np.clip(np.rint(f * S), 1, S), 1).astype(int)
        R = np.array([substep_blur_coefficient(n, S) if fv > 0 else 0.0
                      for n, fv in zip(n_exp, f)])
        inside = sample.get("inside")
        if "fit_scale" in sample:
            scale = sample["fit_scale"]
        else:   # simulated tubelets: photons, with the EMCCD's excess noise when named
            scale = np.where(np.asarray(sample.get("camera", ["scmos"] * B)) == "emccd",
                             0.5, 1.0)
        fits = self.fit_frames(patches, mask, loc, sigma,
                               None if inside is None else np.asarray(inside)[:, :self.frames],
                               scale, float(sample.get("read_var", 0.0)))
        d_px = np.exp(self.grid)
        if self.positions == "fitted":
            ll = track_loglik(fits["pos"], fits["pos_var"], mask & fits["pos_ok"], d_px, R)
        else:
            ll = track_loglik(loc, fits["pos_var"], mask, d_px, R)
        if self.use_widths:
            ll = ll + width_loglik(fits["z"], fits["z_var"], d_px, n_exp, S,
                                   self.outlier_fraction, outlier_scale=sigma**2,
                                   offset_sd=self.psf_var_uncertainty * sigma**2
                                   if self.psf_var_uncertainty > 0 else None)
        return ll

    def log_prior(self, sample: dict) -> np.ndarray | float:
        """``(B, G)`` log prior on the grid (0 inside ``prior_d_um2_s`` converted per tubelet,
        −inf outside, at least the nearest grid point kept), or 0.0 (flat) when there is no
        prior range; a prior range needs ``frame_time_s`` and ``pixel_size_nm`` in the
        sample (a clear error otherwise)."""
        if self.prior_d_um2_s is None:
            return 0.0
        missing = [k for k in ("frame_time_s", "pixel_size_nm") if k not in sample]
        if missing:
            raise KeyError(f"prior_d_um2_s needs {missing} per tubelet to convert µm²/s to "
                           "px²/frame")
        lo, hi = (um2_s_to_log_d_px(d, sample["frame_time_s"], sample["pixel_size_nm"])
                  for d in self.prior_d_um2_s)
        half = 0.5 * (self.grid[1] - self.grid[0])
        inside = ((self.grid >= np.minimum(lo, self.grid[-1])[:, None] - half)
                  & (self.grid <= np.maximum(hi, self.grid[0])[:, None] + half))
        return np.where(inside, 0.0, -np.inf)

    def posterior_moments(self, loglik: np.ndarray, log_prior=0.0) -> tuple:
        """Posterior mean and variance ``(B,)`` of ln D_px from a log-likelihood ``(B, G)``
        tabulated on the grid, times ``exp(log_prior)`` (``(B, G)`` or a scalar)."""
        lp = loglik + log_prior
        post = np.exp(lp - lp.max(axis=1, keepdims=True))
        post /= post.sum(axis=1, keepdims=True)
        mean = post @ self.grid
        return mean, np.maximum(post @ self.grid**2 - mean**2, 0.0)

    def predict_tubelets(self, sample: dict) -> dict[str, np.ndarray]:
        """``log_d`` (posterior mean of ln D_px) and ``log_var`` (its posterior variance),
        ``(B,)`` each, and ``frame_log_d`` ``(B, T)`` (the tubelet's value in each frame),
        ``batch_size`` tubelets at a time; the keys read are ``patches`` (photons), ``mask``,
        ``loc_px``, ``psf_sigma_px``, ``exposure_fraction`` and, when present, ``inside``
        (``(B, T)``: the patch lies inside the movie), ``fit_scale`` and ``read_var`` (the
        camera, :meth:`fit_frames`) or ``camera`` (model names of simulated tubelets), and
        ``frame_time_s`` / ``pixel_size_nm`` for a prior range (:meth:`log_prior`)."""
        n = len(sample["mask"])
        mean, var = np.zeros(n), np.zeros(n)
        for s in range(0, n, self.batch_size):
            sl = slice(s, s + self.batch_size)
            chunk = {k: (np.asarray(sample[k])[sl] if np.ndim(sample[k]) else sample[k])
                     for k in ("patches", "mask", "loc_px", "psf_sigma_px",
                               "exposure_fraction", "inside", "fit_scale", "read_var",
                               "camera") if k in sample}
            mean[sl], var[sl] = self.posterior_moments(
                self.loglik(chunk), self.log_prior({k: np.asarray(sample[k])[sl] for k in
                                                    ("frame_time_s", "pixel_size_nm")
                                                    if k in sample}))
        T = np.shape(sample["mask"])[1]
        return {"log_d": mean, "log_var": np.log(np.maximum(var, 1e-12)),
                "frame_log_d": np.repeat(mean[:, None], T, axis=1)}
