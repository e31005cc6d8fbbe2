"""DECODE-style localization network (Speiser et al., Nat Methods 2021), pure ``nn.Module``.

A shared U-Net embeds each frame of a window (t−1, t, t+1); a second U-Net merges the
embeddings; per-pixel heads predict, for the middle frame, the detection probability p, the
photon count N, the sub-pixel offsets (Δx, Δy) from the pixel centre, their uncertainties
(σx, σy, σN) and the background. Coordinates follow smlmnet's convention: pixel (i, j) covers
[j, j+1) × [i, i+1), its centre is (j + 0.5, i + 0.5).

Input frames are photons (ADU converted with the camera's mean response); they are
normalized per window by subtracting the median and dividing by ``input_scale`` photons.
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


class DecodeNet(nn.Module):
    """Window of ``n_frames`` frames ``(B, T, H, W)`` → per-pixel maps of the middle frame.

    Args:
        n_frames: window length (odd). base: channels of the U-Nets. depth: poolings.
        input_scale: photons per unit of the normalized input.
        photon_scale: photons per unit of the N head (the sigmoid's maximum).
    """

    def __init__(self, n_frames: int = 3, base: int = 32, depth: int = 2,
                 input_scale: float = 50.0, photon_scale: float = 5000.0):
        super().__init__()
        if n_frames % 2 != 1:
            raise ValueError(f"n_frames must be odd (a centred window); got {n_frames}")
        self.n_frames, self.depth, self.base = n_frames, depth, base
        self.input_scale, self.photon_scale = float(input_scale), float(photon_scale)
        self.frame_net = UNet(1, base, base, depth)
        self.merge_net = UNet(n_frames * base, base, base, depth)
        self.head = nn.Sequential(nn.Conv2d(base, base, 3, padding=1), nn.ELU(),
                                  nn.Conv2d(base, HEAD_CHANNELS, 1))

    def normalize(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        offset = frames.flatten(1).median(dim=1).values[:, None, None, None]
        return (frames - offset) / self.input_scale, offset

    def embed_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame features ``(B, T, C, H, W)`` of normalized frames ``(B, T, H, W)``."""
        B, T, H, W = x.shape
        return self.frame_net(x.reshape(B * T, 1, H, W)).reshape(B, T, -1, H, W)

    def decode(self, features: torch.Tensor, offset: torch.Tensor) -> dict[str, torch.Tensor]:
        B, T, C, H, W = features.shape
        out = self.head(self.merge_net(features.reshape(B, T * C, H, W)))
        p_logit = out[:, 0]
        return {
            "p_logit": p_logit,
            "p": torch.sigmoid(p_logit),
            "photons": torch.sigmoid(out[:, 1]) * self.photon_scale,
            "dx": torch.tanh(out[:, 2]),
            "dy": torch.tanh(out[:, 3]),
            "sigma_x": torch.sigmoid(out[:, 4]) * 3 + 0.01,
            "sigma_y": torch.sigmoid(out[:, 5]) * 3 + 0.01,
            "sigma_photons": (torch.sigmoid(out[:, 6]) * 0.5 + 1e-3) * self.photon_scale,
            "background": offset[:, 0] + self.input_scale * out[:, 7],
        }

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        m = 2**self.depth
        H, W = x.shape[-2:]
        ph, pw = (-H) % m, (-W) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return x, H, W

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """``frames``: ``(B, n_frames, H, W)`` photons → maps ``(B, H, W)`` for the middle
        frame."""
        if frames.ndim != 4 or frames.shape[1] != self.n_frames:
            raise ValueError(f"expected (B, {self.n_frames}, H, W) frames; got "
                             f"{tuple(frames.shape)}")
        x, H, W = self._pad(frames)
        x, offset = self.normalize(x)
        out = self.decode(self.embed_frames(x), offset)
        return {k: v[..., :H, :W] for k, v in out.items()}
