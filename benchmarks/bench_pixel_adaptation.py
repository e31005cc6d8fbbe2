"""Self-supervised adaptation of a pixel-diffusion model to a shifted microscope.

    python benchmarks/bench_pixel_adaptation.py [--model mivit_pixel_diffusion] [--steps 100]
        [--target-psf-sigma-px LO HI] [--target-photons LO HI] [--target-background LO HI]
        [--target-localizer-excess LO HI] [--target-pixel-size-nm LO HI] [--target-camera C]
        [--ssl-params all|norms_heads] [--w-ssl W] [--seeds ...]

A *target* microscope (by default PSF σ 2.8–3.5 px, above the 0.6–2.5 px of training, EMCCD
only; the flags shift other quantities, e.g. a localizer 2–3× worse than the Mortensen bound
where training saw 1–1.5×) gives unlabeled tubelets. Starting from the same weights, for the
same number of steps and batch size:

- ``zero-shot``: the model as shipped;
- ``ssl``: adapted without target labels: supervised loss on source (training-range) batches
  + the physics-consistency loss (:func:`smlmnet.diffusion.mivit.loss.
  physics_consistency_loss`) on unlabeled target batches;
- ``ssl held-out``: the same, but the network sees one half of each target track and the
  likelihood scores the other half's displacements (:func:`~smlmnet.diffusion.mivit.loss.
  heldout_split`), so it cannot be minimized by copying each track's own MLE;
- ``ssl blur``: the physics consistency of the motion-blur likelihood instead
  (:class:`smlmnet.diffusion.blur_likelihood.BlurLikelihoodEstimator` with its own fitted
  centres): the predicted ln D must explain each target tubelet's displacements *and* the
  widths of its blurred spots; the log-likelihood is computed on a grid of ln D without
  gradients and read at the prediction by linear interpolation (:func:`grid_nll`);
- ``ssl distill``: the blur likelihood as a *teacher*: its posterior of ln D (mean and
  variance, fitted centres) on each unlabeled target tubelet is the target of the network's
  Gaussian prediction (:func:`smlmnet.diffusion.mivit.loss.posterior_distillation_loss`),
  beside the source loss (:func:`smlmnet.diffusion.mivit.adapt.adapt_unlabeled`, the loop
  that ``smlmnet analyze --pixel-adapt`` runs on a movie). Unlike ``ssl blur``, whose
  gradient is the local slope of one noisy per-tubelet likelihood, the student is pulled to
  the whole posterior;
  ``--teacher-psf-error`` gives the teacher a PSF σ off by a random factor per tubelet (a
  calibration error), as a user's calibrated PSF would be;
- ``source only``: the same steps with the source loss alone (controls for the extra steps);
- ``labels``: fine-tuned with target labels (the supervised loss on target batches, all
  parameters): the reference the adaptation is measured against.

``--ssl-params norms_heads`` lets the unlabeled modes (and the source-only control) change
only the LayerNorm and head parameters. Also reported: the track MLE given the *true*
localization error and the blur likelihood's own estimate (posterior mean, fitted centres)
on the same test tubelets. ``--modes`` picks the adaptation modes to run. Reported: RMSE of
ln D on a fixed labelled target test set, and the fraction of the gap closed,
(zero-shot − ssl)/(zero-shot − labels).
Writes ``<out>/pixel_adaptation.{md,csv,json}``.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from smlmnet.diffusion.blur_likelihood import BlurLikelihoodEstimator
from smlmnet.diffusion.mivit.adapt import (
    PARAM_SUBSETS,
    adapt_unlabeled,
    make_optimizer,
    teacher_posterior,
)
from smlmnet.diffusion.mivit.lightning import net_forward
from smlmnet.diffusion.mivit.loss import (
    displacement_nll,
    heldout_split,
    physics_consistency_loss,
    supervised_loss,
)
from smlmnet.diffusion.mivit.targets import TubeletSimulator, to_network_batch, tubelet_features
from smlmnet.evaluation.andi1 import ci
from smlmnet.evaluation.report import write_report
from smlmnet.models.registry import load

TARGET = dict(psf_sigma_px=(2.8, 3.5), cameras={"emccd": 1.0})


@torch.no_grad()
def rmse(net, test) -> float:
    net.eval()
    e = (net_forward(net, test)["log_d"] - test["log_d"]).numpy()
    return float(np.sqrt(np.mean(e**2)))


@torch.no_grad()
def mle_rmse(test, n_grid: int = 161) -> float:
    """RMSE of ln D of the track MLE given the *true* localization variance: a grid search
    of the physics-consistency likelihood (:func:`displacement_nll`) over ln D (the test
    range ± 4): the track-based reference on the same tubelets."""
    y = test["log_d"]
    grid = torch.linspace(float(y.min()) - 4, float(y.max()) + 4, n_grid)
    nll = torch.stack([displacement_nll(g.expand_as(y), test["log_s2"], test["loc_px"],
                                        test["mask"], test["blur_R"])[0] for g in grid], 1)
    return float(torch.sqrt(torch.mean((grid[nll.argmin(1)] - y) ** 2)))


def grid_nll(log_d: torch.Tensor, grid: np.ndarray, loglik: np.ndarray,
             n_obs: np.ndarray) -> torch.Tensor:
    """−log L at the predicted ``log_d`` ``(B,)`` of a log-likelihood tabulated on ``grid``
    ``(G,)`` per tubelet (``loglik`` ``(B, G)``), linearly interpolated (gradient: the local
    slope), summed over tubelets / the number of observations ``n_obs`` ``(B,)``."""
    ll = torch.as_tensor(loglik, dtype=log_d.dtype)
    g0, dg = float(grid[0]), float(grid[1] - grid[0])
    pos = ((log_d - g0) / dg).clamp(0, len(grid) - 1 - 1e-6)
    i0 = pos.detach().floor().long()
    frac = pos - i0
    rows = torch.arange(len(log_d))
    val = ll[rows, i0] * (1 - frac) + ll[rows, i0 + 1] * frac
    return -val.sum() / float(max(np.sum(n_obs), 1))


def blur_physics_loss(net, sample: dict, blur: BlurLikelihoodEstimator) -> torch.Tensor:
    """``ssl blur``: :func:`grid_nll` of the blur likelihood at the network's prediction, per
    observation (two displacement coordinates and one width per frame, roughly)."""
    ll = blur.loglik(sample)
    out = net_forward(net, to_network_batch(sample))
    return grid_nll(out["log_d"], blur.grid, ll, 3 * np.asarray(sample["mask"]).sum(1))


def teacher_view(sample: dict, rng: np.random.Generator, psf_error: float) -> dict:
    """The tubelets as the teacher sees them: the PSF σ (px) multiplied by a random factor
    ``exp(N(0, psf_error²))`` per tubelet (0: the true σ)."""
    if psf_error <= 0:
        return sample
    sig = np.asarray(sample["psf_sigma_px"], float)
    return {**sample, "psf_sigma_px": sig * np.exp(psf_error * rng.standard_normal(sig.shape))}


def heldout_loss(net, sample: dict, rng: np.random.Generator) -> torch.Tensor:
    """Held-out physics consistency: the network sees one half of each tubelet's frames
    (features recomputed for that half) and is scored on the other half's displacements."""
    seen, held, use = heldout_split(sample["mask"], rng)
    if not use.any():
        return torch.zeros(())
    part = {k: (v[use] if isinstance(v, np.ndarray) and v.ndim and v.shape[0] == use.size
                else v) for k, v in sample.items()}
    part["mask"] = seen[use]
    part["features"] = tubelet_features(part["loc_px"], part["mask"])[0]
    b = to_network_batch(part)
    out = net_forward(net, b)
    return physics_consistency_loss(out["log_d"], out["log_s2"], b["loc_px"],
                                    torch.as_tensor(held[use]), b["blur_R"])


