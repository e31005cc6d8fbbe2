"""Score a whole analysis (localizations, tracks, D) against simulated ground truth."""

from __future__ import annotations

import numpy as np

from smlmnet.data import contracts as C
from smlmnet.metrics.diffusion import relative_error_D
from smlmnet.metrics.localization import smlm_metrics
from smlmnet.metrics.tracking import majority_true_track, tracking_metrics


def score_analysis(sim, analysis, gate_px: float = 5.0, tolerance_nm: float = 250.0,
                   d_column: str = "mle D [um^2/s]", min_purity: float = 0.8) -> dict:
    """Localization (SMLM 2016), tracking (PTC, gate 5 px) and D scores.

    D is scored on estimated tracks whose localizations mostly (``min_purity``) belong to one
    true Brownian track, against that track's true D.
    """
    true = sim.emitters[sim.emitters[C.ON]]
    a = sim.movie.pixel_size_nm
    out = {"localization": smlm_metrics(true, analysis.localizations, tolerance_nm),
           "tracking": tracking_metrics(true, analysis.tracks, gate_px * a)}
    diff = analysis.diffusion
    if len(diff) and d_column in diff:
        owner = majority_true_track(analysis.tracks[analysis.tracks[C.TRACK_ID].isin(
            diff[C.TRACK_ID])], true, tolerance_nm)
        owner = owner[owner["purity"] >= min_purity]
        truth = sim.tracks.set_index(C.TRACK_ID)
        merged = diff.merge(owner, on=C.TRACK_ID)
        brownian = merged["true_track_id"].map(truth["model"]) == "brownian"
        merged = merged[brownian.to_numpy()]
        out["diffusion"] = {"n_tracks_scored": int(len(merged)), **relative_error_D(
            merged["true_track_id"].map(truth[C.D_UM2_S]).to_numpy(),
            merged[d_column].to_numpy())}
    out = {k: {kk: (float(vv) if isinstance(vv, (np.floating, float)) else vv)
               for kk, vv in v.items()} for k, v in out.items()}
    return out
