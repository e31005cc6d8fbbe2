"""Readers and writers: TIFF movies, unit-explicit CSV tables, simulated datasets."""

from smlmnet.io.atomic import OutputExistsError, atomic_output_dir, atomic_write_path
from smlmnet.io.tiff import read_movie_tiff, write_movie_tiff

__all__ = ["OutputExistsError", "atomic_output_dir", "atomic_write_path", "read_movie_tiff",
           "write_movie_tiff"]
