"""Trajectory network: 2D displacement sequences → α, K and motion model, pure ``nn.Module``.

Architecture (in the spirit of STEP, Requena et al. 2023, and the AnDi 1 conv/recurrent
entries; written from their papers, not their code):

1. **Scale-invariant input.** Each trajectory's displacements ``(L, 2)`` are divided by their
   RMS per component, s = √(Σ|Δ|² / (2n)) over the n valid steps. Features per step:
   Δx/s, Δy/s, |Δ|/s and log(|Δ|/s + 10⁻³). Nothing the network sees depends on the length
   unit, so it works in nm, µm or AnDi's unit step.
2. **Local features.** A 1D conv stem and residual conv blocks (kernel 5, per-position
   LayerNorm, GELU) at full resolution, then ``n_down`` stride-2 stages that halve the length
   and widen the channels.
3. **Context.** A small transformer encoder (sinusoidal positions, key-padding mask) over the
   downsampled tokens.
4. **Per-trajectory heads** on the masked mean and max of the tokens and log n: α = 2·sigmoid
   (range 0–2), u = log(K_frame / s²) and the logits of the five AnDi 1 models
   (ATTM, CTRW, fBM, LW, SBM).

**Masking, not truncation.** Padded steps (``mask`` False) are zeroed after every layer, the
sequence is padded internally to a multiple of 2^n_down with zeros, convolutions see zeros
beyond the valid end exactly as for the unpadded sequence, attention ignores padded keys and
pooling ignores padded tokens: a padded batch gives the same outputs as each trajectory alone
(up to float round-off). Padding goes after each row's last valid step. Masked steps inside a
row are missing frames (their two displacements are unknown): they are zeroed the same way, so
the time grid stays regular, and training drops frames like this (see :mod:`.targets`).

Shapes: ``disp`` ``(B, L, 2)`` float displacements (any length unit, one frame apart),
``mask`` ``(B, L)`` bool. Outputs (dict): ``alpha`` ``(B,)``, ``log_k_rel`` ``(B,)``
(= log(K·Δt^α / s²) with K from MSD = 4Kτ^α), ``log_s2`` ``(B,)`` (log s², input units²),
``model_logits`` ``(B, n_models)``. log K in input units²/frame^α = ``log_k_rel + log_s2``.

Per-step outputs (``per_step=True``): the transformer tokens are repeated back to every step,
merged with the full-resolution conv features and decoded by a residual block into
``step_alpha`` ``(B, L)``, ``step_log_k_rel`` ``(B, L)`` (log K of the segment holding the
step, relative to s² like ``log_k_rel``) and ``step_cp_logit`` ``(B, L)`` (logit of "a new
segment starts within ±1 step of this displacement"; changepoints by peak picking, :mod:`.infer`).
With ``n_states`` > 0 also ``step_state_logits`` ``(B, L, n_states)`` (AnDi 2 states
immobile/confined/free/directed); ``n_states`` = 0 (AnDi 1 models) leaves the network as before.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

N_FEATURES = 4


class ChannelNorm(nn.Module):
    """LayerNorm over channels of ``(B, C, L)`` (each position on its own)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x):
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class ResBlock(nn.Module):
    """x + conv(gelu(norm(conv(gelu(norm(x)))))), re-masked; kernel 5, ``dilation``."""

    def __init__(self, channels: int, dilation: int = 1):
        super().__init__()
        pad = 2 * dilation
        self.n1, self.n2 = ChannelNorm(channels), ChannelNorm(channels)
        self.c1 = nn.Conv1d(channels, channels, 5, padding=pad, dilation=dilation)
        self.c2 = nn.Conv1d(channels, channels, 5, padding=pad, dilation=dilation)

    def forward(self, x, m):
        h = self.c1(F.gelu(self.n1(x)) * m)
        h = self.c2(F.gelu(self.n2(h)) * m)
        return (x + h) * m


def sinusoidal(length: int, dim: int, device) -> torch.Tensor:
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    i = torch.arange(0, dim, 2, device=device, dtype=torch.float32)
    freq = torch.exp(-math.log(10000.0) * i / dim)
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe


