"""Label-free adaptation of a pixel-diffusion network to a microscope (``ssl distill``).

A physics *teacher*, the motion-blur likelihood
(:class:`smlmnet.diffusion.blur_likelihood.BlurLikelihoodEstimator`: each frame's Gaussian
fit, the track's displacements and the blur widths, camera noise per frame, no weights),
gives a posterior of ln D for each unlabeled tubelet. The network is fine-tuned to it
(:func:`~smlmnet.diffusion.mivit.loss.posterior_distillation_loss`) while a supervised loss
on simulated batches of its own training ranges keeps it from forgetting them. The teacher's
prior on D is the network's training range, the prior the network itself learned.

Why a teacher and not the physics-consistency loss: the per-tubelet likelihood scored at the
prediction (``ssl``/``ssl blur`` in ``benchmarks/bench_pixel_adaptation.py``) has the noisy
per-track MLE as its minimizer and a gradient of one local slope; the posterior carries the
whole likelihood, and on a shifted microscope the physics (re-fitted per frame) is what did
not shift.

- :func:`teacher_for`: the teacher a network is adapted with.
- :func:`adapt_unlabeled`: the fine-tuning loop (draws of unlabeled tubelets with their
  teacher posterior from a callable, so a simulator and a movie's tubelets share it).
- :func:`pool_drawer`: draws from a fixed pool of a movie's tubelets (posterior computed once).
- :func:`adapt_to_movie`: the whole thing for ``smlmnet analyze --pixel-adapt``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

import numpy as np
import torch

from smlmnet.diffusion.mivit.lightning import net_forward
from smlmnet.diffusion.mivit.loss import posterior_distillation_loss, supervised_loss
from smlmnet.diffusion.mivit.targets import TubeletSimulator, to_network_batch

log = logging.getLogger(__name__)

#: parameter subsets an unlabeled adaptation may change
PARAM_SUBSETS = {"all": lambda name: True,
                 "norms_heads": lambda name: "norm" in name or "head" in name}

#: a draw of unlabeled tubelets: ``(rng, n) -> (sample, posterior mean, posterior var)``,
#: the posterior of ln D_px ``(n,)`` each
Draw = Callable[[np.random.Generator, int], tuple]


def make_optimizer(net: torch.nn.Module, lr: float, params: str = "all"):
    """AdamW (weight decay 0.01) over the ``params`` subset (:data:`PARAM_SUBSETS`)."""
    if params not in PARAM_SUBSETS:
        raise ValueError(f"params must be one of {sorted(PARAM_SUBSETS)}; got {params!r}")
    keep = PARAM_SUBSETS[params]
    return torch.optim.AdamW([p for name, p in net.named_parameters() if keep(name)], lr=lr,
                             weight_decay=0.01)


def teacher_for(training_ranges: dict, substeps: int = 64, frames: int = 16, size: int = 15):
    """The blur-likelihood teacher of a network with these ``training_ranges`` (its prior on
    D is their ``D_um2_s``; centres fitted per frame, so a localizer worse than its bound does
    not leak into the teacher)."""
    from smlmnet.diffusion.blur_likelihood import BlurLikelihoodEstimator

    return BlurLikelihoodEstimator(substeps=substeps, positions="fitted", frames=frames,
                                   size=size,
                                   prior_d_um2_s=tuple(training_ranges.get("D_um2_s",
                                                                           (0.01, 10.0))))


def teacher_posterior(teacher, sample: dict) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and variance ``(B,)`` of ln D_px from the teacher."""
    post = teacher.predict_tubelets(sample)
    return post["log_d"], np.exp(post["log_var"])


def distill_loss(net, sample: dict, post_mean, post_var) -> torch.Tensor:
    """The network's :func:`posterior_distillation_loss` on ``sample`` against a posterior."""
    out = net_forward(net, to_network_batch(sample))
    dtype = out["log_d"].dtype
    return posterior_distillation_loss(out, torch.as_tensor(post_mean, dtype=dtype),
                                       torch.as_tensor(post_var, dtype=dtype))


def adapt_unlabeled(net, source: TubeletSimulator, draw: Draw, steps: int = 150,
                    batch: int = 64, lr: float = 5e-4, seed: int = 0, params: str = "all",
                    w_unlabeled: float = 1.0, progress: bool = False,
                    desc: str = "adapting (ssl distill)"):
    """A copy of ``net`` after ``steps`` AdamW steps of supervised loss on ``batch`` source
    tubelets + ``w_unlabeled`` × :func:`distill_loss` on ``batch`` draws from ``draw``.

    Source batches come from ``rng([seed, 0])``, unlabeled draws from ``rng([seed, 1])``
    (so runs with the same seed see the same source batches); ``desc`` labels the progress
    bar (``progress``). Returns ``(net, history)``:
    the adapted copy (eval mode) and per step the two loss terms.
    """
    net = copy.deepcopy(net).train()
    opt = make_optimizer(net, lr, params)
    rng_source, rng_target = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
    history = []
    it = range(steps)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=desc, unit="step")
    for _ in it:
        s = to_network_batch(source.sample(rng_source, batch))
        sup = supervised_loss(net_forward(net, s), s)["loss"]
        sample, mean, var = draw(rng_target, batch)
        dist = distill_loss(net, sample, mean, var)
        loss = sup + w_unlabeled * dist
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append({"supervised": sup.item(), "distill": dist.item()})
    return net.eval(), history