def _mean_ci(x) -> str:
    """'mean ± half-width of the 95 % t-interval' of paired differences over seeds."""
    mean, hw = ci(x)
    return f"{mean:+.4f} ± {hw:.4f}"


#: adaptation modes without target labels (module docstring)
MODES = ("ssl", "ssl held-out", "ssl blur", "ssl distill", "source only")

def adapt(net, mode: str, source: TubeletSimulator, target: TubeletSimulator, steps: int,
          batch: int, lr: float, seed: int, w_ssl: float = 1.0, params: str = "all",
          blur: BlurLikelihoodEstimator | None = None, psf_error: float = 0.0):
    """A copy of ``net`` after ``steps`` AdamW steps of one mode (module docstring); modes
    other than ``labels`` update only the ``params`` subset (:data:`PARAM_SUBSETS`)."""
    if mode == "ssl distill":   # the library's loop (what `analyze --pixel-adapt` runs)
        def draw(rng, n):
            x = target.sample(rng, n)
            return (x, *teacher_posterior(blur, teacher_view(x, rng, psf_error)))

        return adapt_unlabeled(net, source, draw, steps, batch, lr, seed, params, w_ssl)[0]
    net = copy.deepcopy(net).train()
    opt = make_optimizer(net, lr, "all" if mode == "labels" else params)
    # separate streams: every mode that uses source batches sees the same ones (paired)
    rng_source, rng_target = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
    for _ in range(steps):
        if mode == "labels":
            b = to_network_batch(target.sample(rng_target, batch))
            loss = supervised_loss(net_forward(net, b), b)["loss"]
        else:
            s = to_network_batch(source.sample(rng_source, batch))
            loss = supervised_loss(net_forward(net, s), s)["loss"]
            if mode == "ssl":
                t = to_network_batch(target.sample(rng_target, batch))
                out = net_forward(net, t)
                loss = loss + w_ssl * physics_consistency_loss(
                    out["log_d"], out["log_s2"], t["loc_px"], t["mask"], t["blur_R"])
            elif mode == "ssl held-out":
                loss = loss + w_ssl * heldout_loss(net, target.sample(rng_target, batch),
                                                   rng_target)
            elif mode == "ssl blur":
                loss = loss + w_ssl * blur_physics_loss(net, target.sample(rng_target, batch),
                                                        blur)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mivit_pixel_diffusion")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--n-test", type=int, default=1024)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--target-psf-sigma-px", type=float, nargs=2, default=TARGET["psf_sigma_px"],
                   help="the target microscope's PSF σ range (px)")
    p.add_argument("--target-photons", type=float, nargs=2, default=None,
                   help="the target's photons per frame range (default: training ranges)")
    p.add_argument("--target-background", type=float, nargs=2, default=None,
                   help="the target's background photons/px range (default: training ranges)")
    p.add_argument("--target-localizer-excess", type=float, nargs=2, default=None,
                   help="the target localizer's error factor on the Mortensen bound "
                        "(training: 1.0–1.5)")
    p.add_argument("--target-pixel-size-nm", type=float, nargs=2, default=None,
                   help="the target's pixel size range (training: 80–160 nm)")
    p.add_argument("--ssl-params", default="all", choices=sorted(PARAM_SUBSETS),
                   help="parameters the unlabeled modes may change")
    p.add_argument("--target-camera", default="emccd", choices=["poisson", "scmos", "emccd"])
    p.add_argument("--w-ssl", type=float, default=1.0, help="weight of the unlabeled loss")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES),
                   help="adaptation modes to run (labels is always run: the reference)")
    p.add_argument("--teacher-prior", default="training", choices=["training", "flat"],
                   help="the blur likelihood's prior on D: the model's training range "
                        "(log-uniform) or flat over its whole grid")
    p.add_argument("--teacher-psf-error", type=float, default=0.0,
                   help="sd of the ln-factor on the PSF σ that the blur-likelihood teacher "
                        "(ssl distill, and the blur likelihood row) is given")
    p.add_argument("--out", default="benchmarks/results/pixel_adaptation")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    est = load(args.model)
    T = est.frames
    shared = {k: v for k, v in (est.info.get("training_ranges") or {}).items()
              if k in ("D_um2_s", "pixel_size_nm")}
    light = {k: tuple(v) for k, v in (("photons", args.target_photons),
                                      ("background_photons_per_px", args.target_background))
             if v is not None}
    source = TubeletSimulator(frames=T, **shared)
    target_ranges = dict(psf_sigma_px=tuple(args.target_psf_sigma_px),
                         cameras={args.target_camera: 1.0}, **light)
    if args.target_localizer_excess:
        target_ranges["localizer_excess"] = tuple(args.target_localizer_excess)
    if args.target_pixel_size_nm:
        target_ranges["pixel_size_nm"] = tuple(args.target_pixel_size_nm)
    target = TubeletSimulator(frames=T, **{**shared, **target_ranges})
    # the teacher's prior on D is the network's training range (the prior the student learned)
    blur = BlurLikelihoodEstimator(substeps=source.substeps, positions="fitted",
                                   frames=T, size=source.size,
                                   prior_d_um2_s=None if args.teacher_prior == "flat"
                                   else source.D_um2_s)
    modes = [m for m in MODES if m in args.modes]
    rows = []
    for seed in args.seeds:
        raw = target.sample(np.random.default_rng(10_000 + seed), args.n_test)
        test = to_network_batch(raw)
        e_blur = (blur.predict_tubelets(teacher_view(raw, np.random.default_rng(
            20_000 + seed), args.teacher_psf_error))["log_d"] - raw["log_d"])
        row = {"seed": seed, "track MLE (true σ_loc)": mle_rmse(test),
               "blur likelihood": float(np.sqrt(np.mean(e_blur**2))),
               "zero-shot": rmse(est.net, test)}
        for mode in modes + ["labels"]:
            net = adapt(est.net, mode, source, target, args.steps, args.batch, args.lr, seed,
                        args.w_ssl, args.ssl_params, blur, args.teacher_psf_error)
            row[mode] = rmse(net, test)
        gap = row["zero-shot"] - row["labels"]
        for mode in modes:
            row[f"gap closed by {mode}"] = ((row["zero-shot"] - row[mode]) / gap if gap > 0
                                            else np.nan)
        rows.append(row)
        print(row, flush=True)
    table = pd.DataFrame(rows)
    gap = table["zero-shot"] - table["labels"]
    summary = []
    for mode in modes:
        d_src, d_zero = table[mode] - table["source only"], table[mode] - table["zero-shot"]
        summary.append({
            "mode": mode, "seeds": len(table),
            "minus zero-shot": _mean_ci(d_zero), "minus source only": _mean_ci(d_src),
            # ratio of means: robust to a seed whose labelled gap is near 0
            "share of the mean gap closed": round(float(-d_zero.mean() / gap.mean()), 3)
            if gap.mean() > 0 else np.nan})
    notes = [f"Model {args.model}; target microscope {target_ranges} (other quantities in the "
             f"training ranges); source batches from the training ranges; {args.steps} AdamW "
             f"steps of {args.batch} tubelets, lr "
             f"{args.lr}, per mode from the same weights; test: {args.n_test} labelled target "
             "tubelets per seed. RMSE of ln D."
             + (f" The blur-likelihood teacher sees the PSF σ off by a factor "
                f"exp(N(0, {args.teacher_psf_error}²)) per tubelet."
                if args.teacher_psf_error > 0 else
                " The blur-likelihood teacher is given each tubelet's true PSF σ.")
             + f" Its prior on D: {blur.assumptions().split('precision, ')[-1]}."]
    notes.append(f"Labelled gap (zero-shot − labels): {_mean_ci(gap)}. Paired over seeds: "
                 "mean ± 95 % t-interval; 'minus source only' is what the unlabeled term adds "
                 "beyond the same steps on source batches (negative: better).")
    write_report(Path(args.out), "pixel_adaptation",
                 "Self-supervised adaptation to a shifted microscope", table, notes,
                 config=vars(args),
                 extra_tables={"Paired over seeds (RMSE of ln D differences)":
                               pd.DataFrame(summary)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
