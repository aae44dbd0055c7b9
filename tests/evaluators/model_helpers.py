"""Micro models for the model-based evaluator tests (generation, perplexity, judge, exposure, eval CLI)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from dpaudit.data.records import Record
from dpaudit.data.tokenize import encode_record, pad_batch
from dpaudit.models.tiny import init_tiny_model
from tests.conftest import MICRO


def varied_model(tokenizer, *, seed: int = 1, scale: float = 0.3):
    """A micro Llama with large random weights: unlike a fresh init (which repeats one token), its greedy
    output varies from prompt to prompt, so batching and padding mistakes would show."""
    model = init_tiny_model(tokenizer, MICRO, seed=0)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1:
                param.copy_(torch.randn(param.shape, generator=gen) * scale)
    return model.eval()


def lora_model(model, *, seed: int = 0, r: int = 4):
    """``model`` wrapped in a LoRA adapter whose B matrices are non-zero (so the adapter changes outputs)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return get_peft_model(model, config).eval()


def train(model, tokenizer, records: Sequence[Record], *, steps: int, lr: float = 3e-3, batch_size: int = 16, seed: int = 0):
    """A plain full-parameter Adam loop on the response tokens of ``records`` (shuffled each pass)."""
    examples = [encode_record(r, tokenizer, max_length=128) for r in records]
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    order: list[int] = []
    for _ in range(steps):
        if len(order) < batch_size:
            order += torch.randperm(len(examples), generator=gen).tolist()
        chunk, order = order[:batch_size], order[batch_size:]
        batch = pad_batch([examples[i] for i in chunk], pad_id=tokenizer.pad_token_id)
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path
