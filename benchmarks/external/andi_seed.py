"""Seed every random generator that andi-datasets draws from (imported by the ``make_andi*``
scripts, which run in andi-datasets' own environment).

``np.random.seed`` alone is not enough: the fractional-Brownian noise of andi-datasets' models
(``models_phenom`` and the AnDi 1 models) comes from the ``stochastic`` package, which keeps its
own generator; unseeded, the same seed gives other trajectories on every run (the starting
positions match, later frames do not).
"""

import numpy as np


def seed_andi(seed: int) -> None:
    """Seed numpy's global generator and, when installed, ``stochastic``'s."""
    np.random.seed(seed)
    try:
        from stochastic import random as stochastic_random
    except ImportError:
        return
    stochastic_random.seed(seed)
