"""Diffusion analysis of trajectories."""

from smlmnet.diffusion.msd import ensemble_msd, time_averaged_msd, track_msds

__all__ = ["ensemble_msd", "time_averaged_msd", "track_msds"]
