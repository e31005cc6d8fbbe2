"""Linking: connect localizations across frames into tracks."""

from smlmnet.link.assignment import greedy_assignment, solve_sparse_assignment
from smlmnet.link.base import FrameToFrameLinker, LAPLinker, Linker, NearestNeighborLinker

__all__ = ["FrameToFrameLinker", "LAPLinker", "Linker", "NearestNeighborLinker",
           "greedy_assignment", "solve_sparse_assignment"]
