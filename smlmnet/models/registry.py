"""One registry for every learned model that smlmnet ships or a user trains.

A *model folder* holds everything needed to run a trained network offline:

- ``model.yaml``: ``name``, ``kind`` (which stage interface loads it: ``localizer``,
  ``linker``, ``trajectory``, ``pixel_diffusion``), ``net`` (constructor arguments with a
  ``_target_`` inside ``smlmnet``, built with ``hydra.utils.instantiate``), ``weights_sha256``,
  ``training_ranges`` (what the training data covered: the domain guard compares movies with
  it), thresholds, calibration, metrics and the training command;
- ``weights.pt``: the ``state_dict`` (tensors only, loaded with ``weights_only=True``);
- ``MODEL_CARD.md``: generated from ``model.yaml`` by :func:`render_model_card`.

Each ``kind`` maps to the loader of its stage (``"module:function"``, imported only when such
a model is loaded: this package never imports a stage, so there is no import cycle). The
shipped folders live in ``smlmnet/pretrained/<name>/``.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from pathlib import Path

import yaml

from smlmnet.io.atomic import atomic_output_dir

PRETRAINED_ROOT = Path(__file__).resolve().parents[1] / "pretrained"

# kind -> (loader "module:function", what the kind is)
_KINDS: dict[str, tuple[str, str]] = {}


def register_kind(kind: str, loader: str, description: str) -> None:
    """Declare that model folders of ``kind`` are loaded by ``loader`` (``"pkg.mod:func"``,
    called as ``func(folder: Path, info: dict, device: str, **kwargs)``)."""
    if ":" not in loader:
        raise ValueError(f"loader must look like 'package.module:function'; got {loader!r}")
    _KINDS[kind] = (loader, description)


def kinds() -> dict[str, str]:
    """Registered kinds and their descriptions."""
    return {k: d for k, (_, d) in sorted(_KINDS.items())}


register_kind("localizer", "smlmnet.localize.decode.infer:load_localizer",
              "frames → localizations (DECODE-style network)")
register_kind("trajectory", "smlmnet.diffusion.trajnet.infer:load_trajectory_estimator",
              "tracks → per-track α, K and AnDi 1 motion model (trajectory network)")
register_kind("pixel_diffusion", "smlmnet.diffusion.mivit.infer:load_pixel_diffusion",
              "movie + tracks → per-track and per-localization D from pixel tubelets "
              "(MiViT, single-frame ViT or Pix2D-style CNN)")
register_kind("linker", "smlmnet.link.transformer.infer:load_linker",
              "localizations → tracks (transformer linker with gap edges)")

# model.yaml files written before the registry used these names for kinds
_KIND_ALIASES = {"decode_localizer": "localizer"}


class UnknownModelKindError(ValueError):
    """A model folder declares a kind that no stage registered."""


def list_models(kind: str | None = None) -> list[str]:
    """Names of the shipped models (only those of ``kind`` when given)."""
    names = sorted(p.name for p in PRETRAINED_ROOT.iterdir() if (p / "model.yaml").is_file())
    if kind is None:
        return names
    return [n for n in names if read_info(n)["kind"] == kind]


def model_dir(name_or_path: str | Path) -> Path:
    """The folder of a shipped model name or of a model folder path."""
    path = Path(name_or_path)
    if (path / "model.yaml").is_file():
        return path
    if (PRETRAINED_ROOT / str(name_or_path) / "model.yaml").is_file():
        return PRETRAINED_ROOT / str(name_or_path)
    raise FileNotFoundError(f"no model {str(name_or_path)!r}: neither a shipped model "
                            f"({', '.join(list_models()) or 'none'}) nor a folder with a "
                            "model.yaml")


def read_info(name_or_path: str | Path) -> dict:
    """``model.yaml`` of a model, with its kind normalized and validated."""
    folder = model_dir(name_or_path)
    info = yaml.safe_load((folder / "model.yaml").read_text()) or {}
    kind = _KIND_ALIASES.get(info.get("kind"), info.get("kind"))
    if kind not in _KINDS:
        raise UnknownModelKindError(
            f"{folder / 'model.yaml'}: unknown model kind {info.get('kind')!r}; this smlmnet "
            f"knows {', '.join(_KINDS)}")
    info["kind"] = kind
    return info


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_weights(folder: Path, info: dict, device: str = "cpu") -> dict:
    """The state dict of a model folder, after checking its content hash."""
    import torch

    path = folder / "weights.pt"
    expected = info.get("weights_sha256")
    if expected and file_sha256(path) != expected:
        raise ValueError(f"{path}: content hash differs from model.yaml's weights_sha256; the "
                         "weights file is corrupt or was replaced")
    return torch.load(path, map_location=device, weights_only=True)


def init_net_from(net, name_or_path: str | Path, new_parts: tuple[str, ...] = ()) -> dict:
    """Load a model folder's weights into ``net`` (fine-tuning). Its network must have the same
    constructor arguments as ``net`` (``net.config()``), else a ValueError names the
    differences. ``new_parts``: constructor arguments that add a sub-module of the same name
    (e.g. ``alpha_head``): they may differ, and the sub-module's weights may be missing from
    the folder (they keep their initialization); nothing else may. Returns the folder's
    ``model.yaml``."""
    info = read_info(name_or_path)
    theirs = {k: v for k, v in info["net"].items() if k != "_target_"}
    mine = net.config()
    differ = {k: (mine.get(k), v) for k, v in theirs.items()
              if k not in new_parts and mine.get(k) != v}
    if differ:
        raise ValueError(f"init_from={name_or_path!r}: its network differs from this one "
                         f"({differ}); set model.net to the same arguments")
    res = net.load_state_dict(load_weights(model_dir(name_or_path), info), strict=False)
    new = tuple(f"{p}." for p in new_parts)
    bad = [k for k in res.missing_keys if not k.startswith(new)] + list(res.unexpected_keys)
    if bad:
        raise ValueError(f"init_from={name_or_path!r}: weights do not match the network: {bad}")
    return info


def build_net(net_cfg: dict):
    """Instantiate a network from ``model.yaml``'s ``net`` (``_target_`` must be inside
    smlmnet: a model folder from elsewhere cannot make us import arbitrary code)."""
    from hydra.utils import instantiate

    target = str(net_cfg.get("_target_", ""))
    if not target.startswith("smlmnet."):
        raise ValueError(f"net._target_ must name a class inside smlmnet; got {target!r}")
    return instantiate(dict(net_cfg), _convert_="all")


def load(name_or_path: str | Path, device: str = "cpu", **kwargs):
    """Load a shipped model or a model folder as its stage's object (e.g. a
    :class:`~smlmnet.localize.base.Localizer` for kind ``localizer``)."""
    folder = model_dir(name_or_path)
    info = read_info(folder)
    module, func = _KINDS[info["kind"]][0].split(":")
    loader: Callable = getattr(importlib.import_module(module), func)
    return loader(folder, info, device, **kwargs)


def describe(name_or_path: str | Path) -> dict:
    """One line of ``smlmnet models``: name, kind, ranges, headline metrics, hash."""
    info = read_info(name_or_path)
    return {"name": info.get("name", Path(str(name_or_path)).name), "kind": info["kind"],
            "path": str(model_dir(name_or_path)),
            "training_ranges": info.get("training_ranges", {}),
            "validation": info.get("validation", {}),
            "weights_sha256": info.get("weights_sha256", "")[:12]}


def model_info_header(cfg, net, kind: str, description: str = "") -> dict:
    """The fields every exported model folder starts with: name (``cfg.model_name`` or the
    export folder's name), kind, description, the net's ``_target_`` and constructor
    arguments, the training command, provenance and ``trained_on``."""
    from smlmnet.io.provenance import provenance, reproduce_command

    return {"name": cfg.model_name or Path(cfg.export_pretrained).name, "kind": kind,
            "description": str(cfg.get("model_description") or description),
            "net": {"_target_": f"{type(net).__module__}.{type(net).__name__}",
                    **net.config()},
            "training_command": reproduce_command(), "provenance": provenance(),
            "trained_on": str(cfg.get("trained_on") or "see training_command"),
            **({"reproduce_note": str(cfg.reproduce_note)} if cfg.get("reproduce_note")
               else {})}


def write_model_folder(folder: str | Path, state_dict: dict, info: dict) -> Path:
    """Write a model folder atomically (refuses an existing non-empty folder): weights, then
    ``model.yaml`` with their hash, then the generated ``MODEL_CARD.md``."""
    import torch

    folder = Path(folder)
    if info.get("kind") not in _KINDS:
        raise UnknownModelKindError(f"unknown model kind {info.get('kind')!r}; known: "
                                    f"{', '.join(_KINDS)}")
    with atomic_output_dir(folder) as tmp:
        torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, tmp / "weights.pt")
        info = {**info, "weights_sha256": file_sha256(tmp / "weights.pt")}
        (tmp / "model.yaml").write_text(yaml.safe_dump(info, sort_keys=False,
                                                       allow_unicode=True))
        (tmp / "MODEL_CARD.md").write_text(render_model_card(info))
    return folder


def _scale_sentence(info: dict) -> str:
    """How the model's predicted σ are scaled, for its card."""
    single = _fmt(info.get("uncertainty_scale", 1.0))
    by_p = info.get("uncertainty_scale_by_p")
    if not by_p:
        return f"Predicted σ are multiplied by {single}."
    table = ", ".join(f"p {q:.3f}: ×{k:.3f}" for q, k in zip(by_p["p"], by_p["scale"]))
    return ("Predicted σ are multiplied by a factor that depends on the detection probability "
            f"p (tuned on the tuning split; linear between bin medians): {table}. "
            f"Single-scale fallback: {single}.")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "–".join(_fmt(x) for x in v) if len(v) == 2 and all(
            isinstance(x, (int, float)) for x in v) else ", ".join(_fmt(x) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    return str(v)


def _table(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    cols = list(rows[0])
    return (["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            + ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows])


def render_model_card(info: dict) -> str:
    """``MODEL_CARD.md`` generated from a model's ``model.yaml`` (never edited by hand)."""
    lines = [f"# {info.get('name', 'model')} ({info['kind']})", "",
             "<!-- generated from model.yaml by smlmnet.models.registry.render_model_card -->",
             "", info.get("description", "").strip(), "",
             "## Reproduce", "", f"```bash\n{info.get('training_command', '?')}\n```", ""]
    for key in ("reproduce_note", "metadata_note", "version_note", "gap_closing_note"):
        if info.get(key):
            lines += [str(info[key]).strip(), ""]
    if info.get("recalibration_command"):
        lines += ["Thresholds and uncertainty scale recomputed with:", "",
                  f"```bash\n{info['recalibration_command']}\n```", ""]
    facts = {k: info[k] for k in ("trained_on", "epochs", "global_steps", "exported_step",
                                  "train_items",
                                  "simulation_preset", "simulation_overrides",
                                  "window_shape_px", "pixel_size_nm", "initialized_from",
                                  "trained_parameters", "frozen_unchanged") if k in info}
    net = {k: v for k, v in (info.get("net") or {}).items()}
    lines += ["## Training", "", *(f"- {k}: {_fmt(v)}" for k, v in facts.items()),
              f"- network: {_fmt(net)}", f"- weights sha256: `{info.get('weights_sha256', '')}`",
              ""]
    ranges = info.get("training_ranges") or {}
    if ranges:
        lines += ["## Training ranges (the domain guard compares movies with these)", "",
                  "| quantity | range |", "|---|---|",
                  *(f"| {k} | {_fmt(v)} |" for k, v in ranges.items()), ""]
    if info.get("thresholds"):
        lines += ["## Thresholds", "", *(f"- {k}: {_fmt(v)}" for k, v in
                                         info["thresholds"].items()), ""]
    if info.get("threshold_scan"):
        lines += [f"Threshold scan on the tuning split ({info.get('tuning_split', '?')}):", "",
                  *_table(info["threshold_scan"]), ""]
    if info.get("validation"):
        lines += [f"## Validation ({info.get('validation_split', 'held-out split')})", "",
                  *_table([info["validation"]]), ""]
    if info.get("uncertainty_calibration"):
        lines += ["## Uncertainty calibration", "",
                  _scale_sentence(info),
                  "", *_table([info["uncertainty_calibration"]]), ""]
    if info.get("limits"):
        lines += ["## Limits", "", info["limits"].strip(), ""]
    return "\n".join(lines).rstrip() + "\n"


def load_best_checkpoint(module) -> tuple[str, int]:
    """After ``trainer.fit``: load the best validation checkpoint's ``net.*`` weights into
    ``module.net`` (when a checkpoint callback kept one). Returns ``(path, step)``: its path
    (``""`` if none) and the optimizer step of the weights now in ``module.net`` (the
    checkpoint's, else the module's last). A run stopped by ``trainer.max_time`` or validated
    only every few steps exports weights older than its ``global_steps``; a model folder
    records both (``exported_step``)."""
    import torch

    best = getattr(getattr(module.trainer, "checkpoint_callback", None), "best_model_path", "")
    if not best:
        return "", int(module.global_step)
    ckpt = torch.load(best, map_location="cpu", weights_only=True)
    module.net.load_state_dict({k[len("net."):]: v for k, v in ckpt["state_dict"].items()
                                if k.startswith("net.")})
    return best, int(ckpt["global_step"])

