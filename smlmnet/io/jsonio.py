"""Strict JSON for every file smlmnet writes.

Python's ``json`` writes ``NaN``/``Infinity`` by default, which is not JSON: strict parsers
(JavaScript, ``jq``, many other languages) refuse such files. Values that are not finite
numbers (an estimate that could not be computed) are written as ``null`` instead; numpy
scalars and arrays become plain numbers and lists, paths become strings.
"""

from __future__ import annotations

import json
import math
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from smlmnet.io.atomic import atomic_write_path


def to_json_value(obj: Any) -> Any:
    """``obj`` with numpy types converted and non-finite floats replaced by ``None``."""
    if isinstance(obj, dict):
        return {str(k): to_json_value(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_json_value(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_json_value(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, PurePath):
        return str(obj)
    return obj


def dumps_strict(obj: Any, **kwargs) -> str:
    """``json.dumps`` that never writes NaN/Infinity (they become ``null``)."""
    return json.dumps(to_json_value(obj), allow_nan=False, **kwargs)


def write_json(path: str | Path, obj: Any, overwrite: bool = False) -> Path:
    """Write ``obj`` as strict, indented JSON atomically (refuses to overwrite unless asked)."""
    with atomic_write_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(dumps_strict(obj, indent=2) + "\n")
    return Path(path)
