"""The DECODE-style network behind the common :class:`Localizer` interface."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from smlmnet.data import contracts as C
from smlmnet.data.camera import adu_to_photons
from smlmnet.data.contracts import Movie
from smlmnet.data.windows import pad_movie_ends
from smlmnet.localize.base import Localizer, empty_localizations
from smlmnet.localize.decode.net import DecodeNet
from smlmnet.localize.decode.post import detect_emitters, uncertainty_scale_at


def load_localizer(folder, info: dict, device: str = "cpu", **kwargs) -> DecodeLocalizer:
    """Registry loader of kind ``localizer``: a model folder → :class:`DecodeLocalizer`
    with the folder's thresholds and uncertainty scale (``kwargs`` override them)."""
    from smlmnet.models.registry import build_net, load_weights

    net_cfg = dict(info["net"])
    net_cfg.setdefault("_target_", "smlmnet.localize.decode.net.DecodeNet")
    net = build_net(net_cfg)
    net.load_state_dict(load_weights(folder, info, device))
    th = info.get("thresholds", {})
    kwargs.setdefault("threshold", th.get("threshold", 0.6))
    kwargs.setdefault("second_threshold", th.get("second_threshold", kwargs["threshold"]))
    kwargs.setdefault("uncertainty_scale", info.get("uncertainty_scale", 1.0))
    kwargs.setdefault("uncertainty_scale_by_p", info.get("uncertainty_scale_by_p"))
    loc = DecodeLocalizer(net, device=device, **kwargs)
    loc.name = f"decode:{info.get('name', folder.name)}"
    loc.info = info
    return loc


