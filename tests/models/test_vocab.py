"""Issue #10: a tokenizer that does not belong to the base is one line and exit 2, not a traceback."""

from __future__ import annotations

import json

import pytest
import torch

from dpaudit.errors import InputError
from dpaudit.models.vocab import check_vocab
from tests.conftest import make_records


class _Vocab:
    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


def test_check_vocab(micro_model, micro_tokenizer):
    rows = micro_model.get_input_embeddings().num_embeddings
    check_vocab(micro_model, micro_tokenizer)  # its own tokenizer
    check_vocab(micro_model, _Vocab(rows - 64))  # a padded embedding matrix is fine
    with pytest.raises(InputError, match=f"{rows + 1} tokens but the model's embedding matrix has {rows} rows"):
        check_vocab(micro_model, _Vocab(rows + 1))


class _Model(torch.nn.Module):
    def __init__(self, rows: int) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(rows, 2)

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.embed


def test_a_much_smaller_tokenizer_is_another_models():
    check_vocab(_Model(152_064), _Vocab(151_665))  # Qwen2.5's padded matrix
    with pytest.raises(InputError, match="another model's tokenizer"):
        check_vocab(_Model(128_256), _Vocab(50_257))  # GPT-2's tokenizer on a Llama-3 model


def test_train_with_a_foreign_tokenizer_exits_2(cli, micro_base_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    base = tmp_path / "mismatched"
    model = AutoModelForCausalLM.from_pretrained(micro_base_dir)
    model.resize_token_embeddings(model.get_input_embeddings().num_embeddings - 8)  # tokenizer now too large
    model.save_pretrained(base)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (micro_base_dir / name).is_file():
            (base / name).write_bytes((micro_base_dir / name).read_bytes())
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r.to_json()) + "\n" for r in make_records(12)), encoding="utf-8")
    code, _, err = cli("train", "--data", data, "--base", base, "--out", tmp_path / "out", "--max-steps", "1")
    assert code == 2
    assert "embedding matrix has" in err and "Traceback" not in err
