"""DP-SGD mechanics against independent references: per-example gradients, clipping, noise scale."""

from __future__ import annotations

import math

import pytest
import torch

from dpaudit.train import DPConfig, TrainConfig, TrainingSanityError, train_adapter
from dpaudit.train import loop as loop_mod
from dpaudit.train.dp import check_noise_std, make_private
from dpaudit.train.methods import prepare_model
from tests.train.conftest import batch_of, encode, randomise_adapter, reference_per_example_grads, snapshot

# opacus's hooks on the first LoRA layer see inputs that need no gradient (the base is frozen): expected.
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")

C = 0.05  # small enough that every example of the micro model is clipped


def _prepared(micro_model, method: str):
    prepared = prepare_model(micro_model, TrainConfig(method=method, rank=4))
    params = list(prepared.trainable.values())
    if method != "full":
        randomise_adapter(params)
    return prepared, params


def _make_private(prepared, params, clipping: str = "flat"):
    dp = DPConfig(noise_multiplier=1.0, max_grad_norm=C, clipping=clipping)
    return make_private(
        prepared.model, torch.optim.SGD(params, lr=0.1), dp=dp, noise_multiplier=1.0, expected_batch_size=4.0,
        generator=torch.Generator().manual_seed(0),
    )


@pytest.mark.parametrize("method", ["lora", "dora", "full"])
def test_per_example_gradients_match_a_loop(micro_model, micro_tokenizer, records, method):
    prepared, params = _prepared(micro_model, method)
    examples = encode(records[:4], micro_tokenizer)
    reference = reference_per_example_grads(prepared.model, params, examples, micro_tokenizer)  # before opacus
    gsm, _ = _make_private(prepared, params)
    loop_mod.per_example_loss(gsm, batch_of(examples, micro_tokenizer)).sum().backward()
    for p, ref in zip(params, reference):
        assert p.grad_sample.shape == ref.shape
        torch.testing.assert_close(p.grad_sample, ref, atol=1e-5, rtol=0)
    gsm.to_standard_module()


@pytest.mark.parametrize("clipping", ["flat", "per-layer", "adaptive"])
def test_each_example_contributes_at_most_c_before_noise(micro_model, micro_tokenizer, records, clipping):
    prepared, params = _prepared(micro_model, "lora")
    gsm, optimizer = _make_private(prepared, params, clipping)
    examples = encode(records[:6], micro_tokenizer)
    loop_mod.per_example_loss(gsm, batch_of(examples, micro_tokenizer)).sum().backward()
    grad_samples = [p.grad_sample.clone() for p in params]
    norms = torch.stack([g.reshape(len(g), -1).norm(dim=1) for g in grad_samples], 1).norm(dim=1)
    assert (norms > C).all(), "the test needs examples whose raw gradient exceeds C"

    # Clip each example on its own: its whole contribution to the sum is what the optimizer adds for it.
    contributions = []
    for i in range(len(examples)):
        for p, g in zip(params, grad_samples):
            p.grad_sample, p.summed_grad = g[i : i + 1].clone(), None
        optimizer.clip_and_accumulate()
        contributions.append([p.summed_grad.clone() for p in params])
        if clipping == "per-layer":
            for p, c_l, s in zip(params, optimizer.max_grad_norms, contributions[-1]):
                assert s.norm() <= c_l * (1 + 1e-5)
        total = math.sqrt(sum(float(s.norm()) ** 2 for s in contributions[-1]))
        assert total <= C * (1 + 1e-5)
        assert total == pytest.approx(C, rel=1e-3 if clipping != "per-layer" else 1.0)
    for p in params:
        p.summed_grad = None
        p.grad_sample = None
    # And the batch sum is exactly the sum of the individually clipped contributions.
    for p, g in zip(params, grad_samples):
        p.grad_sample = g
    optimizer.clip_and_accumulate()
    for j, p in enumerate(params):
        torch.testing.assert_close(p.summed_grad, sum(c[j] for c in contributions), atol=1e-7, rtol=1e-5)
    gsm.to_standard_module()