class DecodeLocalizer(Localizer):
    """Localize with a trained :class:`DecodeNet`.

    Every frame is normalized and embedded once; windows (t−1, t, t+1) reuse the
    embeddings (the first and last frames are repeated at the movie's ends). Frames are read,
    converted to photons with ``movie.camera`` (raw values when it is unknown: a
    ``normalization="robust"`` network then reports photons in the movie's units) and
    processed in batches, so memory stays bounded whatever the movie's length.

    Args:
        net: the network, or use :meth:`from_pretrained`.
        threshold, second_threshold: post-processing thresholds (see ``post``).
        batch_frames: at most this many frames per inference batch.
        max_batch_pixels: and at most this many pixels per batch (frames × H × W; about
            100 MB of activations per million pixels for a 16-channel network).
        device: torch device. uncertainty_scale: multiplies the predicted σ (calibration).
        uncertainty_scale_by_p: optional ``{"p": [...], "scale": [...]}`` table that replaces
            the single scale by one that depends on the detection probability p
            (:func:`~smlmnet.localize.decode.post.confidence_scales`).
    """

    name = "decode"

    def __init__(self, net: DecodeNet, threshold: float = 0.6, second_threshold: float = 0.6,
                 batch_frames: int = 32, device: str = "cpu",
                 uncertainty_scale: float = 1.0, max_batch_pixels: int = 1 << 20,
                 uncertainty_scale_by_p: dict | None = None) -> None:
        self.net = net.eval().to(device)
        self.threshold, self.second_threshold = threshold, second_threshold
        self.batch_frames, self.device = int(batch_frames), device
        self.max_batch_pixels = int(max_batch_pixels)
        self.uncertainty_scale = float(uncertainty_scale)
        self.uncertainty_scale_by_p = dict(uncertainty_scale_by_p) if uncertainty_scale_by_p \
            else None
        self.info: dict = {}

    @classmethod
    def from_pretrained(cls, name: str = "decode_sptpalm", device: str = "cpu",
                        **kwargs) -> DecodeLocalizer:
        """A shipped model name or a model folder (through the registry)."""
        from smlmnet.models.registry import load

        loc = load(name, device, **kwargs)
        if not isinstance(loc, cls):
            raise ValueError(f"model {name!r} is not a DECODE localizer")
        return loc

    @classmethod
    def from_checkpoint(cls, ckpt_path: str, device: str = "cpu", **kwargs) -> DecodeLocalizer:
        """A network from a Lightning checkpoint written by ``train.py`` (tensors and plain
        values only: loaded with ``weights_only=True``)."""
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        net_cfg = ckpt.get("hyper_parameters", {}).get("net_config")
        if net_cfg is None:
            raise ValueError(f"{ckpt_path!r} has no net_config: not a smlmnet localizer "
                             "checkpoint")
        net = DecodeNet(**net_cfg)
        net.load_state_dict({k[len("net."):]: v for k, v in ckpt["state_dict"].items()
                             if k.startswith("net.")})
        loc = cls(net, device=device, **kwargs)
        loc.name = f"decode:{ckpt_path}"
        return loc

    @torch.inference_mode()
    def localize(self, movie: Movie, progress: bool = False) -> pd.DataFrame:
        cam = movie.camera or {"model": "poisson"}
        a = movie.pixel_size_nm
        T = movie.n_frames
        half = self.net.n_frames // 2
        rows = []
        bar = tqdm(total=T, desc=f"localizing ({self.name})", unit="frame",
                   disable=not progress, leave=False)
        H0, W0 = movie.shape[1:]
        batch = max(1, min(self.batch_frames, self.max_batch_pixels // max(1, H0 * W0)))
        for f0 in range(0, T, batch):
            f1 = min(T, f0 + batch)
            lo, hi = max(0, f0 - half), min(T, f1 + half)
            photons = adu_to_photons(np.asarray(movie.frames[lo:hi]), cam)
            x = torch.from_numpy(np.ascontiguousarray(photons, np.float32)).to(self.device)
            # the movie's ends: copies of the first/last frame (training: edge_probability)
            pre, post = half - (f0 - lo), half - (hi - f1)
            x = pad_movie_ends(x, pre, post)
            x_pad, H, W = self.net._pad(x[None])
            # per-frame normalization: identical to training's, whatever batch_frames is
            xn, offset, scale = self.net.normalize(x_pad)
            feats = self.net.embed_frames(xn)[0]  # (n, C, H', W')
            n_win = f1 - f0
            windows = torch.stack([feats[k:k + self.net.n_frames] for k in range(n_win)])
            mid = slice(half, half + n_win)
            out = self.net.decode(windows, offset[0, mid, None], scale[0, mid, None])
            out = {k: v[..., :H, :W] for k, v in out.items()}
            det = detect_emitters(out, self.threshold, self.second_threshold)
            if det["batch"].numel():
                p = det["p"].cpu().numpy()
                k = a * uncertainty_scale_at(p, self.uncertainty_scale,
                                             self.uncertainty_scale_by_p)
                sx, sy = det["sigma_x"].cpu().numpy() * k, det["sigma_y"].cpu().numpy() * k
                rows.append(pd.DataFrame({
                    C.FRAME: (det["batch"].cpu().numpy() + f0).astype(np.int64),
                    C.X_NM: det["x"].cpu().numpy() * a,
                    C.Y_NM: det["y"].cpu().numpy() * a,
                    C.PHOTONS: det["photons"].cpu().numpy(),
                    "bg [photon/px]": det["background"].cpu().numpy(),
                    "sigma [nm]": np.nan,
                    "uncertainty_xy [nm]": 0.5 * (sx + sy),
                    "uncertainty_x [nm]": sx,
                    "uncertainty_y [nm]": sy,
                    "crlb_x [nm]": np.nan, "crlb_y [nm]": np.nan, "chi2": np.nan,
                    "bkgstd [photon]": np.sqrt(np.clip(det["background"].cpu().numpy(), 0,
                                                       None)),
                    "p": p,
                }))
            bar.update(n_win)
        bar.close()
        if not rows:
            return empty_localizations()
        return pd.concat(rows, ignore_index=True)