class TrajectoryNet(nn.Module):
    """Per-trajectory α, K and AnDi 1 model from 2D displacements (see module docstring).

    Args:
        width: channels at full resolution (doubled at each downsampling, capped at
            ``max_width``).
        blocks: residual blocks per resolution.
        n_down: stride-2 stages (tokens for the transformer = ⌈L / 2^n_down⌉).
        layers, heads: transformer encoder depth and heads (``layers=0``: no transformer).
        n_models: classes of the model head (5 AnDi 1 models).
        dropout: in the transformer.
        per_step: per-step heads (α, K, changepoint). n_states: per-step state classes (0: none).
    """

    def __init__(self, width: int = 32, max_width: int = 96, blocks: int = 1, n_down: int = 2,
                 layers: int = 2, heads: int = 4, n_models: int = 5, dropout: float = 0.0,
                 per_step: bool = False, n_states: int = 0):
        super().__init__()
        self.width, self.max_width, self.blocks, self.n_down = width, max_width, blocks, n_down
        self.layers, self.heads, self.n_models, self.dropout = layers, heads, n_models, dropout
        self.per_step = bool(per_step)
        self.n_states = int(n_states) if self.per_step else 0
        self.stem = nn.Conv1d(N_FEATURES, width, 5, padding=2)
        self.stages = nn.ModuleList()
        self.downs = nn.ModuleList()
        c = width
        for level in range(n_down + 1):
            self.stages.append(nn.ModuleList([ResBlock(c, dilation=2 ** (b % 3))
                                              for b in range(blocks)]))
            if level < n_down:
                c_next = min(2 * c, max_width)
                self.downs.append(nn.Conv1d(c, c_next, 2, stride=2))
                c = c_next
        self.channels = c
        if layers > 0:
            layer = nn.TransformerEncoderLayer(c, heads, 2 * c, dropout, batch_first=True,
                                               activation="gelu", norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        else:
            self.encoder = None
        self.trunk = nn.Sequential(nn.Linear(2 * c + 1, 2 * c), nn.GELU(),
                                   nn.Linear(2 * c, 2 * c), nn.GELU())
        self.alpha_head = nn.Linear(2 * c, 1)
        self.k_head = nn.Linear(2 * c, 1)
        self.model_head = nn.Linear(2 * c, n_models)
        if self.per_step:
            # tokens upsampled back to every step, merged with the full-resolution features
            self.step_merge = nn.Conv1d(c + width, width, 5, padding=2)
            self.step_block = ResBlock(width, dilation=1)
            # α, log K rel, changepoint logit (+ state logits)
            self.step_head = nn.Conv1d(width, 3 + self.n_states, 1)

    def config(self) -> dict:
        """Constructor arguments (rebuild the network from a checkpoint or model folder)."""
        return {"width": self.width, "max_width": self.max_width, "blocks": self.blocks,
                "n_down": self.n_down, "layers": self.layers, "heads": self.heads,
                "n_models": self.n_models, "dropout": self.dropout, "per_step": self.per_step,
                **({"n_states": self.n_states} if self.n_states else {})}

    @staticmethod
    def features(disp: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale-free features ``(B, 4, L)`` and log s² ``(B,)`` (s: RMS step per component)."""
        m = mask.to(disp.dtype)
        n = m.sum(1).clamp(min=1)
        s2 = ((disp ** 2).sum(-1) * m).sum(1) / (2 * n)
        s2 = s2.clamp(min=torch.finfo(disp.dtype).tiny * 1e6)
        d = disp / s2.sqrt()[:, None, None]
        r = d.norm(dim=-1)
        feats = torch.stack([d[..., 0], d[..., 1], r, torch.log(r + 1e-3)], 1) * m[:, None]
        return feats, torch.log(s2)

    def forward(self, disp: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        B, L, _ = disp.shape
        mult = 2 ** self.n_down
        pad = (-L) % mult
        if pad:
            disp = F.pad(disp, (0, 0, 0, pad))
            mask = F.pad(mask, (0, pad))
        x, log_s2 = self.features(disp, mask)
        m = mask.to(x.dtype)[:, None]
        x = self.stem(x) * m
        m0 = m
        for level, stage in enumerate(self.stages):
            for block in stage:
                x = block(x, m)
            if level == 0:
                full = x
            if level < self.n_down:
                x = self.downs[level](x)
                m = m[..., ::2]
                x = x * m
        tokens = x.transpose(1, 2)                            # (B, L', C)
        valid = m[:, 0] > 0                                   # (B, L')
        if self.encoder is not None:
            tokens = tokens + sinusoidal(tokens.shape[1], tokens.shape[2], tokens.device)
            tokens = self.encoder(tokens, src_key_padding_mask=~valid)
        vm = valid.to(tokens.dtype)[..., None]
        n_tok = vm.sum(1).clamp(min=1)
        mean = (tokens * vm).sum(1) / n_tok
        mx = tokens.masked_fill(~valid[..., None], -1e4).max(1).values
        n_steps = mask.to(x.dtype).sum(1).clamp(min=1)
        h = self.trunk(torch.cat([mean, mx, torch.log(n_steps)[:, None] / 5], 1))
        out = {"alpha": 2 * torch.sigmoid(self.alpha_head(h)[:, 0]),
               "log_k_rel": self.k_head(h)[:, 0],
               "log_s2": log_s2,
               "model_logits": self.model_head(h)}
        if self.per_step:
            up = tokens.transpose(1, 2).repeat_interleave(mult, dim=2) * m0
            y = self.step_merge(torch.cat([full, up], 1)) * m0
            y = self.step_head(F.gelu(self.step_block(y, m0)))[..., :L]
            out["step_alpha"] = 2 * torch.sigmoid(y[:, 0])
            out["step_log_k_rel"] = y[:, 1]
            out["step_cp_logit"] = y[:, 2]
            if self.n_states:
                out["step_state_logits"] = y[:, 3:].transpose(1, 2)      # (B, L, n_states)
        return out
