"""The Gaussian displacement model of 2D Brownian motion with localization noise and motion
blur (MA(1) per axis), solved by the tridiagonal recursion: one implementation, in torch so
that it is differentiable, used by the pixel networks' physics loss and by the classical blur
likelihood (which evaluates it in float64 without gradients). The classical per-track
:class:`smlmnet.diffusion.estimators.MLE` diagonalizes the same model spectrally (one σ per
track, constant spacing)."""

from __future__ import annotations

import math

import torch


def displacement_loglik(D: torch.Tensor, s2: torch.Tensor, loc_px: torch.Tensor,
                        mask: torch.Tensor, blur_R: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact Gaussian log-likelihood of a track's displacements (both axes): the one
    implementation of the displacement model that the physics-consistency loss
    (:func:`smlmnet.diffusion.mivit.loss.displacement_nll`) and the blur likelihood
    (:func:`smlmnet.diffusion.blur_likelihood.track_loglik`) share.

    Per axis, with D in px²/frame, Δt = 1 frame and σ_t² the localization variance of frame
    t: Var Δ_t = 2D(1 − 2R) + σ_t² + σ_{t+1}², Cov(Δ_t, Δ_{t+1}) = 2RD − σ_{t+1}², other
    covariances 0. A displacement needs both of its frames; two displacements are correlated
    only when both are valid (a gap splits the track into independent pieces).

    Args:
        D: ``(B,)`` or ``(B, G)`` (a grid of G values per track) diffusion coefficient
            (px²/frame). s2: ``(B,)`` (one per track) or ``(B, T)`` (per frame) variance
            (px²). loc_px: ``(B, T, 2)``. mask: ``(B, T)`` valid frames. blur_R: ``(B,)``.
    Returns:
        ``(loglik, k)``: log L of shape ``D.shape`` and ``(B,)`` the number of valid
        displacements (tracks with < 2 valid frames: 0 and 0).
    """
    B, T, _ = loc_px.shape
    if T < 2:
        return D * 0.0, D.new_zeros(B)
    grid = D.dim() == 2
    Dg = D if grid else D[:, None]                                     # (B, G)
    s2 = s2[:, None].expand(B, T) if s2.dim() == 1 else s2
    step_ok = mask[:, 1:] & mask[:, :-1]                               # (B, n)
    ok = step_ok.to(loc_px.dtype)
    disp = (loc_px[:, 1:] - loc_px[:, :-1]) * ok[..., None]           # (B, n, 2)
    s2 = s2 * mask.to(s2.dtype)
    R = blur_R[:, None, None]
    diag = 2 * Dg[..., None] * (1 - 2 * R) + (s2[:, :-1] + s2[:, 1:])[:, None, :]
    diag = torch.where(step_ok[:, None, :], diag, torch.ones_like(diag))   # (B, G, n)
    pair = (step_ok[:, :-1] & step_ok[:, 1:])[:, None, :]
    off = torch.where(pair, 2 * R * Dg[..., None] - s2[:, None, 1:-1],
                      torch.zeros((), dtype=diag.dtype))              # (B, G, n − 1)
    # the covariance is tridiagonal: LDLᵀ by the recursion d_t = a_t − b_{t−1}²/d_{t−1},
    # forward substitution y_t = x_t − (b_{t−1}/d_{t−1}) y_{t−1}; log det = Σ log d_t,
    # quadratic form = Σ y_t²/d_t (O(n) per track and grid value, differentiable)
    x = disp[:, None]                                                  # (B, 1, n, 2)
    d_prev, y_prev = diag[..., 0], x[..., 0, :].expand(*diag.shape[:2], 2)
    logdet, quad = torch.log(d_prev), (y_prev**2).sum(-1) / d_prev
    for t in range(1, diag.shape[-1]):
        lt = off[..., t - 1] / d_prev
        # exact arithmetic keeps d_t in (0, a_t]; the floor guards round-off when σ² ≫ D
        d_prev = torch.maximum(diag[..., t] - lt * off[..., t - 1], 1e-9 * diag[..., t])
        y_prev = x[..., t, :] - lt[..., None] * y_prev
        logdet = logdet + torch.log(d_prev)
        quad = quad + (y_prev**2).sum(-1) / d_prev
    k = ok.sum(1)
    ll = -0.5 * (quad + 2 * logdet + 2 * k[:, None] * math.log(2 * math.pi))
    return (ll if grid else ll[:, 0]), k
