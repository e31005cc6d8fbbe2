"""Objectives of the pixel-diffusion networks.

- :func:`gaussian_nll`: heteroscedastic Gaussian negative log-likelihood of ln D.
- :func:`supervised_loss`: per-track NLL of ln D_px + ``w_frame`` × per-frame NLL +
  ``w_s2`` × L1 of ln σ_loc² (+ ``w_alpha`` × NLL of α with an α head; labels from the
  simulator).
- :func:`physics_consistency_loss` (self-supervised, no labels): the predicted D and σ_loc
  must explain the molecule's observed displacements under the known blur — the exact
  Gaussian likelihood of the MA(1) displacement process of Brownian motion with localization
  noise and motion blur (the model of :class:`smlmnet.diffusion.estimators.MLE`, which
  diagonalizes it spectrally for one σ per track; here :func:`displacement_loglik` solves
  its tridiagonal covariance by recursion, so that it is differentiable, batched over tracks
  and over a grid of D, and takes one σ per frame — the blur likelihood's track part calls
  it too; it holds for α = 1 only).
  Scored on the displacements the network *saw*, its minimizer is each track's own MLE, so
  it pulls a network towards the noisier per-track MLE on short tracks;
  :func:`heldout_split` gives the held-out version: the network sees one half of each
  track's frames and is scored on the displacements of the other half (Noise2Self-style), so
  its minimizer is the best prediction of unseen steps, not a copy of the seen ones.
- :func:`posterior_distillation_loss` (self-supervised, no labels): a physics *teacher* —
  the motion-blur likelihood of :class:`smlmnet.diffusion.blur_likelihood.
  BlurLikelihoodEstimator`, which reads each unlabeled tubelet's displacements *and* the
  widths of its blurred spots — gives a posterior of ln D (mean, variance); the network's
  Gaussian prediction is fitted to it by the expected NLL under that posterior (KL from
  teacher to student up to a constant). No label enters: the teacher is exact physics with
  the camera fitted per frame.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def gaussian_nll(mu: torch.Tensor, log_var: torch.Tensor, target: torch.Tensor,
                 weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ½(log σ² + (y − μ)²/σ²) over entries (weighted by ``weight`` if given);
    ``log_var`` is clamped to [−8, 8] for stability."""
    lv = log_var.clamp(-8.0, 8.0)
    nll = 0.5 * (lv + (target - mu) ** 2 * torch.exp(-lv))
    if weight is None:
        return nll.mean()
    return (nll * weight).sum() / weight.sum().clamp(min=1)


def supervised_loss(out: dict, batch: dict, w_frame: float = 0.3, w_s2: float = 0.1,
                    w_alpha: float = 1.0) -> dict[str, torch.Tensor]:
    """Loss terms: ``nll`` (track ln D_px), ``frame_nll`` (every valid frame against the
    track's ln D_px), ``s2_l1`` (ln σ_loc²), ``abs_err`` (|Δ ln D|, monitored) and ``loss``;
    for a network with an α head and a batch with α labels also ``alpha_nll`` (weight
    ``w_alpha``) and ``alpha_abs_err`` (|Δα|, monitored: the AnDi MAE)."""
    y = batch["log_d"]
    nll = gaussian_nll(out["log_d"], out["log_var"], y)
    m = batch["mask"].float()
    frame = gaussian_nll(out["frame_log_d"], out["frame_log_var"], y[:, None].expand_as(m), m)
    s2 = F.l1_loss(out["log_s2"], batch["log_s2"])
    terms = {"loss": nll + w_frame * frame + w_s2 * s2, "nll": nll, "frame_nll": frame,
             "s2_l1": s2, "abs_err": (out["log_d"] - y).abs().mean()}
    if "alpha" in out and "alpha" in batch:
        a_nll = gaussian_nll(out["alpha"], out["alpha_log_var"], batch["alpha"])
        terms.update(loss=terms["loss"] + w_alpha * a_nll, alpha_nll=a_nll,
                     alpha_abs_err=(out["alpha"] - batch["alpha"]).abs().mean())
    return terms


