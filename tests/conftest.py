import os

import numpy as np
import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def z_tolerance(std: float, z: float = 5.0) -> float:
    """Statistical tolerance: z standard errors (z = 5 → false alarm ~6e-7 per check)."""
    return z * std
