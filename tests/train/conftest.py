"""Fixtures for trainer tests: micro models, encoded records, a plain per-example reference loop."""

from __future__ import annotations

import json

import pytest
import torch

from dpaudit.data.tokenize import encode_record, pad_batch
from dpaudit.models.tiny import init_tiny_model
from dpaudit.train.loop import per_example_loss
from tests.conftest import MICRO, make_records


@pytest.fixture(autouse=True)
def isolated_cache(isolated_cache):
    """Every trainer test gets its own cache (tests/conftest.py's fixture, made automatic here)."""
    return isolated_cache


@pytest.fixture()
def records():
    return make_records(24)


@pytest.fixture()
def data_file(tmp_path):
    """A 30-record chat JSONL file for `dpaudit train` runs."""
    path = tmp_path / "private.jsonl"
    path.write_text("".join(json.dumps(r.to_json()) + "\n" for r in make_records(30)), encoding="utf-8")
    return path


def encode(records, tokenizer, max_length: int = 64):
    return [encode_record(r, tokenizer, max_length=max_length) for r in records]


def batch_of(examples, tokenizer):
    return pad_batch(examples, pad_id=tokenizer.pad_token_id)


def reference_per_example_grads(model, params, examples, tokenizer) -> list[torch.Tensor]:
    """Per-example gradients by a plain loop: one forward/backward per example, shape (n, *p.shape) each."""
    rows = []
    for example in examples:
        model.zero_grad(set_to_none=True)
        per_example_loss(model, batch_of([example], tokenizer)).sum().backward()
        rows.append([p.grad.detach().clone() for p in params])
    model.zero_grad(set_to_none=True)
    return [torch.stack([row[j] for row in rows]) for j in range(len(params))]


def randomise_adapter(params, *, seed: int = 0, scale: float = 0.1) -> None:
    """LoRA's B starts at zero (so A's gradient is zero); give every factor a random value."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.add_(scale * torch.randn(p.shape, generator=gen))


def snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def fresh_micro(tokenizer):
    return init_tiny_model(tokenizer, MICRO, seed=0)
