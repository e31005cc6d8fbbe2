"""Networks that read the diffusion coefficient from pixel tubelets (pure ``nn.Module``).

All three share one input and one output contract:

Inputs (from :func:`smlmnet.diffusion.mivit.targets.to_network_batch`):
    ``x`` ``(B, T, K, K)`` normalized patches (masked frames zero), ``features`` ``(B, T, 4)``
    (localization offset in the patch and asinh displacement from the previous frame, px),
    ``cond`` ``(B, 4)`` (exposure/frame, PSF σ px, log10 signal, log10 background), ``mask``
    ``(B, T)`` bool (valid frames; at least one per row). A MiViT with ``blur_moments`` also
    reads each frame's windowed spot moments (:func:`spot_moments`), computed inside from
    ``x``, the offsets and the PSF σ, so the contract is the same.
Outputs (dict):
    ``log_d`` ``(B,)`` ln D_px (px²/frame), ``log_var`` ``(B,)`` its predicted log-variance,
    ``log_s2`` ``(B,)`` ln σ_loc² (px²) of the localizations, ``frame_log_d`` /
    ``frame_log_var`` ``(B, T)`` per-frame estimates (per-localization D); a MiViT with
    ``alpha_head`` adds ``alpha`` and ``alpha_log_var`` ``(B,)`` (the anomalous exponent and
    its predicted log-variance).

- :class:`MiViT`: spatio-temporal vision transformer from timm ``Block``s: each frame is cut
  into ``p × p`` pixel tubelets (a strided conv), one frame token per frame carries its
  localization features, one token carries the conditioning; attention is ``factorized``
  (space within each frame, then time over the frame tokens) or ``joint`` (all tokens).
  Masked frames are excluded from attention by an additive −inf mask.
- :class:`SingleFrameViT`: the spatial part only, one blurred spot → D per frame (no
  displacements); the track estimate is the inverse-variance mean of the frames
  (:func:`pool_frames`).
- :class:`Pix2DCNN`: a Pix2D-style small CNN (Park et al. 2023) on the central ``crop × crop``
  pixels of each frame, pooled the same way.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from timm.models.vision_transformer import Block

from smlmnet.diffusion.mivit.targets import N_COND, N_FEATURES

#: the prior centre of ln D_px the heads start from (D = 0.3 µm²/s at 20 ms, 100 nm px)
LOG_D_PRIOR = -0.5


def pool_frames(frame_mu: torch.Tensor, frame_log_var: torch.Tensor, mask: torch.Tensor):
    """Inverse-variance combination of per-frame estimates ``(B, T)`` over valid frames:
    returns ``(mu, log_var)`` ``(B,)``."""
    w = torch.exp(-frame_log_var).masked_fill(~mask, 0.0)
    total = w.sum(1).clamp(min=1e-12)
    return (w * frame_mu).sum(1) / total, -torch.log(total)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """Mean of ``x`` ``(B, T, ...)`` over the valid frames of ``mask`` ``(B, T)`` (dimension
    1; rows without a valid frame give 0)."""
    m = mask.reshape(*mask.shape, *([1] * (x.dim() - 2))).to(x.dtype)
    return (x * m).sum(1, keepdim=keepdim) / m.sum(1, keepdim=keepdim).clamp(min=1)


#: window widths of :func:`spot_moments`, in units of the PSF σ
MOMENT_SCALES = (1.5, 3.0)
#: per-frame values :func:`spot_moments` returns per window
N_MOMENTS = 3


def spot_moments(x: torch.Tensor, offset: torch.Tensor, psf_sigma_px: torch.Tensor,
                 mask: torch.Tensor, scales=MOMENT_SCALES) -> torch.Tensor:
    """Gaussian-windowed second moments of each frame's spot about its localization: how
    wide and how elongated the (motion-blurred) spot is, relative to the window.

    A spot of covariance ``V`` (PSF σ² + 1/12 px² of pixelation + the motion within the
    exposure) seen through a Gaussian window of variance ``w = (s·σ)²`` centred on it has the
    windowed second moment ``V·w/(V + w)`` per axis, so the width feature grows monotonically
    with the blur while the window keeps the background far from the spot out of it. The
    trace measures how far the molecule moved within the exposure, the eigenvalue difference
    how elongated the spot is along its path (0 for a still spot whatever σ, so it does not
    depend on knowing σ). These are the statistics that the 5×5 px patch embedding resolves
    poorly for blur comparable to the PSF; they are computed from the same normalized patch
    and localization the network sees, in training and inference alike.

    The background left in the patches is first re-levelled to the mean of their edge pixels.

    Args:
        x: ``(B, T, K, K)`` normalized patches (:func:`~smlmnet.diffusion.mivit.targets.
            normalize_tubelets`; masked frames zero). offset: ``(B, T, 2)`` localization offset
            (x, y) from the patch centre pixel's centre, px. psf_sigma_px: ``(B,)`` PSF σ, px.
            mask: ``(B, T)`` bool, valid frames (the others give 0 and are not read).
        scales: window σ in units of the PSF σ.
    Returns:
        ``(B, T, 3·len(scales))``: per window, (m_xx + m_yy)/(2w), (λ₁ − λ₂)/w of the windowed
        moment matrix, and asinh of the windowed photon sum (normalized units); 0 on masked
        frames.
    """
    B, T, K, _ = x.shape
    # residual background: the patch normalization subtracts the median over the whole
    # tubelet, which the spot itself lifts; re-level on the mean of the patches' edge pixels
    edge = torch.ones(K, K, dtype=torch.bool, device=x.device)
    edge[1:-1, 1:-1] = False
    valid = mask.to(x.dtype)
    ring = x[:, :, edge].mean(-1)  # (B, T)
    level = (ring * valid).sum(1) / valid.sum(1).clamp(min=1)
    x = (x - level.view(B, 1, 1, 1)) * valid[..., None, None]
    g = torch.arange(K, device=x.device, dtype=x.dtype) + 0.5
    centre = K // 2 + 0.5 + offset
    dx = g.view(1, 1, 1, K) - centre[..., 0, None, None]  # (B, T, 1, K)
    dy = g.view(1, 1, K, 1) - centre[..., 1, None, None]  # (B, T, K, 1)
    dx2, dy2 = dx * dx, dy * dy
    out = []
    for s in scales:
        w = (s * psf_sigma_px).clamp(min=0.5).pow(2).view(B, 1, 1, 1)
        wx = torch.exp(-0.5 * dy2 / w) * torch.exp(-0.5 * dx2 / w) * x  # separable window
        m0 = wx.sum(dim=(2, 3))
        norm = m0.clamp(min=1.0)
        mxx = (wx * dx2).sum(dim=(2, 3)) / norm
        myy = (wx * dy2).sum(dim=(2, 3)) / norm
        mxy = (wx * dx * dy).sum(dim=(2, 3)) / norm
        w = w.view(B, 1)
        trace = ((mxx + myy) / (2 * w)).clamp(-2.0, 4.0)
        spread = torch.sqrt((mxx - myy) ** 2 + 4 * mxy * mxy + 1e-8) / w
        out += [trace, spread.clamp(max=4.0), torch.asinh(m0)]
    return torch.stack(out, dim=-1) * valid[..., None]


def _attn_bias(valid: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` bool (True = may be attended) → additive ``(B, 1, 1, L)`` float mask."""
    bias = torch.zeros(valid.shape, dtype=torch.float32, device=valid.device)
    return bias.masked_fill(~valid, float("-inf"))[:, None, None, :]


