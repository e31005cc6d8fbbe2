"""Thin Lightning wrappers: :class:`TrajectoryModule` (optimizer, logging) around
:class:`~.net.TrajectoryNet` and :class:`TrajectoryDataModule` (simulated AnDi 1 streams)."""

from __future__ import annotations

import lightning as L

from smlmnet.diffusion.trajnet.loss import trajectory_loss
from smlmnet.diffusion.trajnet.net import TrajectoryNet
from smlmnet.diffusion.trajnet.targets import AnDi1Stream, AnDi2Stream
from smlmnet.models.datamodule import StreamDataModule
from smlmnet.models.optim import adamw_warmup_cosine
from smlmnet.simulate.andi1 import MODELS, NOISE_LEVELS


class TrajectoryModule(L.LightningModule):
    """Args: net (built by Hydra), lr (peak), weight_decay, w_model / w_k / w_step / w_step_k /
    w_cp / w_state (loss weights), state_weights (per-class weights of the state loss)."""

    def __init__(self, net: TrajectoryNet, lr: float = 2e-3, weight_decay: float = 0.01,
                 w_model: float = 0.5, w_k: float = 0.2, w_step: float = 0.5,
                 w_step_k: float = 0.1, w_cp: float = 0.5, w_state: float = 0.5,
                 state_weights: list[float] | None = None):
        super().__init__()
        # plain floats (hyperparameters go into checkpoints loaded with weights_only)
        state_weights = None if state_weights is None else [float(w) for w in state_weights]
        self.save_hyperparameters(ignore=["net"])
        self.hparams["net_config"] = net.config()
        self.net = net

    def forward(self, disp, mask):
        return self.net(disp, mask)

    def _step(self, batch):
        out = self.net(batch["disp"], batch["mask"])
        h = self.hparams
        terms = trajectory_loss(out, batch["alpha"], batch["model"], batch["log_k"],
                                h.w_model, h.w_k, batch, h.w_step, h.w_step_k, h.w_cp,
                                w_state=h.get("w_state", 0.5),
                                state_weights=h.get("state_weights"))
        return out, terms

    def training_step(self, batch, batch_idx):
        _, terms = self._step(batch)
        B = batch["alpha"].shape[0]
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, prog_bar=True, batch_size=B)
        return terms["loss"]

    def validation_step(self, batch, batch_idx):
        out, terms = self._step(batch)
        B = batch["alpha"].shape[0]
        single = batch["model"] >= 0
        acc = (out["model_logits"].argmax(1) == batch["model"])[single].float().mean()
        self.log_dict({f"val/{k}": v for k, v in terms.items()}, batch_size=B, sync_dist=True)
        self.log("val/alpha_mae", terms["alpha_l1"], batch_size=B, sync_dist=True)
        if single.any():
            self.log("val/model_f1", acc, batch_size=B, sync_dist=True)
        if "step_state_logits" in out and "step_state" in batch:
            ok = batch["mask"] & (batch["step_state"] >= 0)
            hit = (out["step_state_logits"].argmax(-1) == batch["step_state"])[ok]
            self.log("val/state_acc", hit.float().mean(), batch_size=B, sync_dist=True)

    def configure_optimizers(self):
        """AdamW with warm-up + cosine over the planned optimizer steps
        (:func:`smlmnet.models.optim.adamw_warmup_cosine`)."""
        return adamw_warmup_cosine(self)

    def export_model_folder(self, cfg, datamodule, run_dir):
        """``train.py export_pretrained=DIR``: write a model folder (kind ``trajectory``)."""
        from smlmnet.diffusion.trajnet.export import export_trained

        return export_trained(cfg, self, datamodule, run_dir)


class TrajectoryDataModule(StreamDataModule):
    """Three simulated streams with their own seeds: training (``seed``, new batches
    every epoch), validation (``seed + 1``, fixed: checkpoint selection) and test
    (``seed + 2``, fixed: the numbers a model folder reports). ``stream`` holds the keyword
    arguments of the stream class shared by the three (lengths, models, noise, scale, batch
    size in tokens, gaps): :class:`~.targets.AnDi1Stream` (``kind`` andi1) or
    :class:`~.targets.AnDi2Stream` (``kind`` andi2)."""

    def __init__(self, train_batches: int = 1000, val_batches: int = 40, seed: int = 0,
                 num_workers: int = 0, stream: dict | None = None, kind: str = "andi1"):
        super().__init__()
        from omegaconf import OmegaConf

        # plain containers: the hyperparameters go into checkpoints loaded with weights_only
        stream = OmegaConf.to_container(stream, resolve=True) if OmegaConf.is_config(stream) \
            else dict(stream or {})
        if "ranges" in stream:
            stream["ranges"] = {k: [float(x) for x in v] for k, v in stream["ranges"].items()}
        for key in ("models", "noise_levels", "scale_log10", "jump_log10", "sigma_noise"):
            if key in stream:
                stream[key] = [v if isinstance(v, str) else float(v) for v in stream[key]]
        self.save_hyperparameters()
        self.stream = stream
        cls = {"andi1": AnDi1Stream, "andi2": AnDi2Stream}[kind]
        self.train_set = cls(length=train_batches, seed=seed, **stream)
        fixed = {**stream, "gap_probability": 0.0}
        self.val_set = cls(length=val_batches, seed=seed + 1, **fixed)
        self.test_set = cls(length=val_batches, seed=seed + 2, **fixed)

    def training_ranges(self) -> dict:
        s = self.train_set
        if isinstance(s, AnDi2Stream):
            return {"length_points": [s.min_length, s.max_length], "models": list(s.models),
                    "localization_noise_px": list(s.sigma_noise),
                    "experiment_parameters": {k: list(v) for k, v in s.ranges.items()}
                    or "AnDi 2 challenge defaults (smlmnet.simulate.andi2.draw_experiment)",
                    "scale_log10": list(s.scale_log10), "burn_in_frames": s.burn_in,
                    "missing_frames": {"batch_probability": s.gap_probability,
                                       "max_rate": s.max_gap_rate}}
        return {"length_points": [s.min_length, s.max_length],
                "models": list(s.models),
                "alpha_per_model": {m: list(v) for m, v in _alpha_ranges(s.models).items()},
                "noise_sigma_over_step_std": list(s.noise_levels) or list(NOISE_LEVELS),
                "scale_log10": list(s.scale_log10),
                "missing_frames": {"batch_probability": s.gap_probability,
                                   "max_rate": s.max_gap_rate},
                "two_segment_share": s.changepoint_probability,
                "segment_step_factor_log10": list(s.jump_log10),
                "noise_normalized_at_length": s.full_length or "track length"}


def _alpha_ranges(models):
    from smlmnet.simulate.andi1 import ALPHA_RANGES

    return {m: ALPHA_RANGES[m] for m in models if m in MODELS}
