"""Exposure: rank maths on fake scorers with known ranks, the secret's tokens, and a trained micro model."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats

from dpaudit.data.canaries import Canary
from dpaudit.data.tokenize import encode_record
from dpaudit.errors import ConfigError
from dpaudit.evaluators.exposure import (
    CanaryExposure,
    _secret_span,
    _without_secret,
    canary_exposure,
    repeats_from_card,
    secret_exposure,
    secret_log_perplexities,
    summarise_by_repeats,
)
from tests.conftest import make_records
from tests.evaluators.model_helpers import train


def value_scorer(candidates):
    """Log-perplexity = the candidate's number: "000" is the most likely, rank(s) = int(s) + 1."""
    return np.array([int(c.replace("-", "")) for c in candidates], dtype=float)


def normal_scorer(candidates):
    """Normally distributed log-perplexities over "dddd", in the order of the candidates' numbers."""
    return stats.norm.ppf((value_scorer(candidates) + 0.5) / 10_000)


@pytest.mark.parametrize("secret, rank", [("000", 1), ("007", 8), ("500", 501), ("999", 1000)])
def test_enumerated_rank_is_exact(secret, rank):
    result = secret_exposure(secret=secret, secret_format="ddd", scorer=value_scorer, rng=random.Random(0))
    assert result.method == "enumerated"
    assert result.space_size == 1000 and result.n_candidates == 999
    assert result.rank == rank
    assert result.max_exposure == pytest.approx(math.log2(1000))
    assert result.exposure == pytest.approx(math.log2(1000) - math.log2(rank))


@pytest.mark.parametrize("secret", ["0000", "0010", "0500", "5000", "9999"])
def test_sampled_estimate_agrees_with_enumeration(secret):
    exact = secret_exposure(secret=secret, secret_format="dddd", scorer=normal_scorer, rng=random.Random(0))
    estimate = secret_exposure(
        secret=secret, secret_format="dddd", scorer=normal_scorer, rng=random.Random(1), enumerate_limit=100, n_samples=2000
    )
    assert exact.method == "enumerated" and estimate.method == "estimated"
    assert estimate.n_candidates == 2000
    assert estimate.exposure == pytest.approx(exact.exposure, abs=0.75)
    assert 0 <= estimate.exposure <= estimate.max_exposure


def test_estimate_beyond_the_sample_and_clipping():
    # Far better than every sampled candidate: the fitted tail still ranks it (not stuck at log2(n + 1)).
    far = secret_exposure(
        secret="0000", secret_format="dddd", scorer=lambda c: np.r_[-6.0, normal_scorer(c[1:])],
        rng=random.Random(0), enumerate_limit=10, n_samples=500,
    )
    assert far.sample_rank == 1
    assert far.exposure > math.log2(501) + 1
    assert far.exposure <= far.max_exposure
    # A secret every candidate ties with sits in the middle; one worse than all gets exposure 0.
    flat = secret_exposure(secret="0000", secret_format="dddd", scorer=lambda c: np.zeros(len(c)),
                           rng=random.Random(0), enumerate_limit=10, n_samples=50)
    assert flat.distribution == "degenerate" and flat.exposure == pytest.approx(1.0)
    worst = secret_exposure(secret="0000", secret_format="dddd", scorer=lambda c: np.r_[1.0, np.zeros(len(c) - 1)],
                            rng=random.Random(0), enumerate_limit=10, n_samples=50)
    assert worst.exposure == 0.0


def test_sampled_candidates_are_distinct_and_exclude_the_secret():
    seen = []

    def scorer(candidates):
        seen.extend(candidates)
        return np.zeros(len(candidates))

    secret_exposure(secret="12", secret_format="dd", scorer=scorer, rng=random.Random(0), enumerate_limit=10, n_samples=99)
    assert seen[0] == "12"
    assert len(seen[1:]) == 99 and len(set(seen[1:])) == 99 and "12" not in seen[1:]


def test_rejects_bad_settings():
    with pytest.raises(ConfigError, match="n_samples"):
        secret_exposure(secret="1", secret_format="d", scorer=value_scorer, rng=random.Random(0), n_samples=1)


