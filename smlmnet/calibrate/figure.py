"""Calibration figure: photon-transfer plot, PSF σ histogram, photons, background map."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from smlmnet.io.atomic import atomic_write_path


def plot_calibration(cal, path: str | Path, overwrite: bool = False) -> Path:
    """Write a 2×2 PNG for a :class:`~smlmnet.calibrate.Calibration` (matplotlib, Agg):
    per-bin variance vs mean (ADU², ADU) with the fitted line, histogram of the fitted PSF σ
    (nm), histogram of spot photons, and the smoothed background map (photons/px)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(10, 8))
    b = cal.diagnostics.get("bins") or {}
    pt = cal.photon_transfer
    a = ax[0, 0]
    if b:
        m, v, se = (np.asarray(b[k]) for k in ("mean", "var", "var_se"))
        used = np.asarray(b["used"], bool)
        a.errorbar(m[used], v[used], se[used], fmt="o", ms=3, label="bins (used)")
        if (~used).any():
            a.plot(m[~used], v[~used], "x", color="grey", label="rejected")
        if pt.get("slope_adu") is not None:
            xx = np.linspace(min(m.min(), cal.offset_adu or m.min()), m.max(), 50)
            a.plot(xx, pt["slope_adu"] * xx + pt["intercept_adu2"], "r-",
                   label=f"fit: {cal.e_per_adu or float('nan'):.3g} e-/ADU, offset "
                         f"{cal.offset_adu if cal.offset_adu is not None else float('nan'):.1f}"
                         f" ADU, R²={pt.get('r2') or float('nan'):.4f}")
        a.legend(fontsize=8)
    a.set_xlabel("temporal mean [ADU]")
    a.set_ylabel("temporal variance [ADU²]")
    a.set_title(f"photon transfer ({cal.camera_model}, F={cal.excess_factor:g})")
    a = ax[0, 1]
    s = np.asarray(cal.diagnostics.get("sigma_values_nm", []))
    if s.size:
        a.hist(s, bins=30)
        if cal.psf_sigma_nm is not None:
            a.axvline(cal.psf_sigma_nm, color="r",
                      label=f"median {cal.psf_sigma_nm:.1f} nm (n={cal.n_psf_spots})")
            a.legend(fontsize=8)
    a.set_xlabel("fitted PSF σ [nm]")
    a.set_title("PSF σ of bright isolated spots")
    a = ax[1, 0]
    p = np.asarray(cal.diagnostics.get("photons_values", []))
    if p.size:
        a.hist(p, bins=40)
    a.set_xlabel("photons per spot and frame")
    a.set_title(f"{cal.n_localizations} localizations")
    a = ax[1, 1]
    bg = cal.diagnostics.get("background_map")
    if bg is not None:
        im = a.imshow(bg, cmap="magma")
        fig.colorbar(im, ax=a, label="background [photons/px]")
    a.set_title("background map")
    fig.tight_layout()
    path = Path(path)
    with atomic_write_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path
