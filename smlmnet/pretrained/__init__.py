"""Shipped pretrained models: one folder each (``smlmnet/pretrained/<name>/``), loaded
offline through the one registry :mod:`smlmnet.models.registry`.

    >>> from smlmnet import pretrained
    >>> pretrained.list_models()              # shipped names
    >>> loc = pretrained.load("decode_sptpalm")   # a Localizer (kind "localizer")
"""

from smlmnet.models.registry import (
    UnknownModelKindError,
    describe,
    kinds,
    list_models,
    load,
    model_dir,
    read_info,
    write_model_folder,
)

__all__ = ["UnknownModelKindError", "describe", "kinds", "list_models", "load", "model_dir",
           "read_info", "write_model_folder"]
