"""Random parameter specifications used in simulation configs.

A parameter in a config is one of

- a number: every particle gets that value;
- ``{low: a, high: b}``: uniform on [a, b]; add ``log: true`` for log-uniform (needs a > 0);
- ``{mean: m, std: s}``: normal, clipped below at ``min`` (default 0);
- ``{choices: [v1, v2, ...]}``: one of the values, optionally with ``p: [p1, p2, ...]``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


class ConfigError(ValueError):
    """A simulation or experiment config value is invalid; the message names the key."""


def _as_float(value, where: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if not np.isfinite(out):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    return out


def param_bounds(spec, where: str) -> tuple[float, float]:
    """Smallest and largest value that ``spec`` can produce (validates its form)."""
    if isinstance(spec, bool):
        raise ConfigError(f"{where}: expected a number or a distribution, got {spec!r}")
    if isinstance(spec, (int, float, np.number)):
        v = _as_float(spec, where)
        return v, v
    if isinstance(spec, Mapping):
        keys = set(spec)
        if "choices" in keys:
            extra = keys - {"choices", "p"}
            if extra:
                raise ConfigError(f"{where}: unknown keys {sorted(extra)} beside 'choices'")
            values = [_as_float(v, f"{where}.choices") for v in spec["choices"]]
            if not values:
                raise ConfigError(f"{where}.choices is empty")
            if "p" in spec and spec["p"] is not None:
                p = np.asarray([_as_float(v, f"{where}.p") for v in spec["p"]])
                if len(p) != len(values) or (p < 0).any() or not np.isclose(p.sum(), 1.0):
                    raise ConfigError(
                        f"{where}.p must be {len(values)} non-negative probabilities summing to 1"
                    )
            return min(values), max(values)
        if {"mean", "std"} <= keys:
            extra = keys - {"mean", "std", "min"}
            if extra:
                raise ConfigError(f"{where}: unknown keys {sorted(extra)} beside 'mean'/'std'")
            mean, std = _as_float(spec["mean"], f"{where}.mean"), _as_float(spec["std"],
                                                                           f"{where}.std")
            if std < 0:
                raise ConfigError(f"{where}.std must be >= 0; got {std}")
            low = _as_float(spec.get("min", 0.0), f"{where}.min")
            if mean < low:
                raise ConfigError(f"{where}.mean={mean} is below its clip value min={low}")
            return low, mean + 10 * std
        if {"low", "high"} <= keys:
            extra = keys - {"low", "high", "log"}
            if extra:
                raise ConfigError(f"{where}: unknown keys {sorted(extra)} beside 'low'/'high'")
            low = _as_float(spec["low"], f"{where}.low")
            high = _as_float(spec["high"], f"{where}.high")
            if high < low:
                raise ConfigError(f"{where}: high={high} is smaller than low={low}")
            if spec.get("log", False) and low <= 0:
                raise ConfigError(f"{where}: a log-uniform range needs low > 0, got low={low}")
            return low, high
    raise ConfigError(
        f"{where}: expected a number, {{low, high[, log]}}, {{mean, std[, min]}} or "
        f"{{choices[, p]}}, got {spec!r}"
    )


def check_param(spec, where: str, low=None, high=None, low_open=False, high_open=False) -> None:
    """Raise :class:`ConfigError` unless every value of ``spec`` lies in the allowed range."""
    lo, hi = param_bounds(spec, where)
    if low is not None and (lo < low or (low_open and lo <= low)):
        bound = f"> {low}" if low_open else f">= {low}"
        raise ConfigError(f"{where} must be {bound}; got {spec!r}")
    if high is not None and (hi > high or (high_open and hi >= high)):
        bound = f"< {high}" if high_open else f"<= {high}"
        raise ConfigError(f"{where} must be {bound}; got {spec!r}")


def sample_param(spec, rng: np.random.Generator, n: int) -> np.ndarray:
    """Draw ``n`` values of ``spec`` (float64 array of shape ``(n,)``)."""
    if isinstance(spec, (int, float, np.number)):
        return np.full(n, float(spec))
    if "mean" in spec:
        values = rng.normal(float(spec["mean"]), float(spec["std"]), size=n)
        return np.maximum(values, float(spec.get("min", 0.0)))
    if "choices" in spec:
        values = np.asarray(spec["choices"], dtype=float)
        return rng.choice(values, size=n, p=spec.get("p"))
    low, high = float(spec["low"]), float(spec["high"])
    if spec.get("log", False):
        return np.exp(rng.uniform(np.log(low), np.log(high), size=n))
    return rng.uniform(low, high, size=n)
