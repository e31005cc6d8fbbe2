"""Train a learned model: ``python train.py experiment=<name> [key=value ...]``.

Composes configs/train.yaml (data / model / trainer / logger / callbacks); models are built
with ``hydra.utils.instantiate`` and trained by Lightning (multi-GPU / multi-node through
``trainer=ddp`` alone). ``ckpt_path=...`` resumes; ``export_pretrained=DIR`` writes a
shipped-model folder after training.
"""

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf


def build(cfg: DictConfig):
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks,
                          enable_checkpointing=bool(callbacks))
    return datamodule, model, trainer


@hydra.main(version_base=None, config_path="configs", config_name="train")
def main(cfg: DictConfig) -> dict:
    L.seed_everything(cfg.seed, workers=True)
    if cfg.get("torch_threads"):
        import torch

        torch.set_num_threads(int(cfg.torch_threads))
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule, ckpt_path=cfg.ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    print({k: round(v, 4) for k, v in metrics.items()})
    if cfg.export_pretrained:
        model.export_model_folder(cfg, datamodule, HydraConfig.get().runtime.output_dir)
    return metrics


if __name__ == "__main__":
    OmegaConf.register_new_resolver("eval", eval, replace=True)
    main()
