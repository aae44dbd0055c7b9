"""Per-module noise allocation: one Gaussian mechanism with the flat case's sensitivity and ε."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dpaudit.train.config import DPConfig, TrainConfig
from dpaudit.train.noise_allocation import UNIFORM_MIX, NoiseAllocationDPOptimizer

SIGMA, CLIP = 1.5, 2.0


def _optimizer(shapes=((120, 80), (60, 40)), sigma=SIGMA, seed=0):
    params = [nn.Parameter(torch.zeros(shape)) for shape in shapes]
    return NoiseAllocationDPOptimizer(
        torch.optim.SGD(params, lr=0.1), noise_multiplier=sigma, max_grad_norm=CLIP, expected_batch_size=4,
        loss_reduction="sum", generator=torch.Generator().manual_seed(seed),
    )


def _step(opt, grads):
    """One DP step on per-example gradients ``grads[m]`` of shape (n, *param.shape); returns the noisy sums."""
    for p, g in zip(opt.params, grads):
        p.grad_sample = g.clone()
        p.grad = g.sum(0)
    opt.pre_step()
    released = [p.grad.detach().clone() for p in opt.params]
    opt.zero_grad()
    return released


def test_uniform_allocation_is_per_layer_clipping_with_flat_noise():
    opt = _optimizer()
    assert opt.max_grad_norm == pytest.approx(CLIP)  # the whole per-example gradient is clipped to C
    assert opt.max_grad_norms == pytest.approx([CLIP / math.sqrt(2)] * 2)
    assert opt.noise_stds() == pytest.approx([SIGMA * CLIP] * 2)  # flat DP-SGD's std in every module


@pytest.mark.parametrize("shares", [[0.5, 0.5], [0.9, 0.1], [0.25, 0.75]])
def test_any_allocation_has_the_flat_combined_sensitivity(shares):
    """Σ_m (C_m/σ_m)² = 1/σ²: after rescaling each block to noise σC, the sensitivity is C, as in flat DP-SGD."""
    opt = _optimizer()
    opt.shares = torch.tensor(shares, dtype=torch.float64)
    ratio = sum((c / s) ** 2 for c, s in zip(opt.max_grad_norms, opt.noise_stds()))
    assert ratio == pytest.approx(1 / SIGMA**2)


def test_each_module_gets_the_noise_std_it_was_allocated():
    opt = _optimizer()
    _step(opt, [torch.zeros(3, 120, 80), torch.zeros(3, 60, 40)])  # the first step (uniform) passes the noise check
    opt.shares = torch.tensor([0.8, 0.2], dtype=torch.float64)
    expected = opt.noise_stds()
    released = _step(opt, [torch.zeros(3, 120, 80), torch.zeros(3, 60, 40)])
    for noise, std in zip(released, expected):
        assert float(noise.std()) == pytest.approx(std, rel=0.04)
    assert expected[0] < SIGMA * CLIP < expected[1]


def test_shares_follow_the_clipped_gradient_norms_and_stay_bounded():
    opt = _optimizer(sigma=0.01)
    big = torch.ones(4, 120, 80)  # clipped to C/√2 each: the signal
    small = 1e-4 * torch.ones(4, 60, 40)
    for _ in range(5):
        _step(opt, [big, small])
    shares = opt.shares.tolist()
    assert sum(shares) == pytest.approx(1.0)
    assert shares[0] > 0.8 and shares[1] >= UNIFORM_MIX / 2 - 1e-9
    assert opt.noise_stds()[0] < opt.noise_stds()[1]


def test_clipping_is_per_module_to_the_allocated_norm():
    opt = _optimizer(sigma=1e-6)
    grads = [torch.full((1, 120, 80), 5.0), torch.zeros(1, 60, 40)]
    released = _step(opt, grads)
    assert float(released[0].norm()) == pytest.approx(CLIP / math.sqrt(2), rel=1e-3)


def test_a_trained_card_reports_the_flat_runs_epsilon(micro_tokenizer, records):
    from dpaudit.train import train_adapter
    from tests.train.conftest import fresh_micro

    cards = {}
    for clipping in ("flat", "noise-allocation"):
        config = TrainConfig(max_steps=3, batch_size=8, max_length=48, checkpoint_every=0,
                             dp=DPConfig(noise_multiplier=1.0, clipping=clipping))
        result = train_adapter(base_model=fresh_micro(micro_tokenizer), tokenizer=micro_tokenizer, members=records,
                               config=config, progress=False)
        cards[clipping] = result.card["dp"]
    flat, allocated = cards["flat"], cards["noise-allocation"]
    assert allocated["clipping"] == "noise-allocation"
    for key in ("noise_multiplier", "sample_rate", "steps", "delta", "epsilon"):
        assert allocated[key] == flat[key], key
    assert allocated["realised_noise_std"] == pytest.approx(flat["noise_multiplier"] * flat["max_grad_norm"], rel=0.2)
