"""Fixtures for base and adapter tests: an isolated cache and micro models saved as HF directories."""

from __future__ import annotations

import pytest
import torch

from dpaudit.models.tiny import TinyBuildConfig, TinyConfig, init_tiny_model
from tests.conftest import MICRO

# A tiny build that takes a second or two: micro architecture, a small corpus, a few steps.
MICRO_BUILD = TinyBuildConfig(model=MICRO, corpus_n=40, eval_records=4, steps=4, batch_size=8, warmup_steps=1, max_length=128)

# Same vocabulary, twice the width: an adapter made for MICRO does not fit it.
WIDE = TinyConfig(vocab_size=400, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2)


@pytest.fixture(autouse=True)
def isolated_cache(isolated_cache):
    """Every model test gets its own cache (tests/conftest.py's fixture, made automatic here)."""
    return isolated_cache


def save_base(model, tokenizer, path):
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture()
def wide_base_dir(tmp_path, micro_tokenizer):
    return save_base(init_tiny_model(micro_tokenizer, WIDE, seed=0), micro_tokenizer, tmp_path / "wide-base")


@pytest.fixture()
def batch(micro_tokenizer):
    """Two short sequences of real token ids."""
    ids = micro_tokenizer(["What is the account number of client 3?", "The quick brown fox"], padding=True, return_tensors="pt")
    return {"input_ids": ids["input_ids"], "attention_mask": ids["attention_mask"]}


def logits(model, batch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**batch).logits
