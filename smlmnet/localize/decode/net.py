"""DECODE-style localization network (Speiser et al., Nat Methods 2021), pure ``nn.Module``.

A shared U-Net embeds each frame of a window (t−1, t, t+1); a second U-Net merges the
embeddings; per-pixel heads predict, for the middle frame, the detection probability p, the
photon count N, the sub-pixel offsets (Δx, Δy) from the pixel centre, their uncertainties
(σx, σy, σN) and the background. Coordinates follow smlmnet's convention: pixel (i, j) covers
[j, j+1) × [i, i+1), its centre is (j + 0.5, i + 0.5).

Input frames are photons (ADU converted with the camera's mean response) or, for a movie
whose camera is unknown, its raw values. Every frame is normalized on its own (so inference
does not depend on how frames are batched), in one of two ways:

- ``"median"``: subtract the frame's median, divide by the constant ``input_scale`` photons
  (the specialist ``decode_sptpalm``: expects photons at a known scale);
- ``"robust"``: subtract the frame's median, divide by its robust noise scale
  s = 1.4826·MAD (floored, see :func:`robust_frame_scale`). The network then sees the same
  picture whatever the camera gain and offset (an affine change of the input changes only s
  and the median), so the photon and background heads are expressed in units of s and scale
  with the input: photons come out in the input's units (photons when the camera is known).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ELU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.ELU())


class UNet(nn.Module):
    """Small U-Net: ``depth`` poolings, channels ``base·2^level``; input H and W must be
    divisible by 2^depth (inputs are padded by :class:`DecodeNet`)."""

    def __init__(self, in_channels: int, out_channels: int, base: int = 32, depth: int = 2):
        super().__init__()
        chans = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([conv_block(in_channels, chans[0])] + [
            conv_block(chans[i], chans[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList([conv_block(chans[i + 1] + chans[i], chans[i])
                                 for i in reversed(range(depth))])
        self.out = nn.Conv2d(chans[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        return F.elu(self.out(x))


# p, N, Δx, Δy, σx, σy, σN, background; channel 8 is unused but kept so that the shipped
# weights (decode_sptpalm) keep their shape
HEAD_CHANNELS = 9
NORMALIZATIONS = ("median", "robust")
PHOTON_HEADS = ("linear", "log")


def robust_frame_scale(frames: torch.Tensor, median: torch.Tensor) -> torch.Tensor:
    """Noise scale of each frame ``(B, T, H, W)`` → ``(B, T, 1, 1)``: 1.4826·MAD, floored at
    5 % of the frame's standard deviation (a clipped, background-free frame has MAD = 0) and
    at 1e-3 (a constant frame)."""
    dev = (frames - median).abs().flatten(2)
    mad = 1.4826 * dev.median(dim=2).values
    std = frames.flatten(2).std(dim=2)
    return torch.maximum(mad, 0.05 * std).clamp_min(1e-3)[..., None, None]


class DecodeNet(nn.Module):
    """Window of ``n_frames`` frames ``(B, T, H, W)`` → per-pixel maps of the middle frame.

    Args:
        n_frames: window length (odd). base: channels of the U-Nets. depth: poolings.
        input_scale: photons per unit of the normalized input (``normalization="median"``).
        photon_scale: photons per unit of the N head (the sigmoid's maximum;
            ``photon_head="linear"``).
        normalization: ``"median"`` or ``"robust"`` (see the module docstring).
        photon_head: ``"linear"`` (N = photon_scale·sigmoid(o)) or ``"log"`` (N = s·exp(o),
            for photon counts spanning decades; σ_N is then relative).
        frame_net: embed every frame with its own U-Net before merging (DECODE's design);
            ``False`` feeds the normalized frames straight to the merging U-Net as channels
            (about 4× fewer operations: the fast CPU generalist).
    """

    def __init__(self, n_frames: int = 3, base: int = 32, depth: int = 2,
                 input_scale: float = 50.0, photon_scale: float = 5000.0,
                 normalization: str = "median", photon_head: str = "linear",
                 frame_net: bool = True):
        super().__init__()
        if n_frames % 2 != 1:
            raise ValueError(f"n_frames must be odd (a centred window); got {n_frames}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}; got "
                             f"{normalization!r}")
        if photon_head not in PHOTON_HEADS:
            raise ValueError(f"photon_head must be one of {PHOTON_HEADS}; got {photon_head!r}")
        self.n_frames, self.depth, self.base = n_frames, depth, base
        self.input_scale, self.photon_scale = float(input_scale), float(photon_scale)
        self.normalization, self.photon_head = normalization, photon_head
        self.use_frame_net = bool(frame_net)
        self.frame_net = UNet(1, base, base, depth) if frame_net else None
        self.merge_net = UNet(n_frames * (base if frame_net else 1), base, base, depth)
        self.head = nn.Sequential(nn.Conv2d(base, base, 3, padding=1), nn.ELU(),
                                  nn.Conv2d(base, HEAD_CHANNELS, 1))

    def config(self) -> dict:
        """Constructor arguments (rebuild the network from a checkpoint or model folder)."""
        return {"n_frames": self.n_frames, "base": self.base, "depth": self.depth,
                "input_scale": self.input_scale, "photon_scale": self.photon_scale,
                "normalization": self.normalization, "photon_head": self.photon_head,
                "frame_net": self.use_frame_net}

    def normalize(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-frame normalization of ``(B, T, H, W)`` frames.

        Returns ``(normalized frames, offset, scale)``; offset and scale are ``(B, T, 1, 1)``
        in input units. Each frame uses only its own pixels, so the result does not depend on
        the window or batch it is in.
        """
        offset = frames.flatten(2).median(dim=2).values[..., None, None]
        if self.normalization == "robust":
            scale = robust_frame_scale(frames, offset)
        else:
            scale = torch.full_like(offset, self.input_scale)
        return (frames - offset) / scale, offset, scale

    def embed_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame features ``(B, T, C, H, W)`` of normalized frames ``(B, T, H, W)``."""
        B, T, H, W = x.shape
        if self.frame_net is None:
            return x[:, :, None]
        return self.frame_net(x.reshape(B * T, 1, H, W)).reshape(B, T, -1, H, W)

    def decode(self, features: torch.Tensor, offset: torch.Tensor,
               scale: torch.Tensor) -> dict[str, torch.Tensor]:
        """Maps ``(B, H, W)`` of the middle frame from per-frame features ``(B, T, C, H, W)``;
        ``offset`` and ``scale`` ``(B, 1, 1, 1)`` are the middle frame's normalization (input
        units).

        Besides the physical maps, ``n_code``/``n_code_sigma`` are the photon estimate and its
        σ in the space where the loss compares them with :meth:`encode_photons` of the truth.
        """
        B, T, C, H, W = features.shape
        out = self.head(self.merge_net(features.reshape(B, T * C, H, W)))
        p_logit = out[:, 0]
        s = scale[:, 0]
        if self.photon_head == "log":
            n_code = out[:, 1]
            n_code_sigma = torch.sigmoid(out[:, 6]) * 2 + 1e-2   # σ of log N
            photons = s * torch.exp(n_code.clamp(max=20.0))
            sigma_photons = photons * n_code_sigma
        else:
            n_code = torch.sigmoid(out[:, 1])
            n_code_sigma = torch.sigmoid(out[:, 6]) * 0.5 + 1e-3
            photons = n_code * self.photon_scale
            sigma_photons = n_code_sigma * self.photon_scale
        return {
            "p_logit": p_logit,
            "p": torch.sigmoid(p_logit),
            "photons": photons,
            "sigma_photons": sigma_photons,
            "n_code": n_code,
            "n_code_sigma": n_code_sigma,
            "dx": torch.tanh(out[:, 2]),
            "dy": torch.tanh(out[:, 3]),
            "sigma_x": torch.sigmoid(out[:, 4]) * 3 + 0.01,
            "sigma_y": torch.sigmoid(out[:, 5]) * 3 + 0.01,
            "background": offset[:, 0] + s * out[:, 7],
            "norm_scale": s.expand_as(p_logit),
        }

    def encode_photons(self, photons: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """True photons ``(B, M)`` → the photon head's code space (``scale``: ``(B, 1)``
        normalization scale of each window's middle frame, input units)."""
        if self.photon_head == "log":
            return torch.log(photons.clamp_min(1e-3) / scale)
        return photons / self.photon_scale

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        m = 2**self.depth
        H, W = x.shape[-2:]
        ph, pw = (-H) % m, (-W) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return x, H, W

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """``frames``: ``(B, n_frames, H, W)`` photons (or raw values, see the module
        docstring) → maps ``(B, H, W)`` for the middle frame."""
        if frames.ndim != 4 or frames.shape[1] != self.n_frames:
            raise ValueError(f"expected (B, {self.n_frames}, H, W) frames; got "
                             f"{tuple(frames.shape)}")
        x, H, W = self._pad(frames)
        x, offset, scale = self.normalize(x)
        mid = self.n_frames // 2
        out = self.decode(self.embed_frames(x), offset[:, mid:mid + 1], scale[:, mid:mid + 1])
        return {k: v[..., :H, :W] for k, v in out.items()}
