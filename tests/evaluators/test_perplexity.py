"""Perplexity against a hand-computed NLL (one record at a time, torch cross_entropy), and the gap."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from dpaudit.data.records import Message, Record
from dpaudit.data.tokenize import IGNORE_INDEX, encode_record
from dpaudit.evaluators.perplexity import adapter_disabled, evaluate_perplexity, perplexity
from tests.conftest import make_records
from tests.evaluators.model_helpers import lora_model, varied_model


def _manual_nll(model, tokenizer, records, *, max_length=128) -> tuple[float, int]:
    """Σ NLL over response tokens and their count: full forward per record, shifted cross-entropy."""
    total, count = 0.0, 0
    for record in records:
        enc = encode_record(record, tokenizer, max_length=max_length)
        ids = torch.tensor([enc.input_ids])
        labels = torch.tensor(enc.labels[1:])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1].double()
        total += float(F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum"))
        count += int((labels != IGNORE_INDEX).sum())
    return total, count


def _records():
    records = make_records(6, seed=11)
    # Different response lengths, so token weighting differs from averaging per-record perplexities.
    records.append(Record(id="long", messages=(Message("user", "Say a lot."), Message("assistant", "word " * 40))))
    return records


@pytest.mark.parametrize("batch_size", [1, 4])
def test_equals_exp_of_hand_computed_mean_nll(micro_tokenizer, batch_size):
    model = varied_model(micro_tokenizer, scale=0.05)
    records = _records()
    result = perplexity(model=model, tokenizer=micro_tokenizer, records=records, max_length=128, batch_size=batch_size)
    total, count = _manual_nll(model, micro_tokenizer, records)
    assert result.n_tokens == count
    assert result.n_records == len(records)
    assert result.mean_nll == pytest.approx(total / count, rel=1e-5)
    assert result.perplexity == pytest.approx(math.exp(total / count), rel=1e-5)
    per_record_mean = sum(
        math.exp(t / c) for t, c in (_manual_nll(model, micro_tokenizer, [r]) for r in records)
    ) / len(records)
    assert result.perplexity != pytest.approx(per_record_mean, rel=1e-3)  # token-weighted, not per record


def test_no_target_tokens_is_nan(micro_model, micro_tokenizer):
    with pytest.warns(RuntimeWarning, match="no target tokens"):
        result = perplexity(model=micro_model, tokenizer=micro_tokenizer, records=[], max_length=64)
    assert math.isnan(result.perplexity) and result.n_tokens == 0


def test_evaluate_reports_adapter_base_and_gap(micro_tokenizer):
    base = varied_model(micro_tokenizer, scale=0.05)
    bare = copy.deepcopy(base)
    heldout, members = make_records(5, seed=1, prefix="h"), make_records(4, seed=2, prefix="m")
    model = lora_model(base)
    report = evaluate_perplexity(model=model, tokenizer=micro_tokenizer, heldout=heldout, members=members, max_length=128)

    adapter_heldout = perplexity(model=model, tokenizer=micro_tokenizer, records=heldout, max_length=128)
    adapter_members = perplexity(model=model, tokenizer=micro_tokenizer, records=members, max_length=128)
    base_heldout = perplexity(model=bare, tokenizer=micro_tokenizer, records=heldout, max_length=128)
    assert report.heldout.perplexity == pytest.approx(adapter_heldout.perplexity, rel=1e-6)
    assert report.member.perplexity == pytest.approx(adapter_members.perplexity, rel=1e-6)
    assert report.base_heldout.perplexity == pytest.approx(base_heldout.perplexity, rel=1e-5)
    assert report.base_heldout.perplexity != pytest.approx(report.heldout.perplexity, rel=1e-3)  # the adapter matters
    assert report.gap == pytest.approx(adapter_heldout.perplexity / adapter_members.perplexity, rel=1e-6)

    data = report.to_json()
    assert data["gap"] == report.gap and data["member"] == report.member.perplexity
    assert data["details"]["heldout"]["n_tokens"] == adapter_heldout.n_tokens
    # The adapter is back on after the base measurement.
    after = perplexity(model=model, tokenizer=micro_tokenizer, records=heldout, max_length=128)
    assert after.perplexity == pytest.approx(adapter_heldout.perplexity, rel=1e-6)


def test_without_members_or_adapter(micro_tokenizer):
    model = varied_model(micro_tokenizer, scale=0.05)
    report = evaluate_perplexity(model=model, tokenizer=micro_tokenizer, heldout=make_records(3), max_length=128)
    assert report.member is None and report.gap is None
    assert report.base_heldout is None  # a plain model has no adapter to switch off
    with pytest.raises(TypeError):
        with adapter_disabled(model):
            pass
