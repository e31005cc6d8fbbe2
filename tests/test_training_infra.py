"""Training infrastructure: DDP on CPU (gloo), config groups, the NaN guard."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

ROOT = Path(__file__).resolve().parents[1]


def compose_train(overrides):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_ddp_two_cpu_processes_see_disjoint_data_and_equal_batches(tmp_path):
    """``trainer=ddp`` alone (2 CPU processes, gloo) trains the micro model: both ranks run
    the same number of batches and never see the same simulated item."""
    ledger = tmp_path / "ledger"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "experiment=localizer_micro", "trainer=ddp",
         "trainer.accelerator=cpu", "trainer.devices=2", "data.train_items=16",
         "data.batch_size=2", "data.val_items=4", f"hydra.run.dir={tmp_path / 'run'}",
         "+callbacks.ledger._target_=smlmnet.models.callbacks.DataLedger",
         f"+callbacks.ledger.dirpath={ledger}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((ledger / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world_size"] == 2 for r in ranks)
    n_batches = [len(r["batches"]) for r in ranks]
    assert n_batches[0] == n_batches[1] == 4  # 16 items / 2 ranks / batch 2
    seen = [{s for b in r["batches"] for s in b} for r in ranks]
    assert len(seen[0]) == len(seen[1]) == 8
    assert not seen[0] & seen[1]


@pytest.mark.parametrize("group,choice", [
    ("trainer", "cpu"), ("trainer", "default"), ("trainer", "gpu"), ("trainer", "ddp"),
    ("logger", "csv"), ("logger", "wandb"), ("callbacks", "default")])
def test_every_config_group_option_instantiates(group, choice, tmp_path, monkeypatch):
    """Each trainer / logger / callbacks option builds its objects (wandb offline, no
    account); accelerators that need a GPU are built with the CPU swapped in."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    overrides = [f"{group}={choice}", f"hydra.runtime.output_dir={tmp_path}"]
    if group == "trainer" and choice in ("gpu", "ddp"):
        overrides += ["trainer.accelerator=cpu", "trainer.devices=1"]
    cfg = compose_train(overrides)
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(cfg)
    if group == "trainer":
        import lightning as L

        trainer = instantiate(cfg.trainer, logger=False, callbacks=[],
                              enable_checkpointing=False)
        assert isinstance(trainer, L.Trainer)
    elif group == "logger":
        logger = instantiate(cfg.logger)
        assert logger.save_dir is not None
    else:
        callbacks = [instantiate(c) for c in cfg.callbacks.values()]
        assert callbacks and all(hasattr(c, "on_train_batch_end") for c in callbacks)


def test_nonfinite_loss_gives_zero_gradient_not_none():
    """Under DDP every rank must call backward through the same parameters: a non-finite
    batch returns an exact-zero loss connected to every parameter instead of None."""
    from smlmnet.localize.decode.lightning import LocalizerModule
    from smlmnet.localize.decode.net import DecodeNet

    module = LocalizerModule(DecodeNet(base=4, depth=1))
    batch = {"frames": torch.full((2, 3, 8, 8), float("nan")),
             "emitters": torch.zeros(2, 4, 5), "emitter_mask": torch.zeros(2, 4, dtype=bool),
             "background": torch.zeros(2, 8, 8)}
    loss = module.training_step(batch, 0)
    assert loss is not None and loss.item() == 0.0
    loss.backward()
    grads = [p.grad for p in module.parameters()]
    assert all(g is not None and torch.count_nonzero(g) == 0 for g in grads)


def test_experiment_values_override_the_primary_config():
    """An experiment's top-level keys (model_name, torch_threads, ...) win over train.yaml's
    defaults (``_self_`` first in the defaults list), and the command line wins over both."""
    cfg = compose_train(["experiment=localizer_generalist", "hydra.runtime.output_dir=/tmp/x"])
    assert cfg.model_name == "decode_generalist" and cfg.torch_threads == 1
    assert cfg.model_description and cfg.trainer.max_steps == 2000
    cfg = compose_train(["experiment=localizer_generalist", "torch_threads=2",
                         "hydra.runtime.output_dir=/tmp/x"])
    assert cfg.torch_threads == 2


def test_gpu_step_planner_measures_both_rates_and_fixes_the_steps():
    """scripts/train_gpu.py: the plan is min(data-worker rate, device rate) × seconds,
    rounded down to 100 and at least 200; --plan-only trains nothing."""
    import re

    out = subprocess.run([sys.executable, "scripts/train_gpu.py", "--plan-only",
                          "--experiment", "trajectory_micro", "--out", "unused",
                          "--seconds", "30", "--workers", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    m = re.search(r"-> ([\d.]+) batches/s; .*?-> ([\d.]+) steps/s; planned (\d+) steps", out.stdout)
    assert m, out.stdout
    feed, train, steps = float(m[1]), float(m[2]), int(m[3])
    expect = max(200, int(min(feed, train) * 30) // 100 * 100)
    assert steps % 100 == 0 and abs(steps - expect) <= 100    # printed rates are rounded