class _Heads(nn.Module):
    """LayerNorm + linear → (ln D, log-variance[, ln σ²]) with a prior centre."""

    def __init__(self, dim: int, n_out: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, n_out)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)
        with torch.no_grad():
            self.fc.bias[0] = LOG_D_PRIOR
            self.fc.bias[1] = 1.0

    def forward(self, h):
        return self.fc(self.norm(h))


class _AlphaBranch(nn.Module):
    """The α branch of a MiViT: ``depth`` temporal blocks over the backbone's conditioning and
    frame tokens, to which it adds its own embedding of the raw localization features and of
    the track's positions rebuilt from them (α lives in how the MSD grows with the lag, in the
    correlation of successive displacements, and in how the blur grows within a frame), then
    LayerNorm + linear → (α, log-variance), starting at α = 1. It reads the backbone's tokens
    and changes nothing in them, so a backbone trained for D can be frozen while the branch
    learns (``PixelDiffusionModule(train_only=...)``)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, depth: int = 2):
        super().__init__()
        self.feat_embed = nn.Linear(N_FEATURES + 2, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio=mlp_ratio, qkv_bias=True)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(2 * dim)
        self.fc = nn.Linear(2 * dim, 2)
        nn.init.zeros_(self.fc.weight)
        with torch.no_grad():
            self.fc.bias.copy_(torch.tensor([1.0, -1.0]))

    def forward(self, tokens, features, bias, mask):
        """tokens ``(B, 1 + T, dim)`` (conditioning, frames), features ``(B, T, 4)``, bias
        ``(B, 1, 1, 1 + T)``, mask ``(B, T)`` → ``(B, 2)``."""
        # the track's positions relative to its mean (px, asinh), rebuilt from the
        # displacements: MSD at every lag, not only at one frame (a step across a missing
        # frame is 0 in the features, so positions after a gap are shifted by it)
        pos = torch.sinh(features[..., 2:4]).cumsum(1)
        pos = pos - masked_mean(pos, mask, keepdim=True)
        extra = torch.cat([features, torch.asinh(pos) * mask[..., None].float()], dim=-1)
        h = torch.cat([tokens[:, :1], tokens[:, 1:] + self.feat_embed(extra)], dim=1)
        for blk in self.blocks:
            h = blk(h, attn_mask=bias)
        return self.fc(self.norm(torch.cat([h[:, 0], masked_mean(h[:, 1:], mask)], dim=1)))


class _SpatialEncoder(nn.Module):
    """Per-frame pixel tokens: ``(B·T, K, K)`` → ``(B·T, N, dim)`` plus spatial positions."""

    def __init__(self, size: int, spatial_patch: int, dim: int):
        super().__init__()
        if size % spatial_patch:
            raise ValueError(f"patch size {size} must be a multiple of spatial_patch "
                             f"{spatial_patch}")
        self.embed = nn.Conv2d(1, dim, spatial_patch, stride=spatial_patch)
        self.n_tokens = (size // spatial_patch) ** 2
        self.pos = nn.Parameter(torch.randn(1, self.n_tokens, dim) * 0.02)

    def forward(self, frames):
        return self.embed(frames[:, None]).flatten(2).transpose(1, 2) + self.pos


class MiViT(nn.Module):
    """Vision transformer on pixel tubelets (see the module docstring for the contract).

    Args:
        frames: T. size: K. spatial_patch: p (K % p == 0). dim, heads, mlp_ratio: token
            width. depth_space, depth_time: blocks of the factorized encoder; ``joint``
            attention uses ``depth_space + depth_time`` blocks over all tokens.
        attention: ``factorized`` | ``joint``. use_features: give the localization features
            to the frame tokens (False: pixels only, to measure what the displacements add).
        drop_path: stochastic depth.
        feature_dropout: in training, the share of tubelets whose localization features are
            replaced by a learned "no features" embedding (modality dropout: the pixel pathway
            has to read D on its own instead of leaning on the displacements; 0: off, and no
            extra parameter, so older weights load unchanged).
        alpha_head: add the α branch (:class:`_AlphaBranch`; factorized attention only;
            False: no extra parameter, older weights load unchanged).
        blur_moments: add each frame's windowed spot moments (:func:`spot_moments`: how wide
            and how elongated the blurred spot is) to its frame token through their own
            linear embedding (kept under ``feature_dropout``: they are read from the pixels;
            False: no extra parameter, older weights load unchanged).
    """

    def __init__(self, frames: int = 16, size: int = 15, spatial_patch: int = 5,
                 dim: int = 64, heads: int = 4, depth_space: int = 2, depth_time: int = 2,
                 mlp_ratio: float = 2.0, attention: str = "factorized",
                 use_features: bool = True, drop_path: float = 0.0,
                 feature_dropout: float = 0.0, alpha_head: bool = False,
                 blur_moments: bool = False):
        super().__init__()
        if attention not in ("factorized", "joint"):
            raise ValueError(f"attention must be factorized or joint; got {attention!r}")
        if alpha_head and attention != "factorized":
            raise ValueError("alpha_head needs attention='factorized'")
        self._config = dict(frames=frames, size=size, spatial_patch=spatial_patch, dim=dim,
                            heads=heads, depth_space=depth_space, depth_time=depth_time,
                            mlp_ratio=mlp_ratio, attention=attention,
                            use_features=use_features, drop_path=drop_path)
        if feature_dropout:
            self._config["feature_dropout"] = float(feature_dropout)
        if alpha_head:
            self._config["alpha_head"] = True
        if blur_moments:
            self._config["blur_moments"] = True
        if not 0 <= feature_dropout < 1:
            raise ValueError(f"feature_dropout must lie in [0, 1); got {feature_dropout}")
        self.frames, self.attention, self.use_features = frames, attention, use_features
        self.feature_dropout = float(feature_dropout)
        if self.feature_dropout:
            self.no_features = nn.Parameter(torch.zeros(1, 1, dim))
        self.spatial = _SpatialEncoder(size, spatial_patch, dim)
        self.feat_embed = nn.Linear(N_FEATURES, dim)
        self.moment_embed = nn.Linear(N_MOMENTS * len(MOMENT_SCALES), dim) if blur_moments \
            else None
        self.frame_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.cond_embed = nn.Linear(N_COND, dim)
        self.time_pos = nn.Parameter(torch.randn(1, frames, dim) * 0.02)
        block = lambda: Block(dim, heads, mlp_ratio=mlp_ratio, qkv_bias=True,  # noqa: E731
                              drop_path=drop_path)
        if attention == "factorized":
            self.space_blocks = nn.ModuleList(block() for _ in range(depth_space))
            self.time_blocks = nn.ModuleList(block() for _ in range(depth_time))
        else:
            self.blocks = nn.ModuleList(block() for _ in range(depth_space + depth_time))
        self.head = _Heads(2 * dim, 3)
        self.frame_head = _Heads(dim, 2)
        self.alpha_head = _AlphaBranch(dim, heads, mlp_ratio) if alpha_head else None

    def config(self) -> dict:
        return dict(self._config)

    def forward(self, x, features, cond, mask) -> dict[str, torch.Tensor]:
        B, T, K, _ = x.shape
        if T > self.frames:
            raise ValueError(f"tubelets have {T} frames; this network takes at most "
                             f"{self.frames}")
        pix = self.spatial(x.reshape(B * T, K, K))  # (B·T, N, dim)
        N, dim = pix.shape[1], pix.shape[2]
        feats = features if self.use_features else torch.zeros_like(features)
        femb = self.feat_embed(feats)
        if self.feature_dropout and self.training:
            drop = torch.rand(B, 1, 1, device=x.device) < self.feature_dropout
            femb = torch.where(drop, self.no_features.expand(B, T, -1), femb)
        if self.moment_embed is not None:
            moments = spot_moments(x, features[..., :2], cond[:, 1], mask)
            femb = femb + self.moment_embed(moments)
        ftok = self.frame_token + femb + self.time_pos[:, :T]  # (B, T, dim)
        ctok = self.cond_embed(cond)[:, None]  # (B, 1, dim)
        if self.attention == "factorized":
            h = torch.cat([ftok.reshape(B * T, 1, dim), pix], dim=1)
            for blk in self.space_blocks:
                h = blk(h)
            h = torch.cat([ctok, h[:, 0].reshape(B, T, dim)], dim=1)
            bias = _attn_bias(torch.cat([mask.new_ones(B, 1), mask], dim=1))
            for blk in self.time_blocks:
                h = blk(h, attn_mask=bias)
            ctx, frame_h = h[:, 0], h[:, 1:]
            alpha = self.alpha_head(h, feats, bias, mask) if self.alpha_head is not None \
                else None
        else:
            pix = pix.reshape(B, T, N, dim) + self.time_pos[:, :T, None]
            h = torch.cat([ftok[:, :, None], pix], dim=2).reshape(B, T * (N + 1), dim)
            h = torch.cat([ctok, h], dim=1)
            valid = torch.cat([mask.new_ones(B, 1),
                               mask[:, :, None].expand(B, T, N + 1).reshape(B, -1)], dim=1)
            bias = _attn_bias(valid)
            for blk in self.blocks:
                h = blk(h, attn_mask=bias)
            ctx = h[:, 0]
            frame_h = h[:, 1:].reshape(B, T, N + 1, dim)[:, :, 0]
        out = self.head(torch.cat([ctx, masked_mean(frame_h, mask)], dim=1))
        fr = self.frame_head(frame_h)
        res = {"log_d": out[:, 0], "log_var": out[:, 1], "log_s2": out[:, 2],
               "frame_log_d": fr[..., 0], "frame_log_var": fr[..., 1]}
        if self.alpha_head is not None:
            res.update(alpha=alpha[:, 0], alpha_log_var=alpha[:, 1])
        return res


class _PerFrameNet(nn.Module):
    """Base of the per-frame networks: ``frame_outputs`` → (ln D, log-var, ln σ²) per frame,
    pooled over valid frames with :func:`pool_frames`."""

    def frame_outputs(self, x, cond) -> torch.Tensor:  # (B·T, K, K), (B·T, 4) -> (B·T, 3)
        raise NotImplementedError

    def forward(self, x, features, cond, mask) -> dict[str, torch.Tensor]:
        B, T, K, _ = x.shape
        out = self.frame_outputs(x.reshape(B * T, K, K),
                                 cond[:, None].expand(B, T, cond.shape[1]).reshape(B * T, -1))
        out = out.reshape(B, T, 3)
        mu, log_var = pool_frames(out[..., 0], out[..., 1], mask)
        return {"log_d": mu, "log_var": log_var, "log_s2": masked_mean(out[..., 2], mask),
                "frame_log_d": out[..., 0], "frame_log_var": out[..., 1]}


class SingleFrameViT(_PerFrameNet):
    """One blurred spot → D: a small ViT over one frame's pixel tokens and a conditioning
    token (no displacements); the track estimate pools the frames by inverse variance."""

    def __init__(self, size: int = 15, spatial_patch: int = 5, dim: int = 64, heads: int = 4,
                 depth: int = 3, mlp_ratio: float = 2.0):
        super().__init__()
        self._config = dict(size=size, spatial_patch=spatial_patch, dim=dim, heads=heads,
                            depth=depth, mlp_ratio=mlp_ratio)
        self.spatial = _SpatialEncoder(size, spatial_patch, dim)
        self.cond_embed = nn.Linear(N_COND, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio=mlp_ratio, qkv_bias=True)
                                    for _ in range(depth))
        self.head = _Heads(dim, 3)

    def config(self) -> dict:
        return dict(self._config)

    def frame_outputs(self, x, cond):
        h = torch.cat([self.cond_embed(cond)[:, None], self.spatial(x)], dim=1)
        for blk in self.blocks:
            h = blk(h)
        return self.head(h[:, 0])


class Pix2DCNN(_PerFrameNet):
    """Pix2D-style CNN (Park et al., Commun. Biol. 2023): three 3×3 conv layers on the
    central ``crop × crop`` pixels of each frame, then an MLP with the conditioning."""

    def __init__(self, size: int = 15, crop: int = 9, channels: int = 32, hidden: int = 64):
        super().__init__()
        if not 3 <= crop <= size or crop % 2 != 1:
            raise ValueError(f"crop must be odd and in [3, {size}]; got {crop}")
        self._config = dict(size=size, crop=crop, channels=channels, hidden=hidden)
        self.lo = (size - crop) // 2
        self.crop = crop
        c = channels
        self.conv = nn.Sequential(
            nn.Conv2d(1, c // 2, 3, padding=1), nn.GELU(),
            nn.Conv2d(c // 2, c, 3, padding=1), nn.GELU(),
            nn.Conv2d(c, c, 3, padding=1), nn.GELU())
        self.mlp = nn.Sequential(nn.Linear(c * crop * crop + N_COND, hidden), nn.GELU())
        self.head = _Heads(hidden, 3)

    def config(self) -> dict:
        return dict(self._config)

    def frame_outputs(self, x, cond):
        c = x[:, self.lo:self.lo + self.crop, self.lo:self.lo + self.crop]
        h = self.conv(c[:, None]).flatten(1)
        return self.head(self.mlp(torch.cat([h, cond], dim=1)))