def test_noise_has_scale_sigma_c_over_b(micro_model, micro_tokenizer, records, monkeypatch):
    """Data gradient zeroed: one SGD step (lr 1) moves each weight by N(0, (σC/B)²)."""
    real_loss = loop_mod.per_example_loss
    monkeypatch.setattr(loop_mod, "per_example_loss", lambda model, batch: 0.0 * real_loss(model, batch))
    sigma, c, batch = 2.0, 0.5, 8
    before = snapshot(micro_model)
    config = TrainConfig(
        rank=16, optimizer="sgd", lr=1.0, batch_size=batch, max_steps=1, seed=3, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"),
        dp=DPConfig(noise_multiplier=sigma, max_grad_norm=c),
    )
    result = train_adapter(base_model=micro_model, tokenizer=micro_tokenizer, members=records, config=config, progress=False)
    state = result.adapter_state
    initial = _initial_adapter(micro_model, config)
    update = torch.cat([(state[k] - initial[k]).reshape(-1) for k in state])
    expected = sigma * c / batch  # B = q·N, the expected batch size
    assert update.numel() > 8000
    assert float(update.std()) == pytest.approx(expected, rel=0.05)
    assert float(update.mean()) == pytest.approx(0.0, abs=4 * expected / math.sqrt(update.numel()))
    assert all(torch.equal(before[k], v) for k, v in micro_model.state_dict().items())


def _initial_adapter(micro_model, config):
    """The adapter weights at step 0 (same seeded init), as peft's state dict."""
    from peft import get_peft_model_state_dict

    prepared = prepare_model(micro_model, config)
    state = {k: v.detach().clone() for k, v in get_peft_model_state_dict(prepared.model).items()}
    prepared.restore()
    return state


def test_noise_check_catches_wrong_noise():
    check_noise_std(torch.randn(10_000) * 3.0, expected_std=3.0)
    with pytest.raises(TrainingSanityError, match="noise std"):
        check_noise_std(torch.randn(10_000) * 0.3, expected_std=3.0)


def test_broken_noise_fails_loudly_at_the_first_step(micro_model, micro_tokenizer, records):
    config = TrainConfig(max_steps=2, batch_size=8, dp=DPConfig(noise_multiplier=1.0), _noise_scale=0.1)
    with pytest.raises(TrainingSanityError, match="noise std"):
        train_adapter(base_model=micro_model, tokenizer=micro_tokenizer, members=records, config=config, progress=False)


def test_untrained_weights_fail_loudly(micro_model, micro_tokenizer, records, monkeypatch):
    """The opacus+peft pitfall (the optimizer updates tensors the model does not use) is caught."""
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, closure=None: None)
    config = TrainConfig(max_steps=2, batch_size=8, dp=DPConfig(noise_multiplier=1.0))
    with pytest.raises(TrainingSanityError, match="no trainable weight changed"):
        train_adapter(base_model=micro_model, tokenizer=micro_tokenizer, members=records, config=config, progress=False)


def test_adaptive_clipping_moves_the_clip_norm(micro_model, micro_tokenizer, records):
    config = TrainConfig(
        max_steps=6, batch_size=8, dp=DPConfig(noise_multiplier=1.0, max_grad_norm=100.0, clipping="adaptive")
    )
    result = train_adapter(base_model=micro_model, tokenizer=micro_tokenizer, members=records, config=config, progress=False)
    dp = result.card["dp"]
    assert dp["clipping"] == "adaptive"
    assert dp["final_max_grad_norm"] < 100.0  # every norm is far below 100: C shrinks towards the median
    assert dp["events"][0]["event"]["noise_multiplier"] == 1.0  # the combined σ is what is accounted


@pytest.mark.parametrize("clipping", ["flat", "adaptive"])
def test_physical_batches_do_not_change_the_step(micro_model, micro_tokenizer, records, clipping):
    """Virtual steps (opacus's skip-step protocol) give the update of one big physical batch."""
    results = []
    for physical in (None, 2):
        config = TrainConfig(max_steps=4, batch_size=8, physical_batch_size=physical, seed=2,
                             dp=DPConfig(noise_multiplier=1.0, max_grad_norm=0.1, clipping=clipping,
                                         insecure_reproducible_noise=True))  # the same noise in both runs
        results.append(train_adapter(base_model=micro_model, tokenizer=micro_tokenizer, members=records, config=config,
                                     progress=False))
    one, split = results
    for key, value in one.adapter_state.items():
        torch.testing.assert_close(split.adapter_state[key], value, atol=1e-6, rtol=1e-5)
    assert split.card["dp"]["final_max_grad_norm"] == pytest.approx(one.card["dp"]["final_max_grad_norm"], rel=1e-6)


def test_empty_poisson_batches_are_noisy_steps(micro_model, micro_tokenizer, records, monkeypatch):
    sizes = []
    real = loop_mod.TrainingRun.logical_step
    monkeypatch.setattr(loop_mod.TrainingRun, "logical_step",
                        lambda self, indices, *a, **k: sizes.append(len(indices)) or real(self, indices, *a, **k))
    config = TrainConfig(max_steps=12, batch_size=1, dp=DPConfig(noise_multiplier=1.0))  # q = 1/24
    result = train_adapter(base_model=micro_model, tokenizer=micro_tokenizer, members=records, config=config, progress=False)
    assert 0 in sizes and result.card["dp"]["steps"] == 12