def pool_drawer(tubelets: dict, teacher) -> tuple[Draw, dict]:
    """A :data:`Draw` of random subsets (with replacement across draws, without within one)
    of a fixed pool of tubelets (e.g. one movie's), the teacher's posterior computed once;
    per-tubelet arrays are indexed, other entries (a movie's ``read_var``) passed on. Also
    returns the pool's posterior ``{"mean", "var"}``."""
    mean, var = teacher_posterior(teacher, tubelets)
    n = len(mean)
    keys = [k for k, v in tubelets.items() if isinstance(v, np.ndarray) and v.ndim
            and v.shape[0] == n]

    def draw(rng: np.random.Generator, size: int):
        idx = rng.choice(n, size=min(size, n), replace=False)
        return ({k: (v[idx] if k in keys else v) for k, v in tubelets.items()}, mean[idx],
                var[idx])

    return draw, {"mean": mean, "var": var}


def source_ranges(training_ranges: dict) -> dict:
    """:class:`TubeletSimulator` keyword arguments that re-create a model folder's
    ``training_ranges`` (cameras and halo at the simulator's defaults, which are those of
    training)."""
    rename = {"localizer_error_factor": "localizer_excess"}
    keys = ("D_um2_s", "pixel_size_nm", "frame_time_s", "psf_sigma_px", "photons",
            "background_photons_per_px", "exposure_fraction", "substeps",
            "stroboscopic_probability", "localizer_error_factor", "alpha",
            "anomalous_probability")
    return {rename.get(key, key): (tuple(v) if isinstance(v, list) else v)
            for key in keys if (v := training_ranges.get(key)) is not None}


def adapt_to_movie(estimator, movie, tracks, psf_sigma_nm: float, steps: int = 150,
                   batch: int = 64, lr: float = 5e-4, seed: int = 0, params: str = "all",
                   progress: bool = False) -> tuple[object, dict]:
    """Adapt a :class:`~smlmnet.diffusion.mivit.infer.PixelDiffusionEstimator` to one movie
    without labels: its tracks' tubelets (:meth:`movie_tubelets`), the teacher
    (:func:`teacher_for` the model's training ranges, continuous motion) and
    :func:`adapt_unlabeled` with source batches from the training ranges.

    Returns ``(adapted estimator, record)``: a new estimator (same info, with
    ``adaptation`` added) and what was done (tubelets, steps, teacher assumptions, the
    loss terms of the first and last 10 steps).
    """
    from smlmnet.diffusion.mivit.infer import PixelDiffusionEstimator

    ranges = dict(estimator.info.get("training_ranges") or {})
    tub = estimator.movie_tubelets(movie, tracks.reset_index(drop=True), psf_sigma_nm)
    if len(tub["track"]) == 0:
        raise ValueError("no tracks to adapt on (--pixel-adapt needs tracked molecules; "
                         "lower --min-length or check the localizer)")
    teacher = teacher_for(ranges, frames=estimator.frames, size=estimator.size)
    draw, post = pool_drawer(tub, teacher)
    source = TubeletSimulator(frames=estimator.frames, size=estimator.size,
                              **source_ranges(ranges))
    net, history = adapt_unlabeled(estimator.net, source, draw, steps, batch, lr, seed,
                                   params, progress=progress)
    first, last = history[:10], history[-10:]
    record = {"method": "ssl distill (blur-likelihood teacher, no labels)",
              "tubelets": int(len(post["mean"])), "steps": int(steps), "batch": int(batch),
              "lr": float(lr), "seed": int(seed), "parameters": params,
              "teacher": teacher.assumptions(), "psf_sigma_nm": float(psf_sigma_nm),
              "distill_loss_first10": float(np.mean([h["distill"] for h in first])),
              "distill_loss_last10": float(np.mean([h["distill"] for h in last])),
              "supervised_loss_first10": float(np.mean([h["supervised"] for h in first])),
              "supervised_loss_last10": float(np.mean([h["supervised"] for h in last]))}
    info = {**copy.deepcopy(estimator.info), "adaptation": record}
    adapted = PixelDiffusionEstimator(net, info=info, device=estimator.device,
                                      batch_size=estimator.batch_size,
                                      substeps=estimator.substeps)
    return adapted, record