def test_summary_and_card_repeats():
    def row(id, repeats, exposure):
        result = secret_exposure(secret="000", secret_format="ddd", scorer=lambda c: np.zeros(len(c)), rng=random.Random(0))
        return CanaryExposure(id, repeats, "ddd", result.__class__(**{**result.__dict__, "exposure": exposure}))

    rows = [row("a", 16, 9.0), row("b", 16, 7.0), row("c", 0, 1.0), row("d", None, 2.0)]
    summary = summarise_by_repeats(rows)
    assert [s["repeats"] for s in summary] == [0, 16, None]
    assert summary[1] == {"repeats": 16, "n_canaries": 2, "mean_exposure": 8.0, "min_exposure": 7.0,
                          "max_exposure": 9.0, "max_possible": pytest.approx(math.log2(1000))}
    assert repeats_from_card({"canaries": {"mode": "repeats", "repeats": {"a": 4}}}) == {"a": 4}
    assert repeats_from_card({"canaries": {"mode": "inclusion", "inclusion": {"a": True, "b": False}}}) == {"a": 1, "b": 0}
    assert repeats_from_card({"canaries": None}) == {} and repeats_from_card(None) == {}


def test_secret_span_covers_exactly_the_secret(micro_tokenizer):
    canary = Canary("c", "The access code of Ana Ruiz is ", "4817-2093", "dddd-dddd")
    reference = encode_record(_without_secret(canary), micro_tokenizer, max_length=128).input_ids
    for secret in ("4817-2093", "0000-0000", "9999-1234"):
        example = encode_record(canary.with_secret(secret).to_record(), micro_tokenizer, max_length=128)
        lo, hi = _secret_span(example, reference, candidate=secret)
        # What score_tokens scores: target tokens from position 1 on.
        targets = [t for i, (t, label) in enumerate(zip(example.input_ids, example.labels)) if i and label != -100]
        assert micro_tokenizer.decode(targets[lo:hi]).strip() == secret


def test_log_perplexity_is_the_secret_tokens_nll(micro_model, micro_tokenizer):
    import torch

    canary = Canary("c", "The access code of Ana Ruiz is ", "4817-2093", "dddd-dddd")
    candidates = ["4817-2093", "1111-2222"]
    got = secret_log_perplexities(model=micro_model, tokenizer=micro_tokenizer, canary=canary, candidates=candidates,
                                  max_length=128, batch_size=2)
    reference = encode_record(_without_secret(canary), micro_tokenizer, max_length=128).input_ids
    for candidate, value in zip(candidates, got):
        enc = encode_record(canary.with_secret(candidate).to_record(), micro_tokenizer, max_length=128)
        # Independent: the positions whose ids differ from the secret-less record, from both ends.
        ids = enc.input_ids
        start = next(i for i, (a, b) in enumerate(zip(ids, reference)) if a != b)
        stop = len(ids) - next(i for i, (a, b) in enumerate(zip(reversed(ids), reversed(reference))) if a != b)
        with torch.no_grad():
            logp = torch.log_softmax(micro_model(input_ids=torch.tensor([ids])).logits[0].double(), -1)
        manual = -sum(float(logp[t - 1, ids[t]]) for t in range(start, stop))
        assert value == pytest.approx(manual, abs=1e-4)


def test_trained_canary_is_far_more_exposed_than_an_unseen_one(micro_model, micro_tokenizer):
    seen = Canary("seen", "The access code of Ana Ruiz is ", "4817-2093", "dddd-dddd")
    unseen = Canary("unseen", "The access code of Bo Lind is ", "6352-7718", "dddd-dddd")
    model = train(micro_model, micro_tokenizer, make_records(48, seed=5) + [seen.to_record()] * 16, steps=50, lr=1e-2)
    result = canary_exposure(model=model, tokenizer=micro_tokenizer, canaries=[seen, unseen],
                             repeats={"seen": 16, "unseen": 0}, max_length=128, n_samples=200, seed=0)
    by_id = {c.id: c for c in result.canaries}
    assert by_id["seen"].result.method == "estimated"
    assert by_id["seen"].result.exposure > 18  # of log2(10^8) ≈ 26.6 possible
    assert by_id["seen"].result.exposure > by_id["unseen"].result.exposure + 10
    assert [row["repeats"] for row in result.by_repeats] == [0, 16]
    data = result.to_json()
    assert set(data["per_repeat"]) == {"0", "16"}
    assert data["max_exposure"] == pytest.approx(math.log2(10**8))
