"""Objectives of the pixel-diffusion networks.

- :func:`gaussian_nll`: heteroscedastic Gaussian negative log-likelihood of ln D.
- :func:`supervised_loss`: per-track NLL of ln D_px + ``w_frame`` × per-frame NLL +
  ``w_s2`` × L1 of ln σ_loc² (+ ``w_alpha`` × NLL of α with an α head; labels from the
  simulator).
- :func:`physics_consistency_loss` (self-supervised, no labels): the predicted D and σ_loc
  must explain the molecule's observed displacements under the known blur — the exact
  Gaussian likelihood of the MA(1) displacement process of Brownian motion with localization
  noise and motion blur (the model of :class:`smlmnet.diffusion.estimators.MLE`, written
  here with a dense covariance so that it is differentiable and batched over tracks; it
  holds for α = 1 only).
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


def displacement_nll(log_d: torch.Tensor, log_s2: torch.Tensor, loc_px: torch.Tensor,
                     mask: torch.Tensor, blur_R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-track negative log-likelihood of the observed displacements (both dimensions).

    Per dimension the displacements Δ_n of a track are Gaussian with
    Var Δ = 2D(1 − 2R) + 2σ², Cov(Δ_n, Δ_{n+1}) = 2RD − σ², other covariances 0 (D in
    px²/frame, σ² in px², Δt = 1 frame).

    Args:
        log_d, log_s2: ``(B,)`` ln D_px and ln σ_loc². loc_px: ``(B, T, 2)``
        localizations (px). mask: ``(B, T)`` valid frames. blur_R: ``(B,)``.
    Returns:
        ``(nll, k)``: ``(B,)`` −log L of each track and ``(B,)`` its number of valid
        displacements (tracks with < 2 valid frames: 0 and 0).
    """
    B, T, _ = loc_px.shape
    if T < 2:
        return log_d * 0.0, log_d.new_zeros(B)
    step_ok = mask[:, 1:] & mask[:, :-1]  # (B, T-1)
    disp = (loc_px[:, 1:] - loc_px[:, :-1]) * step_ok[..., None]
    D, s2 = torch.exp(log_d.clamp(-12, 8)), torch.exp(log_s2.clamp(-16, 8))
    a = 2 * D * (1 - 2 * blur_R) + 2 * s2
    b = 2 * blur_R * D - s2
    n = T - 1
    eye = torch.eye(n, dtype=disp.dtype, device=disp.device)
    off = torch.diag(torch.ones(n - 1, dtype=disp.dtype, device=disp.device), 1)
    off = off + off.T
    pair = (step_ok[:, :, None] & step_ok[:, None, :]).to(disp.dtype)
    cov = (a[:, None, None] * eye + b[:, None, None] * off) * pair + eye * (1 - pair) * (
        1 - step_ok.to(disp.dtype))[:, :, None]
    chol = torch.linalg.cholesky(cov)
    z = torch.linalg.solve_triangular(chol, disp, upper=False)  # (B, n, 2)
    logdet = 2 * torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(1)  # masked rows: 0
    k = step_ok.sum(1).to(disp.dtype)
    return 0.5 * ((z**2).sum((1, 2)) + 2 * logdet + 2 * k * math.log(2 * math.pi)), k


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
