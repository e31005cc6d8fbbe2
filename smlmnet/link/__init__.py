"""Linking: connect localizations across frames into tracks."""

from smlmnet.link.assignment import solve_sparse_assignment
from smlmnet.link.base import FrameToFrameLinker, LAPLinker, Linker, NearestNeighborLinker

__all__ = ["FrameToFrameLinker", "LAPLinker", "Linker", "NearestNeighborLinker",
           "solve_sparse_assignment"]
