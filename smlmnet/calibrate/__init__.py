"""Calibrate a fluorescence movie from itself.

Camera offset and gain by photon transfer (variance and third cumulant vs mean over background
pixels), flags for clipped / background-subtracted / non-count movies, PSF σ from σ-free MLE
fits of bright isolated stationary spots, background level and map, photon distribution,
density and on-times; :meth:`Calibration.to_simulation_preset` simulates "like this movie".

    from smlmnet.calibrate import calibrate_tiff
    cal = calibrate_tiff("movie.tif", camera="emccd")
    print(cal.summary()); cal.to_dict(); cal.to_simulation_preset()
"""

from smlmnet.calibrate.calibration import Calibration, calibrate_movie
from smlmnet.calibrate.io import calibrate_tiff, write_calibration

__all__ = ["Calibration", "calibrate_movie", "calibrate_tiff", "write_calibration"]
