"""The comparator: the training card's promise against the empirical evidence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dpaudit.errors import InputError
from dpaudit.privacy.accountants import compute_epsilon
from dpaudit.privacy.comparator import compare_epsilon, theory_from_card
from dpaudit.privacy.events import Composed, PoissonSampledGaussian, PrivacyLedger
from dpaudit.privacy.gdp import mu_for_epsilon


def dp_card(*, sigma=1.0, q=0.01, steps=1000, delta=1e-5, events=True):
    ledger = PrivacyLedger([Composed(PoissonSampledGaussian(sigma, q), steps)])
    return {
        "method": "lora",
        "dp": {
            "noise_multiplier": sigma,
            "max_grad_norm": 1.0,
            "sample_rate": q,
            "steps": steps,
            "delta": delta,
            "accountant": "prv",
            "epsilon": ledger.epsilon(delta),
            "clipping": "flat",
            "events": ledger.to_json() if events else None,
        },
    }


def canaries(seed, m, mu):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, m)
    return rng.normal(size=m) + mu * labels, labels


def test_consistent_when_leakage_matches_the_promise():
    card = dp_card()  # ε ≈ 1.84 at δ = 1e-5
    mu = mu_for_epsilon(epsilon=1.84, delta=1e-5)  # an audit of a mechanism exactly as private as promised
    result = compare_epsilon(card=card, scores={"canaries": canaries(0, 1000, mu)}, confidence=0.95)
    assert result.verdict == "consistent"
    assert result.epsilon_theory == pytest.approx(card["dp"]["epsilon"])
    assert set(result.theory.epsilons) == {"prv", "rdp"}
    assert result.epsilon_theory == min(result.theory.epsilons.values())
    bounds = [r for r in result.rows if r.kind == "bound"]
    assert {r.method for r in bounds} == {"clopper-pearson", "one-run"}
    assert all(0 <= r.tightness <= 1 for r in bounds)
    assert result.tightness == max(r.tightness for r in bounds)
    data = result.to_json()
    assert data["verdict"] == "consistent" and data["epsilon_theory"] == pytest.approx(result.epsilon_theory)
    assert data["events"] == card["dp"]["events"]
    assert data["no_amplification_epsilon"] > data["epsilon_theory"]


def test_violation_on_tiny_promise_and_separable_scores():
    card = dp_card(sigma=50.0, q=0.01, steps=10)  # promises ε ≈ 0.01
    labels = np.r_[np.zeros(500, int), np.ones(500, int)]
    scores = labels * 10.0 + np.random.default_rng(0).normal(size=1000)
    result = compare_epsilon(card=card, scores={"loss": (scores, labels)})
    assert result.verdict == "VIOLATION"
    assert any(r.violates and r.kind == "bound" for r in result.rows)
    assert not any(r.violates for r in result.rows if r.kind == "estimate")
    assert result.tightness > 1


def test_no_guarantee_for_non_dp_runs():
    scores = {"loss": canaries(1, 400, 3.0)}
    for card in (None, {"dp": None, "method": "lora"}):
        result = compare_epsilon(card=card, scores=scores, delta=1e-5)
        assert result.verdict == "no-guarantee"
        assert result.epsilon_theory == math.inf
        assert all(r.tightness is None and not r.violates for r in result.rows)
        assert result.to_json()["epsilon_theory"] is None  # ∞ is null in JSON
    with pytest.raises(InputError, match="pass --delta"):
        compare_epsilon(card=None, scores=scores)


def test_card_without_events_uses_sigma_q_steps():
    with_events = theory_from_card(dp_card())
    without = theory_from_card(dp_card(events=False))
    assert without.epsilons == pytest.approx(with_events.epsilons)
    assert without.epsilons["prv"] == pytest.approx(
        compute_epsilon(noise_multiplier=1.0, sample_rate=0.01, steps=1000, delta=1e-5)
    )


def test_delta_override_and_bad_cards():
    assert theory_from_card(dp_card(), delta=1e-3).epsilon < theory_from_card(dp_card()).epsilon
    card = dp_card(events=False)
    del card["dp"]["steps"]
    with pytest.raises(InputError, match="dp.steps"):
        theory_from_card(card)
    card = dp_card(events=False)
    card["dp"]["sample_rate"] = 2.0
    with pytest.raises(InputError, match="sample_rate"):
        theory_from_card(card)


def test_bounds_share_the_confidence_budget():
    scores = {name: canaries(i, 300, 1.0) for i, name in enumerate(["loss", "zlib", "mink"])}
    result = compare_epsilon(card=dp_card(), scores=scores, confidence=0.95, methods=["clopper-pearson", "one-run"])
    assert len(result.rows) == 6
    assert result.per_bound_confidence == pytest.approx(1 - 0.05 / 6)
    assert all(r.result.confidence == pytest.approx(1 - 0.05 / 6) for r in result.rows)
    assert result.notes and "Bonferroni" in result.notes[0]
