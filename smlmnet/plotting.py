"""Figures people would rather look at than read: tracks over the movie, MSD curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.cm
import matplotlib.colors
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from smlmnet.data import contracts as C  # noqa: E402
from smlmnet.diffusion.msd import track_msds  # noqa: E402
from smlmnet.io.atomic import atomic_write_path  # noqa: E402

CLASS_NAMES = {v: k for k, v in C.MOTION_CLASSES.items()}
CLASS_COLORS = {0: "tab:gray", 1: "tab:orange", 2: "tab:cyan", 3: "tab:red"}


def plot_simulation_overview(result, path: str | Path, n_msd_tracks: int = 8,
                             max_lag: int = 20, overwrite: bool = False) -> Path:
    """Save a 3-panel PNG: first frame with true positions, all true tracks over the
    maximum projection (coloured by motion class), and MSD curves of a few tracks with the
    theoretical 4Dτ lines. Positions are drawn in pixel units of the image (centre of pixel 0
    at 0.5 px, matching :mod:`smlmnet.data.contracts`)."""
    movie, em = result.movie, result.emitters
    a = movie.pixel_size_nm
    H, W = movie.frames.shape[1:]
    extent = (0, W, H, 0)  # pixel edges: pixel j spans [j, j+1)
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))

    ax = axes[0]
    ax.imshow(movie.frames[0], cmap="gray", extent=extent)
    f0 = em[(em[C.FRAME] == 0) & em[C.ON]]
    ax.scatter(f0[C.X_NM] / a, f0[C.Y_NM] / a, s=60, facecolors="none", edgecolors="yellow",
               linewidths=0.8, label="true emitters")
    ax.set_title(f"frame 0 ({len(f0)} emitters on)")
    ax.legend(loc="lower right", fontsize=8)

    ax = axes[1]
    ax.imshow(movie.frames.max(axis=0), cmap="gray", extent=extent)
    for _tid, g in em.groupby(C.TRACK_ID):
        cls = int(g[C.MOTION_CLASS].mode().iloc[0])
        ax.plot(g[C.X_NM] / a, g[C.Y_NM] / a, lw=0.9, color=CLASS_COLORS.get(cls, "w"))
    for cls, color in CLASS_COLORS.items():
        ax.plot([], [], color=color, label=CLASS_NAMES[cls])
    ax.set_xlim(0, W)
    ax.set_ylim(H, 0)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"true tracks over the max projection ({em[C.TRACK_ID].nunique()} tracks)")
    for ax in axes[:2]:
        ax.set_xlabel("x [px]")
        ax.set_ylabel("y [px]")

    ax = axes[2]
    dt = movie.frame_time_s
    lengths = em.groupby(C.TRACK_ID).size().sort_values(ascending=False)
    chosen = lengths.index[:n_msd_tracks]
    msd = track_msds(em[em[C.TRACK_ID].isin(chosen)], max_lag)
    tracks = result.tracks.set_index(C.TRACK_ID)
    for i, (tid, g) in enumerate(msd.groupby(C.TRACK_ID)):
        color = f"C{i % 10}"
        tau = g["lag"].to_numpy() * dt
        ax.loglog(tau, g["msd"].to_numpy() / 1e6, "o-", ms=3, color=color,
                  label=f"track {tid}: {tracks.loc[tid, 'model']}")
        D = tracks.loc[tid, C.D_UM2_S]
        alpha = tracks.loc[tid, C.ALPHA]
        if np.isfinite(D) and D > 0 and np.isfinite(alpha):
            ax.loglog(tau, 4 * D * tau**alpha, "--", color=color, lw=0.8)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("lag τ [s]")
    ax.set_ylabel("time-averaged MSD [µm²]")
    ax.set_title("MSD of the longest true tracks (dashed: 4Kτ^α)")
    ax.legend(fontsize=7)
    return _save(fig, path, overwrite)


def _save(fig, path: str | Path, overwrite: bool, bottom: float = 0.0) -> Path:
    """Lay out (leaving ``bottom`` of the height free for a footer), write atomically (format
    from the suffix, PNG by default) and close."""
    fig.tight_layout(rect=(0, bottom, 1, 1))
    path = Path(path)
    with atomic_write_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


def _mean_image(frames, max_frames: int = 500, batch: int = 100) -> np.ndarray:
    n = min(len(frames), max_frames)
    total = np.zeros(frames.shape[1:], float)
    for f0 in range(0, n, batch):
        total += np.asarray(frames[f0:min(f0 + batch, n)], float).sum(axis=0)
    return total / max(n, 1)


def _assumption_lines(assumptions: dict) -> str:
    """Two lines of the assumptions behind an analysis, for the report's footer."""
    cam = assumptions.get("camera") or {}
    cam_txt = cam.get("model", "?") + ("" if cam.get("model") in (None, "poisson") else
                                       f" (baseline {cam.get('baseline_adu')} ADU, "
                                       f"{cam.get('e_per_adu')} e⁻/ADU, gain "
                                       f"{cam.get('em_gain')}, QE {cam.get('qe')})")
    fallback = [d["localizer"] for d in assumptions.get("localizer_decision", [])
                if not d.get("used")]
    exposure = assumptions.get("exposure_time_s")
    return (f"pixel {assumptions.get('pixel_size_nm'):g} nm · frame "
            f"{assumptions.get('frame_time_s'):g} s · exposure "
            f"{'unknown' if exposure is None else f'{exposure:g} s'} · camera {cam_txt} · "
            f"PSF σ {assumptions.get('psf_sigma_nm', float('nan')):.0f} nm "
            f"({str(assumptions.get('psf_sigma_source', '?'))[:40]})\n"
            f"localizer {assumptions.get('localizer')}"
            + (f" (not used: {', '.join(fallback)})" if fallback else "")
            + f" · linker {_linker_text(assumptions)} · smlmnet "
            f"{assumptions.get('smlmnet_version')} {str(assumptions.get('commit', ''))[:8]}")


