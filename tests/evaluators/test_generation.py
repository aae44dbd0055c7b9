"""Batched greedy decoding: deterministic, equal to one prompt at a time, stops at end-of-sequence."""

from __future__ import annotations

import pytest
import torch

from dpaudit.data.records import Message, Record
from dpaudit.data.tokenize import encode_prompt
from dpaudit.errors import ConfigError
from dpaudit.evaluators.generation import generate_responses, left_pad
from tests.conftest import make_records
from tests.evaluators.model_helpers import varied_model


def _prompts() -> list[Record]:
    """Prompts of different lengths (so a batch needs padding), one multi-turn, one without an answer."""
    records = make_records(5, seed=3)
    records.append(Record(id="short", messages=(Message("user", "Hi"),)))
    records.append(
        Record(
            id="multi",
            messages=(
                Message("system", "Be brief."),
                Message("user", "What is the account number of client 7?"),
                Message("assistant", "It is 1234."),
                Message("user", "And of client 8?"),
                Message("assistant", "reference"),
            ),
        )
    )
    return records


@pytest.fixture()
def model(micro_tokenizer):
    return varied_model(micro_tokenizer)


def test_batched_equals_one_by_one(model, micro_tokenizer):
    records = _prompts()
    batched = generate_responses(model=model, tokenizer=micro_tokenizer, records=records, max_new_tokens=12, batch_size=4)
    single = [
        generate_responses(model=model, tokenizer=micro_tokenizer, records=[r], max_new_tokens=12, batch_size=1)[0]
        for r in records
    ]
    assert batched == single
    assert len(set(batched)) > 1  # the model really says different things to different prompts
    assert all(text for text in batched)


def test_deterministic(model, micro_tokenizer):
    records = _prompts()
    first = generate_responses(model=model, tokenizer=micro_tokenizer, records=records, max_new_tokens=10)
    second = generate_responses(model=model, tokenizer=micro_tokenizer, records=list(reversed(records)), max_new_tokens=10)
    assert first == list(reversed(second))


def test_stops_at_eos(model, micro_tokenizer):
    record = make_records(1, seed=4)[0]
    prompt = encode_prompt(record, micro_tokenizer, max_length=512)
    with torch.no_grad():
        full = model.generate(
            input_ids=torch.tensor([prompt]), do_sample=False, max_new_tokens=8, eos_token_id=[], pad_token_id=0
        )[0, len(prompt) :].tolist()
    stop = full[4]
    before = full[: full.index(stop)]  # what comes before the first occurrence of that token
    model.generation_config.eos_token_id = stop  # the model now ends its turn with that token
    response = generate_responses(model=model, tokenizer=micro_tokenizer, records=[record], max_new_tokens=8)[0]
    assert response == micro_tokenizer.decode(before, skip_special_tokens=True).strip()
    assert response != micro_tokenizer.decode(full, skip_special_tokens=True).strip()


def test_special_tokens_are_stripped(micro_tokenizer):
    from dpaudit.evaluators.generation import decode_response

    ids = micro_tokenizer("hello there", add_special_tokens=False)["input_ids"]
    bos, eos = micro_tokenizer.bos_token_id, micro_tokenizer.eos_token_id
    assert decode_response([bos, *ids, eos, *ids], micro_tokenizer, eos_ids=[eos]) == "hello there"


def test_left_pad():
    input_ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert input_ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_edge_cases(model, micro_tokenizer):
    assert generate_responses(model=model, tokenizer=micro_tokenizer, records=[], max_new_tokens=4) == []
    with pytest.raises(ConfigError, match="max_new_tokens"):
        generate_responses(model=model, tokenizer=micro_tokenizer, records=_prompts(), max_new_tokens=0)
    assert not model.training
