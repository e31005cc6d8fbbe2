"""Training objective of the transformer linker (pure functions of net outputs and labels)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from smlmnet.link.transformer.net import edge_log_probs


def linking_loss(out: dict[str, torch.Tensor], parent: torch.Tensor, bce_weight: float = 0.1,
                 pos_weight: float = 2.0) -> dict[str, torch.Tensor]:
    """Cross-entropies of the parental and child softmaxes plus a weighted BCE on the raw
    edge logits.

    Args:
        out: :meth:`LinkerNet.forward` output. parent: ``(T,)`` index of each token's true
            parent in the batch (−1: none). A true parent that is not a candidate edge counts
            as "no parent", the only right choice the net has.
        bce_weight: weight of the BCE term; pos_weight: up-weighting of true edges in it.

    Returns:
        ``loss`` and its terms ``parent_ce``, ``child_ce``, ``bce``, and ``edge_accuracy``:
        share of tokens whose most probable parent option (an edge or none) is right.
    """
    T = parent.shape[0]
    i, j = out["edge_index"].unbind(1)
    logit = out["edge_logit"]
    label = parent[j] == i                                     # (E,) true edges
    lp = edge_log_probs(out, T)
    # log-probability of the right option of every token: its true edge, else "none"
    right_p = -lp["lse_parent"]
    right_p = right_p.index_put((j[label],), lp["log_parent"][label])
    right_c = -lp["lse_child"]
    right_c = right_c.index_put((i[label],), lp["log_child"][label])
    ce_p, ce_c = -right_p.mean(), -right_c.mean()
    if logit.numel():
        bce = F.binary_cross_entropy_with_logits(
            logit, label.float(), pos_weight=torch.tensor(pos_weight, device=logit.device))
        best = torch.full((T,), 0.0, device=logit.device).scatter_reduce(
            0, j, logit.detach(), reduce="amax", include_self=True)  # none has logit 0
        ok_edge = torch.zeros(T, dtype=torch.bool, device=logit.device)
        ok_edge[j[label]] = logit.detach()[label] >= best[j[label]]
        has = torch.zeros(T, dtype=torch.bool, device=logit.device)
        has[j[label]] = True
        acc = torch.where(has, ok_edge, best <= 0).float().mean()
    else:
        bce = logit.new_zeros(())
        acc = torch.ones((), device=parent.device)
    return {"loss": ce_p + ce_c + bce_weight * bce, "parent_ce": ce_p, "child_ce": ce_c,
            "bce": bce, "edge_accuracy": acc}
