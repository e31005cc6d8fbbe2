"""Configs that ship inside the package: the simulation presets (``simulation/``, also a
Hydra config group through ``hydra.searchpath: pkg://smlmnet.configs``)."""