def displacement_loglik(D: torch.Tensor, s2: torch.Tensor, loc_px: torch.Tensor,
                        mask: torch.Tensor, blur_R: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact Gaussian log-likelihood of a track's displacements (both axes): the one
    implementation of the displacement model that the physics-consistency loss and the
    blur likelihood (:func:`smlmnet.diffusion.blur_likelihood.track_loglik`) share.

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


def displacement_nll(log_d: torch.Tensor, log_s2: torch.Tensor, loc_px: torch.Tensor,
                     mask: torch.Tensor, blur_R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-track negative log-likelihood of the observed displacements (both dimensions)
    under one ln D_px and one ln σ_loc² per track (:func:`displacement_loglik`, clamped to
    ln D ∈ [−12, 8], ln σ² ∈ [−16, 8] for stability).

    Args:
        log_d, log_s2: ``(B,)``. loc_px: ``(B, T, 2)`` localizations (px). mask: ``(B, T)``
        valid frames. blur_R: ``(B,)``.
    Returns:
        ``(nll, k)``: ``(B,)`` −log L of each track and ``(B,)`` its number of valid
        displacements (tracks with < 2 valid frames: 0 and 0).
    """
    ll, k = displacement_loglik(torch.exp(log_d.clamp(-12, 8)),
                                torch.exp(log_s2.clamp(-16, 8)), loc_px, mask, blur_R)
    return -ll, k


def heldout_split(mask, rng: np.random.Generator, min_seen: int = 4):
    """Split each tubelet's valid frames into a *seen* and a *held-out* half.

    Args:
        mask: ``(B, T)`` bool valid frames. rng: draws which half is seen (first or last,
            50 %). min_seen: tubelets whose seen half would have fewer valid frames are
            dropped (``use`` False).
    Returns:
        ``(seen, held, use)``: ``(B, T)`` bool masks (disjoint, seen ∪ held = mask) and
        ``(B,)`` bool. The held-out displacements are those between consecutive held-out
        frames, so no displacement the network saw is scored.
    """
    mask = np.asarray(mask, bool)
    rank = np.cumsum(mask, axis=1) - 1                 # index of each valid frame
    n = mask.sum(1)
    half = (n + 1) // 2
    first = (rank < half[:, None]) & mask
    take_first = rng.random(mask.shape[0]) < 0.5
    seen = np.where(take_first[:, None], first, mask & ~first)
    held = mask & ~seen
    return seen, held, seen.sum(1) >= min_seen


def physics_consistency_loss(log_d: torch.Tensor, log_s2: torch.Tensor, loc_px: torch.Tensor,
                             mask: torch.Tensor, blur_R: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood per displacement coordinate of the observed localizations
    under the predicted D and σ_loc (:func:`displacement_nll`; shapes there): −log L summed
    over tracks and dimensions / number of displacement coordinates (tracks with < 2 valid
    frames contribute nothing)."""
    nll, k = displacement_nll(log_d, log_s2, loc_px, mask, blur_R)
    return nll.sum() / (2 * k.sum()).clamp(min=1)


def posterior_distillation_loss(out: dict, post_mean: torch.Tensor, post_var: torch.Tensor,
                                weight: torch.Tensor | None = None) -> torch.Tensor:
    """Expected Gaussian NLL of the network's ln D prediction under a teacher posterior.

    E_p[½(log s² + (y − μ)²/s²)] for y ~ p = N(``post_mean``, ``post_var``) is
    ½(log s² + ((m − μ)² + v)/s²): minimized at μ = m, s² = ((m − μ)² + v), i.e. the student
    copies the teacher's mean and learns its uncertainty.

    Args:
        out: the network's outputs (``log_d`` ``(B,)`` ln D_px and ``log_var`` ``(B,)``).
        post_mean, post_var: ``(B,)`` teacher posterior mean and variance of ln D_px.
        weight: optional ``(B,)`` non-negative weights (e.g. 0 where the teacher failed).
    Returns:
        scalar: the weighted mean over tubelets.
    """
    lv = out["log_var"].clamp(-8.0, 8.0)
    nll = 0.5 * (lv + ((post_mean - out["log_d"]) ** 2 + post_var) * torch.exp(-lv))
    if weight is None:
        return nll.mean()
    return (nll * weight).sum() / weight.sum().clamp(min=1e-12)
