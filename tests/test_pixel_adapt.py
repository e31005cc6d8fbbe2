"""Label-free adaptation of pixel-diffusion networks (``ssl distill``): the teacher's prior
range, the distillation loss and the adaptation loop."""

import numpy as np
import pytest
import torch

from smlmnet.diffusion.blur_likelihood import BlurLikelihoodEstimator
from smlmnet.diffusion.mivit.adapt import (
    adapt_unlabeled,
    pool_drawer,
    source_ranges,
    teacher_for,
)
from smlmnet.diffusion.mivit.loss import posterior_distillation_loss
from smlmnet.diffusion.mivit.net import MiViT
from smlmnet.diffusion.mivit.targets import TubeletSimulator
from smlmnet.diffusion.tubelets import log_d_px_to_um2_s, um2_s_to_log_d_px


def test_distillation_loss_is_minimized_at_the_teacher_posterior():
    """E_p[Gaussian NLL] = ½(log s² + ((m − μ)² + v)/s²): zero gradient at μ = m, s² = v
    (exact, so float tolerance), and larger anywhere around it."""
    m, v = torch.tensor([1.3, -2.0]), torch.tensor([0.2, 1.5])

    def loss(mu, lv):
        return posterior_distillation_loss({"log_d": mu, "log_var": lv}, m, v)

    mu, lv = m.clone().requires_grad_(), torch.log(v).requires_grad_()
    loss(mu, lv).backward()
    assert mu.grad.abs().max() < 1e-6 and lv.grad.abs().max() < 1e-6
    best = float(loss(m, torch.log(v)))
    for dm, dl in ((0.1, 0), (-0.1, 0), (0, 0.2), (0, -0.2)):
        assert float(loss(m + dm, torch.log(v) + dl)) > best


def test_unit_conversion_round_trips():
    x = um2_s_to_log_d_px(np.array([0.01, 1.0, 10.0]), 0.02, 107.0)
    np.testing.assert_allclose(log_d_px_to_um2_s(x, 0.02, 107.0), [0.01, 1.0, 10.0])


def test_the_prior_range_holds_an_uninformative_tubelet_and_names_what_it_needs():
    """A dim 4-frame tubelet tells little: with the flat prior over the whole grid the
    posterior mean can sit outside the plausible D range; with ``prior_d_um2_s`` it lies
    inside that range (converted with the tubelet's frame time and pixel size)."""
    sim = TubeletSimulator(frames=8, min_length=4)
    s = sim.sample(np.random.default_rng(3), 16, D_um2_s=1.0, photons=150.0,
                   background_photons_per_px=200.0, frame_time_s=0.02, pixel_size_nm=100.0,
                   exposure_fraction=1.0)
    s["mask"][:, 4:] = False
    with_prior = BlurLikelihoodEstimator(substeps=8, frames=8, prior_d_um2_s=(0.01, 10.0))
    lo, hi = um2_s_to_log_d_px(np.array([0.01, 10.0]), 0.02, 100.0)
    step = with_prior.grid[1] - with_prior.grid[0]
    mean = with_prior.predict_tubelets(s)["log_d"]
    assert np.all((mean >= lo - step) & (mean <= hi + step))
    flat = BlurLikelihoodEstimator(substeps=8, frames=8).predict_tubelets(s)["log_d"]
    assert np.any((flat < lo - step) | (flat > hi + step))   # so the prior did something
    assert "[0.01, 10] µm²/s" in with_prior.assumptions()
    s.pop("frame_time_s")
    with pytest.raises(KeyError, match="frame_time_s"):
        with_prior.predict_tubelets(s)


def test_adaptation_lowers_the_distillation_loss_on_a_fixed_toy_batch_and_keeps_frozen_parts():
    """:func:`adapt_unlabeled` on one fixed pool of 32 unlabeled tubelets with the real blur
    likelihood teacher: the distillation term falls; with ``norms_heads`` only LayerNorm
    and head parameters move."""
    torch.manual_seed(0)
    net = MiViT(frames=8, dim=16, heads=2, depth_space=1, depth_time=1)
    sim = TubeletSimulator(frames=8, min_length=4)
    pool = sim.sample(np.random.default_rng(5), 32)
    teacher = teacher_for({"D_um2_s": [0.01, 10.0]}, substeps=8, frames=8)
    draw, post = pool_drawer(pool, teacher)
    assert post["mean"].shape == (32,) and np.all(post["var"] > 0)
    adapted, hist = adapt_unlabeled(net, sim, draw, steps=30, batch=32, lr=3e-3, seed=0)
    first = np.mean([h["distill"] for h in hist[:5]])
    last = np.mean([h["distill"] for h in hist[-5:]])
    assert last < 0.8 * first, (first, last)
    part, _ = adapt_unlabeled(net, sim, draw, steps=2, batch=8, lr=3e-3, seed=0,
                              params="norms_heads")
    before, after = dict(net.named_parameters()), dict(part.named_parameters())
    moved = {n for n in before if not torch.equal(before[n], after[n])}
    assert moved and all("norm" in n or "head" in n for n in moved)


def test_source_ranges_recreate_a_model_folder_simulator():
    ranges = TubeletSimulator(frames=8, D_um2_s=(0.05, 5.0), localizer_excess=(1.0, 1.2),
                              alpha=(0.5, 1.5), anomalous_probability=0.3).ranges()
    again = TubeletSimulator(frames=8, **source_ranges(ranges)).ranges()
    assert again == ranges
