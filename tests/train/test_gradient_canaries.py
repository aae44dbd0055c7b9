"""White-box Dirac gradient canaries audit DP-SGD itself (issue #6, "Canaries in training").

Full batch (q = 1): T steps of the Gaussian mechanism with noise σ are exactly μ-GDP with
μ = √T/σ, and a canary's coordinate change is a sufficient statistic for its inclusion. So the
one-run audit of a correct trainer must be consistent with the accountant's ε and close to the
ideal audit of a μ-GDP mechanism with the same number of canaries, while a trainer whose noise
is 10× too small must be caught as a VIOLATION.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dpaudit.privacy.comparator import CONSISTENT, VIOLATION, compare_epsilon
from dpaudit.privacy.one_run import one_run_bound
from dpaudit.train import DPConfig, TrainConfig, train_adapter
from dpaudit.train import dp as dp_mod
from dpaudit.train import loop as loop_mod
from tests.conftest import make_records

@pytest.fixture(autouse=True)
def _fixed_secret_seed(monkeypatch):
    """The noise stays secret-mode (the card says "secure", so the comparator gives a verdict), but this
    statistical test draws the same noise on every run (the secret seed is pinned here, in the test only)."""
    monkeypatch.setattr(loop_mod.secrets, "randbits", lambda bits: 20251129)


M = 1000
EPSILON = 4.0
DELTA = 1e-5
# C far above the data's gradient norms: the data's drift along a canary coordinate is then
# negligible next to the noise σC√T, and the audit sees the mechanism alone.
CONFIG = dict(max_steps=20, batch_size=8, optimizer="sgd", lr=1e-4, gradient_canaries=M, seed=0)


def _audit(micro_model, micro_tokenizer, out, **overrides):
    members = make_records(8, seed=5)  # batch_size = N: sample rate 1, every step full batch
    config = TrainConfig(**CONFIG, dp=DPConfig(target_epsilon=EPSILON, delta=DELTA, max_grad_norm=100.0), **overrides)
    train_adapter(base_model=micro_model, tokenizer=micro_tokenizer, members=members, config=config, out_dir=out,
                  progress=False)
    card = json.loads((out / "dpaudit.json").read_text())
    comparison = compare_epsilon(card=card, scores=out / "gradient_canary_scores.csv", methods=["one-run"])
    return card, comparison


def _ideal(mu: float, labels: np.ndarray, *, seeds: int = 20) -> float:
    """Median one-run bound of the ideal audit: μ-GDP scores N(μ·included, 1) for the same canaries."""
    bounds = []
    for seed in range(seeds):
        scores = np.random.default_rng(seed).normal(size=labels.size) + mu * labels
        bounds.append(one_run_bound(scores, labels, delta=DELTA, confidence=0.95).epsilon_lb)
    return float(np.median(bounds))


def test_gradient_canaries_are_consistent_and_tight(micro_model, micro_tokenizer, tmp_path):
    card, comparison = _audit(micro_model, micro_tokenizer, tmp_path / "ok")
    dp = card["dp"]
    assert dp["sample_rate"] == 1.0 and 0.95 * EPSILON <= dp["epsilon"] <= EPSILON
    assert comparison.verdict == CONSISTENT
    (row,) = comparison.rows
    labels = np.array([int(v) for v in card["gradient_canaries"]["inclusion"].values()])
    assert labels.size == M
    ideal = _ideal(math.sqrt(dp["steps"]) / dp["noise_multiplier"], labels)
    assert ideal > 1.0  # about 1.3 at ε = 4 with m = 1000 (finite m caps every audit)
    assert row.result.epsilon >= 0.7 * ideal, (row.result.epsilon, ideal)


def test_broken_trainer_is_caught_as_violation(micro_model, micro_tokenizer, tmp_path, monkeypatch):
    # Noise × 1/10 while the ledger keeps σ. The first-step noise check would stop this run first
    # (tests/train/test_dp.py), so it is switched off to show that the audit catches it too.
    monkeypatch.setattr(dp_mod, "check_noise_std", lambda noise, expected_std: float(noise.std()))
    card, comparison = _audit(micro_model, micro_tokenizer, tmp_path / "broken", _noise_scale=0.1)
    assert comparison.verdict == VIOLATION
    assert card["hyperparameters"]["_noise_scale"] == 0.1  # a broken run says so in its card