def _linker_text(assumptions: dict) -> str:
    """The linker and its settings in a few words (search radius and gaps of a classical
    linker; model, threshold used and birth share of a learned one)."""
    s = assumptions.get("linker_settings") or {}
    name = assumptions.get("linker")
    if s.get("threshold_used") is not None:
        return (f"{name} ({s.get('model')}, threshold {s['threshold_used']:.3g}, birth share "
                f"{s.get('birth_share') or 0:.3g}, gaps {s.get('max_gap_frames')})")
    radius = assumptions.get("search_radius_nm")
    return (f"{name} {radius:g} nm, gaps {assumptions.get('max_gap_frames')}"
            if radius is not None else str(name))


def plot_analysis_report(movie, result, path: str | Path, n_msd_tracks: int = 10,
                         max_lag: int = 10, overwrite: bool = False,
                         assumptions: dict | None = None) -> Path:
    """Save a 3-panel PNG: tracks over the mean image coloured by D (MLE), MSD curves of the
    longest tracks with 4Dτ + offset from the MLE, and histograms of log10 D; a footer states
    the ``assumptions`` (pixel size, timing, camera, PSF, localizer, linker) when given."""
    a = movie.pixel_size_nm
    H, W = movie.frames.shape[1:]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    ax = axes[0]
    ax.imshow(_mean_image(movie.frames), cmap="gray", extent=(0, W, H, 0))
    diff = result.diffusion.set_index(C.TRACK_ID) if len(result.diffusion) else None
    dcol = "mle D [um^2/s]"
    norm = matplotlib.colors.LogNorm(1e-3, 10)
    cmap = plt.get_cmap("viridis")
    for tid, g in result.tracks.groupby(C.TRACK_ID):
        if diff is None or tid not in diff.index or not np.isfinite(diff.loc[tid, dcol]):
            continue
        D = max(diff.loc[tid, dcol], 1e-3)
        ax.plot(g[C.X_NM] / a, g[C.Y_NM] / a, lw=0.8, color=cmap(norm(D)))
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax,
                 label="D (MLE) [µm²/s]", fraction=0.046)
    ax.set_title(f"{result.summary.get('n_tracks', 0)} tracks over the mean image")
    ax.set_xlabel("x [px]")
    ax.set_ylabel("y [px]")

    ax = axes[1]
    dt = movie.frame_time_s
    if diff is not None and len(diff):
        longest = diff.sort_values("n_points", ascending=False).index[:n_msd_tracks]
        msd = track_msds(result.tracks[result.tracks[C.TRACK_ID].isin(longest)], max_lag)
        for i, (tid, g) in enumerate(msd.groupby(C.TRACK_ID)):
            tau = g["lag"].to_numpy() * dt
            color = f"C{i % 10}"
            ax.plot(tau, g["msd"].to_numpy() / 1e6, "o", ms=3, color=color)
            D, s = diff.loc[tid, dcol], diff.loc[tid, "mle sigma [nm]"] / 1000
            R = result.summary.get("blur_coefficient_R", 0.0)
            if np.isfinite(D) and np.isfinite(s):
                ax.plot(tau, 4 * D * tau + 4 * s**2 - 8 * R * D * dt, "-", color=color, lw=0.8)
    ax.set_xlabel("lag τ [s]")
    ax.set_ylabel("time-averaged MSD [µm²]")
    ax.set_title("MSD of the longest tracks (lines: MLE fit)")

    ax = axes[2]
    if diff is not None and len(diff):
        bins = np.linspace(-3.5, 1.5, 41)
        for col, color in (("mle D [um^2/s]", "C0"), ("cve D [um^2/s]", "C1"),
                           ("pixel D [um^2/s]", "C2")):
            v = diff[col].to_numpy(float) if col in diff else np.array([])
            v = v[np.isfinite(v) & (v > 0)]
            ax.hist(np.log10(v), bins=bins, alpha=0.5, color=color,
                    label=f"{col.split()[0].upper()} (n={len(v)})")
        ax.legend()
    ax.set_xlabel("log10 D [µm²/s]")
    ax.set_ylabel("tracks")
    ax.set_title("diffusion coefficients")
    if assumptions:
        fig.text(0.01, 0.01, _assumption_lines(assumptions), fontsize=8, va="bottom",
                 family="monospace")
    return _save(fig, path, overwrite, bottom=0.09 if assumptions else 0.0)


def plot_diffusivity_map(dmap: np.ndarray, bin_px: int, path: str | Path,
                         overwrite: bool = False) -> Path:
    """Save the diffusivity map (median per-localization D per bin, µm²/s, log colour scale;
    :func:`smlmnet.diffusion.mivit.infer.diffusivity_map`) as a PNG."""
    fig, ax = plt.subplots(figsize=(6, 5))
    ny, nx = dmap.shape
    im = ax.imshow(dmap, cmap="viridis", norm=matplotlib.colors.LogNorm(1e-2, 10),
                   extent=(0, nx * bin_px, ny * bin_px, 0))
    fig.colorbar(im, ax=ax, label="median D from pixels [µm²/s]")
    ax.set_xlabel("x [px]")
    ax.set_ylabel("y [px]")
    ax.set_title(f"diffusivity map ({bin_px}×{bin_px} px bins)")
    return _save(fig, path, overwrite)
