"""Method setup: default target modules, config validation, and the base left as it was."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dpaudit.errors import ConfigError
from dpaudit.train import DPConfig, TrainConfig, train_adapter
from dpaudit.train.config import DPConfig as DPConfigDirect
from dpaudit.train.methods import default_target_modules
from tests.train.conftest import snapshot


def test_default_targets_per_architecture(micro_model):
    from transformers import GPT2Config, GPT2LMHeadModel

    assert default_target_modules(micro_model) == ("q_proj", "v_proj")
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=32))
    assert default_target_modules(gpt2) == ("c_attn",)
    mlp = nn.Sequential()
    mlp.add_module("fc_in", nn.Linear(4, 4))
    mlp.add_module("lm_head", nn.Linear(4, 4))
    assert default_target_modules(mlp) == ("fc_in",)


def test_configs_validate_at_construction():
    with pytest.raises(ConfigError, match=r"`max_grad_norm` must be > 0, got 0"):
        DPConfigDirect(noise_multiplier=1.0, max_grad_norm=0)
    with pytest.raises(ConfigError, match="exactly one of"):
        DPConfig(noise_multiplier=1.0, target_epsilon=2.0)
    with pytest.raises(ConfigError) as info:  # every problem at once
        TrainConfig(rank=0, lr=-1, method="qlora")
    assert "`rank`" in str(info.value) and "`lr`" in str(info.value) and "`method`" in str(info.value)
    with pytest.raises(ConfigError, match="need DP"):
        TrainConfig(gradient_canaries=5)
    with pytest.raises(ConfigError, match="at most one"):
        TrainConfig(canary_inclusion=0.5, canary_repeats=(1, 4))


def test_config_round_trips_through_its_dict():
    config = TrainConfig(target_modules=("q_proj",), canary_repeats=(1, 4), dp=DPConfig(target_epsilon=8.0))
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert "_noise_scale" not in config.to_dict()


@pytest.mark.parametrize("method", ["lora", "dora", "dylora", "full"])
def test_base_is_unchanged_and_the_adapter_reattaches(micro_model, micro_tokenizer, records, method):
    before = snapshot(micro_model)
    modules = [name for name, _ in micro_model.named_modules()]
    grads = {name: p.requires_grad for name, p in micro_model.named_parameters()}
    config = TrainConfig(method=method, max_steps=2, batch_size=8, dp=DPConfig(noise_multiplier=1.0))
    result = train_adapter(base_model=micro_model, tokenizer=micro_tokenizer, members=records, config=config, progress=False)
    assert [name for name, _ in micro_model.named_modules()] == modules
    assert all(torch.equal(before[k], v) for k, v in micro_model.state_dict().items())
    assert {name: p.requires_grad for name, p in micro_model.named_parameters()} == grads
    assert not any(hasattr(p, "grad_sample") for p in micro_model.parameters())
    ids = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        base_logits = micro_model(input_ids=ids).logits
        with result.attach(micro_model) as model:
            adapted = model(input_ids=ids).logits
    assert not torch.allclose(adapted, base_logits)
    assert [name for name, _ in micro_model.named_modules()] == modules
