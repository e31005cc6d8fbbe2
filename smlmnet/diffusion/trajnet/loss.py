"""Training objective of :class:`~smlmnet.diffusion.trajnet.net.TrajectoryNet`."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def changepoint_target(cp: torch.Tensor, length: int, halfwidth: int = 1) -> torch.Tensor:
    """``(B, length)`` float: 1 within ±``halfwidth`` steps of each trajectory's changepoint
    (``cp`` ``(B,)``, −1 for none), else 0."""
    i = torch.arange(length, device=cp.device)[None, :]
    return (((i - cp[:, None]).abs() <= halfwidth) & (cp[:, None] >= 0)).float()


def multi_changepoint_target(step_cp: torch.Tensor, halfwidth: int = 1) -> torch.Tensor:
    """``(B, L)`` float: 1 within ±``halfwidth`` steps of every changepoint step (``step_cp``
    ``(B, L)``, 1 at the first step of each new segment), else 0."""
    x = step_cp.float()[:, None]
    return F.max_pool1d(x, 2 * halfwidth + 1, stride=1, padding=halfwidth)[:, 0]


def _masked_l1(pred, target, ok):
    return F.l1_loss(pred[ok], target[ok]) if ok.any() else pred.sum() * 0.0


def trajectory_loss(out: dict[str, torch.Tensor], alpha: torch.Tensor, model: torch.Tensor,
                    log_k: torch.Tensor, w_model: float = 0.5, w_k: float = 0.2,
                    batch: dict | None = None, w_step: float = 0.5, w_step_k: float = 0.1,
                    w_cp: float = 0.5, cp_pos_weight: float = 10.0,
                    w_state: float = 0.5, state_weights=None) -> dict[str, torch.Tensor]:
    """Loss terms for a batch.

    Per trajectory (rows with a finite α / model ≥ 0 / finite ln K only):
    - ``alpha``: L1 between predicted and true α (AnDi 1 task 1 scores the MAE);
    - ``model``: cross-entropy of the model logits (task 2);
    - ``log_k``: L1 of ln K (predicted ln K = ``log_k_rel + log_s2``, units of the input).
    Per step, when the network has per-step outputs and ``batch`` holds ``mask``,
    ``step_alpha``, ``step_log_k`` and ``cp``: L1 of the step α (weight ``w_step``) and of
    the step ln K (``w_step_k``) over valid steps, and a BCE of the changepoint logit against
    :func:`changepoint_target` (positives up-weighted by ``cp_pos_weight``; weight ``w_cp``),
    or :func:`multi_changepoint_target` of ``batch["step_cp"]`` ``(B, L)`` when the batch has
    several changepoints per track (AnDi 2). With state logits and ``batch["step_state"]``
    ``(B, L)`` int64 (−1: unknown): cross-entropy of the per-step state (weight ``w_state``;
    ``state_weights``: optional per-class weights, e.g. to up-weight the rare confined steps).
    ``loss`` = sum of the weighted terms. Inputs ``(B,)`` (``model`` int64).
    """
    ok_a = torch.isfinite(alpha)
    l_alpha = _masked_l1(out["alpha"], alpha, ok_a)
    ok_m = model >= 0
    l_model = (F.cross_entropy(out["model_logits"][ok_m], model[ok_m]) if ok_m.any()
               else out["model_logits"].sum() * 0.0)
    ok = torch.isfinite(log_k)
    l_k = _masked_l1(out["log_k_rel"] + out["log_s2"], log_k, ok)
    terms = {"alpha_l1": l_alpha, "model_ce": l_model, "log_k_l1": l_k}
    loss = l_alpha + w_model * l_model + w_k * l_k
    if "step_alpha" in out and batch is not None and "step_alpha" in batch:
        m = batch["mask"]
        l_sa = _masked_l1(out["step_alpha"], batch["step_alpha"], m)
        sk = out["step_log_k_rel"] + out["log_s2"][:, None]
        l_sk = _masked_l1(sk, batch["step_log_k"], m & torch.isfinite(batch["step_log_k"]))
        target = (multi_changepoint_target(batch["step_cp"]) if "step_cp" in batch
                  else changepoint_target(batch["cp"], m.shape[1]))
        bce = F.binary_cross_entropy_with_logits(
            out["step_cp_logit"], target, reduction="none",
            pos_weight=torch.tensor(cp_pos_weight, device=target.device))
        l_cp = (bce * m).sum() / m.sum().clamp(min=1)
        terms.update({"step_alpha_l1": l_sa, "step_log_k_l1": l_sk, "cp_bce": l_cp})
        loss = loss + w_step * l_sa + w_step_k * l_sk + w_cp * l_cp
        if "step_state_logits" in out and "step_state" in batch:
            ok_s = m & (batch["step_state"] >= 0)
            logits = out["step_state_logits"]
            cw = (None if state_weights is None else
                  torch.as_tensor(state_weights, dtype=logits.dtype, device=logits.device))
            l_st = (F.cross_entropy(logits[ok_s], batch["step_state"][ok_s], weight=cw)
                    if ok_s.any() else logits.sum() * 0.0)
            terms["state_ce"] = l_st
            loss = loss + w_state * l_st
    return {"loss": loss, **terms}
