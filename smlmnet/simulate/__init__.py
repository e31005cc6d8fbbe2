"""Simulation of single-particle-tracking movies with ground truth.

Typical use::

    from smlmnet.simulate import load_config, simulate, save_dataset
    cfg = load_config("sptpalm_membrane", ["n_frames=50"])
    result = simulate(cfg)
    save_dataset(result, "my_dataset")

    # a movie of any length, simulated and written chunk by chunk in bounded memory
    simulate_to_folder(load_config("sptpalm_membrane", ["n_frames=100000"]), "long_dataset")
"""

from smlmnet.simulate.config import (
    ConfigError,
    SimulationConfig,
    list_presets,
    load_config,
)
from smlmnet.simulate.dataset import StreamedDataset, load_dataset, save_dataset, simulate_to_folder
from smlmnet.simulate.movie import SimulationResult, blur_coefficient, simulate
from smlmnet.simulate.trajectories import Trajectories, simulate_trajectories

__all__ = [
    "ConfigError",
    "SimulationConfig",
    "SimulationResult",
    "StreamedDataset",
    "Trajectories",
    "blur_coefficient",
    "list_presets",
    "load_config",
    "load_dataset",
    "save_dataset",
    "simulate",
    "simulate_to_folder",
    "simulate_trajectories",
]
