"""The one optimizer recipe of every learned stage: AdamW with a step-based schedule."""

from __future__ import annotations

import math

import torch


def warmup_cosine_factor(step: int, total: int) -> float:
    """LR multiplier at optimizer ``step`` of ``total``: linear warm-up over 5 % of the steps,
    then cosine down to 5 % of the peak; past the planned end (a resumed run given more
    steps) it stays at the floor."""
    total = max(1, int(total))
    warm = max(1, total // 20)
    if step < warm:
        return (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total - warm))
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))


def adamw_warmup_cosine(module) -> dict:
    """``configure_optimizers`` of a LightningModule with ``hparams.lr`` and
    ``hparams.weight_decay``: the schedule runs over the run's total optimizer steps
    (``trainer.max_steps``, or epochs × batches), so it depends on steps, not on wall-clock
    time or hardware. Frozen parameters (``requires_grad`` False) are left out."""
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=module.hparams.lr,
                            weight_decay=module.hparams.weight_decay)
    total = int(module.trainer.estimated_stepping_batches)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine_factor(s, total))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
