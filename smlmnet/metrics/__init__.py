"""The community's metrics: SMLM challenge, Particle Tracking Challenge, AnDi, errors of D."""

from smlmnet.metrics.diffusion import (
    andi2_single_trajectory_scores,
    changepoint_scores,
    mae_alpha,
    msle_K,
    relative_error_D,
)
from smlmnet.metrics.localization import (
    error_vs_bound,
    excess_noise_factor,
    match_per_frame,
    mortensen_label,
    mortensen_precision_nm,
    normalized_error_summary,
    smlm_metrics,
)
from smlmnet.metrics.tracking import tracking_metrics

__all__ = ["andi2_single_trajectory_scores", "changepoint_scores", "error_vs_bound",
           "excess_noise_factor", "mae_alpha", "match_per_frame", "mortensen_label",
           "mortensen_precision_nm", "msle_K", "normalized_error_summary", "relative_error_D",
           "smlm_metrics", "tracking_metrics"]
