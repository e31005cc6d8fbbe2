"""Training objective of :class:`~smlmnet.diffusion.trajnet.net.TrajectoryNet`."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def trajectory_loss(out: dict[str, torch.Tensor], alpha: torch.Tensor, model: torch.Tensor,
                    log_k: torch.Tensor, w_model: float = 0.5,
                    w_k: float = 0.2) -> dict[str, torch.Tensor]:
    """Loss terms for a batch.

    - ``alpha``: L1 between predicted and true α (AnDi 1 task 1 scores the MAE);
    - ``model``: cross-entropy of the model logits (task 2);
    - ``log_k``: L1 of ln K (predicted ln K = ``log_k_rel + log_s2``, units of the input) on
      trajectories where K is defined (finite ``log_k``), 0 when none is.
    ``loss`` = alpha + w_model·model + w_k·log_k. All inputs ``(B,)`` (``model`` int64).
    """
    l_alpha = F.l1_loss(out["alpha"], alpha)
    l_model = F.cross_entropy(out["model_logits"], model)
    ok = torch.isfinite(log_k)
    pred_k = out["log_k_rel"] + out["log_s2"]
    l_k = (F.l1_loss(pred_k[ok], log_k[ok]) if ok.any()
           else out["log_k_rel"].sum() * 0.0)
    return {"loss": l_alpha + w_model * l_model + w_k * l_k, "alpha_l1": l_alpha,
            "model_ce": l_model, "log_k_l1": l_k}
