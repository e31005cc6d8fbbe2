"""Objectives of the pixel-diffusion networks.

- :func:`gaussian_nll`: heteroscedastic Gaussian negative log-likelihood of ln D.
- :func:`supervised_loss`: per-track NLL of ln D_px + ``w_frame`` × per-frame NLL +
  ``w_s2`` × L1 of ln σ_loc² (+ ``w_alpha`` × NLL of α with an α head; labels from the
  simulator).
- :func:`physics_consistency_loss` (self-supervised, no labels): the predicted D and σ_loc
  must explain the molecule's observed displacements under the known blur — the exact
  Gaussian likelihood of the MA(1) displacement process of Brownian motion with localization
  noise and motion blur (the model of :class:`smlmnet.diffusion.estimators.MLE`, which
  diagonalizes it spectrally for one σ per track; here
  :func:`smlmnet.diffusion.displacement_model.displacement_loglik`, which the blur
  likelihood's track part calls too; it holds for α = 1 only).
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

import numpy as np
import torch
import torch.nn.functional as F

from smlmnet.diffusion.displacement_model import displacement_loglik


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


def posterior_distillation_loss(out: dict, post_mean: torch.Tensor,
                                post_var: torch.Tensor) -> torch.Tensor:
    """Expected Gaussian NLL of the network's ln D prediction under a teacher posterior.

    E_p[½(log s² + (y − μ)²/s²)] for y ~ p = N(``post_mean``, ``post_var``) is
    ½(log s² + ((m − μ)² + v)/s²): minimized at μ = m, s² = v, i.e. the student copies the
    teacher's mean and its uncertainty.

    Args:
        out: the network's outputs (``log_d`` ``(B,)`` ln D_px and ``log_var`` ``(B,)``).
        post_mean, post_var: ``(B,)`` teacher posterior mean and variance of ln D_px.
    Returns:
        scalar: the mean over tubelets.
    """
    lv = out["log_var"].clamp(-8.0, 8.0)
    return (0.5 * (lv + ((post_mean - out["log_d"]) ** 2 + post_var) * torch.exp(-lv))).mean()
