"""DECODE's loss: count term + Gaussian-mixture localization term + background MSE.

For a frame with E true emitters u_e = (x, y, N) and predicted maps (per pixel k: p_k,
μ_k = (j + 0.5 + Δx, i + 0.5 + Δy, N_k), σ_k):

- count: −log 𝒩(E; Σp, Σp(1 − p))  (the Poisson–binomial count, Gaussian approximation);
- localization: −Σ_e log Σ_k (p_k / Σp) Π_d 𝒩(u_e,d; μ_k,d, σ_k,d), photons compared in the
  network's photon code space (``DecodeNet.encode_photons``: N/photon_scale, or log(N/s));
- background: mean squared error of the background map in units of the middle frame's
  normalization scale (``input_scale``, or the robust noise scale s).
"""

from __future__ import annotations

import math

import torch


def decode_loss(out: dict[str, torch.Tensor], emitters: torch.Tensor, mask: torch.Tensor,
                background: torch.Tensor, encode_photons,
                bg_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """Loss terms averaged over the batch.

    Args:
        out: network maps ``(B, H, W)`` (including ``n_code``, ``n_code_sigma``,
            ``norm_scale``).
        emitters: ``(B, M, 3)`` true x, y (continuous px) and photons of the middle frame
            (in the input's units).
        mask: ``(B, M)`` which rows are real emitters.
        background: ``(B, H, W)`` true expected background (input units).
        encode_photons: ``(photons (B, M), scale (B, 1)) → code (B, M)``, the network's
            :meth:`~smlmnet.localize.decode.net.DecodeNet.encode_photons`.
    """
    B, H, W = out["p"].shape
    p = out["p"].reshape(B, -1)
    p_sum = p.sum(1)
    var = (p * (1 - p)).sum(1) + 1e-3
    count = mask.sum(1).to(p.dtype)
    count_loss = 0.5 * (count - p_sum) ** 2 / var + 0.5 * torch.log(2 * math.pi * var)

    dev = p.device
    jj = torch.arange(W, device=dev, dtype=p.dtype) + 0.5
    ii = torch.arange(H, device=dev, dtype=p.dtype) + 0.5
    mu_x = (jj[None, None, :] + out["dx"]).reshape(B, 1, -1)
    mu_y = (ii[None, :, None] + out["dy"]).reshape(B, 1, -1)
    mu_n = out["n_code"].reshape(B, 1, -1)
    sx = out["sigma_x"].reshape(B, 1, -1)
    sy = out["sigma_y"].reshape(B, 1, -1)
    sn = out["n_code_sigma"].reshape(B, 1, -1)
    scale = out["norm_scale"][:, :1, 0]  # (B, 1): one scale per window
    ex, ey = emitters[..., 0:1], emitters[..., 1:2]
    en = encode_photons(emitters[..., 2], scale)[..., None]

    def log_normal(u, mu, s):
        return -0.5 * ((u - mu) / s) ** 2 - torch.log(s) - 0.5 * math.log(2 * math.pi)

    log_comp = log_normal(ex, mu_x, sx) + log_normal(ey, mu_y, sy) + log_normal(en, mu_n, sn)
    log_w = torch.log(p / p_sum[:, None].clamp_min(1e-6) + 1e-12)[:, None, :]
    gmm = torch.logsumexp(log_comp + log_w, dim=2)  # (B, M)
    loc_loss = -(gmm * mask).sum(1)

    bg_loss = ((out["background"] - background) / out["norm_scale"]).pow(2).mean(dim=(1, 2))
    total = count_loss + loc_loss + bg_weight * bg_loss
    return {"loss": total.mean(), "count": count_loss.mean(), "localization": loc_loss.mean(),
            "background": bg_loss.mean()}
