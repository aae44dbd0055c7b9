"""Shared fixtures: tiny in-process models so that every test runs in seconds."""

from __future__ import annotations

import os

import pytest
import torch

from dpaudit.cli.app import main
from dpaudit.data.records import Message, Record
from dpaudit.models.tiny import TinyConfig, init_tiny_model, train_tokenizer

torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "2"))))

MICRO = TinyConfig(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2)


def make_records(n: int, *, seed: int = 0, prefix: str = "r") -> list[Record]:
    """Unique, memorisable chat records (random digits in the answer)."""
    gen = torch.Generator().manual_seed(seed)
    records = []
    for i in range(n):
        digits = "".join(str(int(d)) for d in torch.randint(0, 10, (8,), generator=gen))
        records.append(
            Record(
                id=f"{prefix}{i}",
                messages=(
                    Message("user", f"What is the account number of client {i}?"),
                    Message("assistant", f"The account number of client {i} is {digits}."),
                ),
                category="Open QA",
            )
        )
    return records


@pytest.fixture(scope="session")
def micro_tokenizer():
    corpus = [r.text for r in make_records(200, seed=123)] + ["The quick brown fox jumps over the lazy dog."] * 5
    return train_tokenizer(corpus, vocab_size=MICRO.vocab_size)


@pytest.fixture(scope="session")
def micro_base_dir(tmp_path_factory, micro_tokenizer):
    """The micro model saved as a local Hugging Face directory: a `--base` for end-to-end runs."""
    base = tmp_path_factory.mktemp("micro-base")
    init_tiny_model(micro_tokenizer, MICRO, seed=0).save_pretrained(base)
    micro_tokenizer.save_pretrained(base)
    return base


@pytest.fixture()
def micro_model(micro_tokenizer):
    """A fresh randomly initialised 2-layer Llama (fast enough to train in a test)."""
    return init_tiny_model(micro_tokenizer, MICRO, seed=0)


@pytest.fixture()
def cli(capsys):
    """Run the CLI in-process: returns (exit_code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture()
def isolated_cache(tmp_path, monkeypatch):
    """A private DPAUDIT_CACHE, so that cached bases, scores and shadows of other tests are never reused."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("DPAUDIT_CACHE", str(cache))
    return cache
