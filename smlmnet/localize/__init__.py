"""Localization: find emitters and estimate their positions in every frame."""

from smlmnet.localize.base import LOCALIZATION_COLUMNS, Localizer, SpotFitLocalizer
from smlmnet.localize.detect import bandpass, detect_spots, extract_rois
from smlmnet.localize.fit import fit_centroid, fit_gaussian_mle

__all__ = ["LOCALIZATION_COLUMNS", "Localizer", "SpotFitLocalizer", "bandpass", "detect_spots",
           "extract_rois", "fit_centroid", "fit_gaussian_mle"]
