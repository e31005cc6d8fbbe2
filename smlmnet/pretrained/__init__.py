"""Registry of shipped pretrained models (loaded offline, ``weights_only=True``).

Each model is a folder ``smlmnet/pretrained/<name>/`` with

- ``model.yaml``: the network's constructor arguments, the simulation preset it was trained
  on, the detection thresholds tuned on validation data, and the metrics it reached;
- ``weights.pt``: the ``state_dict`` (tensors only);
- ``MODEL_CARD.md``: the training command, data, metrics and limits.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from smlmnet.io.atomic import atomic_output_dir
from smlmnet.localize.decode_net import DecodeNet

ROOT = Path(__file__).resolve().parent


def list_models() -> list[str]:
    """Names of the shipped models."""
    return sorted(p.name for p in ROOT.iterdir() if (p / "model.yaml").is_file())


def model_dir(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if (path / "model.yaml").is_file():
        return path
    if (ROOT / str(name_or_path) / "model.yaml").is_file():
        return ROOT / str(name_or_path)
    raise FileNotFoundError(f"no pretrained model {str(name_or_path)!r}; shipped models: "
                            f"{', '.join(list_models()) or 'none'}")


def load_model(name_or_path: str | Path, device: str = "cpu") -> tuple[DecodeNet, dict]:
    """The network (in eval mode) and its ``model.yaml`` description."""
    folder = model_dir(name_or_path)
    info = yaml.safe_load((folder / "model.yaml").read_text())
    net = DecodeNet(**info["net"])
    state = torch.load(folder / "weights.pt", map_location=device, weights_only=True)
    net.load_state_dict(state)
    return net.eval().to(device), info


def export_model(net: DecodeNet, net_kwargs: dict, folder: str | Path, info: dict,
                 card: str) -> Path:
    """Write a model folder (atomically; refuses to overwrite an existing one)."""
    folder = Path(folder)
    with atomic_output_dir(folder) as tmp:
        torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()},
                   tmp / "weights.pt")
        (tmp / "model.yaml").write_text(yaml.safe_dump({"net": net_kwargs, **info},
                                                       sort_keys=False))
        (tmp / "MODEL_CARD.md").write_text(card)
    return folder
