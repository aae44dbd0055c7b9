"""score_tokens against an independent per-record loop (no batching, no bucketing, full logits)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dpaudit.data.records import Message, Record
from dpaudit.data.tokenize import IGNORE_INDEX, encode_record
from dpaudit.models.scoring import score_tokens
from tests.conftest import make_records


def _naive(model, tokenizer, record, *, max_length=128):
    """One record at a time: full forward, full log-softmax in float64, explicit sums over the vocabulary."""
    enc = encode_record(record, tokenizer, max_length=max_length)
    ids = torch.tensor([enc.input_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    lp, mu, sigma = [], [], []
    for t in range(1, len(enc.input_ids)):
        if enc.labels[t] == IGNORE_INDEX:
            continue
        row = logp[t - 1]
        lp.append(float(row[enc.labels[t]]))
        m = float((row.exp() * row).sum())
        mu.append(m)
        sigma.append(float(((row.exp() * row * row).sum() - m * m).sqrt()))
    return np.array(lp), np.array(mu), np.array(sigma)


def _varied_records(n: int) -> list[Record]:
    """Records of very different lengths, shuffled, so that bucketing reorders them."""
    base = make_records(n, seed=7)
    out = []
    for i, r in enumerate(base):
        pad = " extra words" * ((i * 5) % 11)
        out.append(Record(id=r.id, messages=(Message("user", r.prompt + pad), Message("assistant", r.response + pad[: i % 7]))))
    return out


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_matches_naive_loop(micro_model, micro_tokenizer, batch_size):
    records = _varied_records(11)
    scores = score_tokens(micro_model, micro_tokenizer, records, max_length=128, batch_size=batch_size, with_entropy=True)
    assert [s.id for s in scores] == [r.id for r in records]  # input order, whatever the buckets
    for record, s in zip(records, scores):
        lp, mu, sigma = _naive(micro_model, micro_tokenizer, record)
        np.testing.assert_allclose(s.logprobs, lp, atol=1e-5, rtol=0)
        np.testing.assert_allclose(s.mu, mu, atol=1e-5, rtol=0)
        np.testing.assert_allclose(s.sigma, sigma, atol=1e-5, rtol=0)
        assert s.mean_nll == pytest.approx(-lp.mean(), abs=1e-5)


def test_without_entropy_and_encoded_input(micro_model, micro_tokenizer):
    records = _varied_records(5)
    encoded = [encode_record(r, micro_tokenizer, max_length=128) for r in records]
    from_records = score_tokens(micro_model, micro_tokenizer, records, max_length=128)
    from_encoded = score_tokens(micro_model, micro_tokenizer, encoded, max_length=128)
    for a, b in zip(from_records, from_encoded):
        assert a.mu is None and a.sigma is None
        np.testing.assert_array_equal(a.logprobs, b.logprobs)


def test_restores_training_mode_and_leaves_gradients_alone(micro_model, micro_tokenizer):
    micro_model.train()
    score_tokens(micro_model, micro_tokenizer, make_records(3), max_length=64)
    assert micro_model.training
    assert all(p.grad is None for p in micro_model.parameters())


def test_record_without_target_tokens_gives_nan_loss(micro_model, micro_tokenizer):
    record = Record(id="q", messages=(Message("user", "only a question"),))
    (s,) = score_tokens(micro_model, micro_tokenizer, [record], max_length=64)
    assert s.n_tokens == 0 and np.isnan(s.mean_nll)


def test_rejects_bad_batch_size(micro_model, micro_tokenizer):
    with pytest.raises(ValueError, match="batch_size"):
        score_tokens(micro_model, micro_tokenizer, make_records(1), batch_size=0)
