"""Data contracts shared between stages, and on-the-fly training datasets."""

from smlmnet.data.contracts import (
    PIXEL_CENTER_OFFSET_PX,
    Movie,
    nm_to_pixel_index,
    pixel_index_to_nm,
)

__all__ = ["Movie", "PIXEL_CENTER_OFFSET_PX", "nm_to_pixel_index", "pixel_index_to_nm"]
