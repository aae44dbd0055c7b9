"""Issue #10: accountants never hang or crash, calibration answers for any target, group privacy,
and the one-run bound refuses label rates it cannot handle. Durations are CPU time (a shared test
machine's wall clock says little)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from dpaudit.errors import ConfigError
from dpaudit.privacy import accountants as acc
from dpaudit.privacy.accountants import (
    PRV_ERROR_FLOOR,
    AccountantUnavailable,
    answer_epsilon,
    calibrate,
    compute_epsilon,
)
from dpaudit.privacy.comparator import compare_epsilon, theory_from_card
from dpaudit.privacy.events import Composed, PoissonSampledGaussian
from dpaudit.privacy.group import group_privacy
from dpaudit.privacy.one_run import one_run_bound

HUGE = dict(noise_multiplier=0.3, sample_rate=1.0, steps=10_000, delta=1e-5)  # PRV would ask for ≈ 250 GiB


def test_prv_declines_a_grid_above_its_memory_budget_in_milliseconds():
    start = time.process_time()
    with pytest.raises(AccountantUnavailable, match="GiB, above its"):
        compute_epsilon(**HUGE, accountant="prv")
    assert time.process_time() - start < 5
    assert compute_epsilon(**HUGE, accountant="rdp") > 1e4  # RDP still answers


def test_answer_epsilon_falls_back_to_rdp_and_says_so():
    events = [Composed(PoissonSampledGaussian(HUGE["noise_multiplier"], HUGE["sample_rate"]), HUGE["steps"])]
    answer = answer_epsilon(events, delta=HUGE["delta"], accountant="prv")
    assert answer.accountant == "rdp" and "prv n/a" in answer.note
    assert answer.epsilon == pytest.approx(compute_epsilon(**HUGE, accountant="rdp"))


def test_a_card_whose_prv_is_unavailable_still_gets_a_theory():
    card = {"dp": {"noise_multiplier": 0.3, "sample_rate": 1.0, "steps": 10_000, "delta": 1e-5}}
    theory = theory_from_card(card)
    assert set(theory.epsilons) == {"rdp"} and "GiB" in theory.unavailable["prv"]
    labels = np.r_[np.ones(50), np.zeros(50)].astype(int)
    comparison = compare_epsilon(card=card, scores={"loss": (np.linspace(0, 1, 100), labels)})
    assert comparison.verdict == "consistent"
    assert any(note.startswith("prv n/a") for note in comparison.notes)


def test_calibrating_epsilon_1000_finishes_in_seconds():
    start = time.process_time()
    found = calibrate(target_epsilon=1000.0, sample_rate=0.25, steps=40, delta=1e-5)
    assert time.process_time() - start < 30
    assert 990 <= found.epsilon <= 1000
    landed = compute_epsilon(noise_multiplier=found.noise_multiplier, sample_rate=0.25, steps=40, delta=1e-5,
                             accountant=found.accountant)
    assert landed <= 1000


def test_targets_below_prvs_error_floor_are_reached_by_rdp():
    """ε = 0.01 needs σ ≈ 10²: PRV cannot resolve it (its error is 5·10⁻⁴), RDP with large orders can."""
    found = calibrate(target_epsilon=0.01, sample_rate=0.01, steps=1000, delta=1e-5)
    assert found.accountant == "rdp" and "error floor" in found.note and PRV_ERROR_FLOOR == pytest.approx(0.05)
    assert 0.0099 <= found.epsilon <= 0.01 and 10 < found.noise_multiplier < 1e4


def test_a_target_that_no_useful_noise_meets_is_refused():
    with pytest.raises(ConfigError, match="above what any useful noise gives"):
        calibrate(target_epsilon=1e9, sample_rate=0.01, steps=10, delta=1e-5)


def test_opacus_failures_become_unavailable(monkeypatch):
    def broken(self, history, delta):
        raise OverflowError("math range error")

    monkeypatch.setattr(acc.PrvAccountant, "_epsilon", broken)
    with pytest.raises(AccountantUnavailable, match="prv failed: OverflowError"):
        compute_epsilon(noise_multiplier=1.0, sample_rate=0.01, steps=10, delta=1e-5, accountant="prv")


def test_group_privacy_formula():
    g = group_privacy(epsilon=0.5, delta=1e-6, k=3, n=1000)
    assert g.epsilon == pytest.approx(1.5) and g.delta == pytest.approx(3 * math.exp(1.0) * 1e-6) and g.meaningful
    assert not group_privacy(epsilon=8.0, delta=1e-4, k=2, n=100).meaningful  # δ_2 = 0.6
    assert group_privacy(epsilon=1.0, delta=1e-5, k=1).delta == pytest.approx(1e-5)
    with pytest.raises(ConfigError, match="`k`"):
        group_privacy(epsilon=1.0, delta=1e-5, k=0)


def test_comparator_reports_the_group_guarantee_of_a_card_with_duplicates():
    card = {"dp": {"noise_multiplier": 1.0, "sample_rate": 0.1, "steps": 100, "delta": 1e-5, "n": 1000},
            "duplicates": {"max_multiplicity": 4, "groups": 1, "ids": ["a", "b", "c", "d"]}}
    theory = theory_from_card(card)
    assert theory.group.k == 4 and theory.group.epsilon == pytest.approx(4 * theory.epsilon)
    labels = np.r_[np.ones(50), np.zeros(50)].astype(int)
    comparison = compare_epsilon(card=card, scores={"loss": (np.linspace(0, 1, 100), labels)})
    assert comparison.to_json()["group_privacy"]["k"] == 4
    assert any(note.startswith("group privacy") for note in comparison.notes)


def test_one_run_refuses_a_one_sided_grid_when_labels_are_not_half():
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(800), np.zeros(200)].astype(int)  # 80% members, no signal at all
    scores = rng.normal(size=1000)
    with pytest.raises(ConfigError, match="80% of the labels"):
        one_run_bound(scores, labels, delta=1e-5, k_grid=[(50, 0), (100, 0)])
    with pytest.warns(UserWarning, match="probability 1/2"):
        assert one_run_bound(scores, labels, delta=1e-5).epsilon_lb == 0.0  # symmetric guesses are still allowed


def test_comparator_warns_from_a_rate_5_points_off_half():
    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(550), np.zeros(450)].astype(int)  # 55% members: |rate − ½| = 0.05
    card = {"dp": {"noise_multiplier": 1.0, "sample_rate": 0.1, "steps": 100, "delta": 1e-5}}
    with pytest.warns(UserWarning):
        comparison = compare_epsilon(card=card, scores={"c": (rng.normal(size=1000), labels)}, methods=["one-run"])
    assert any("probability 1/2" in note for note in comparison.notes)


def test_epsilon_cli_shows_na_and_carries_on(cli):
    args = ["epsilon", "--noise-multiplier", "0.3", "--sample-rate", "1", "--steps", "10000", "--delta", "1e-5",
            "--accountant", "all"]
    start = time.process_time()
    code, out, err = cli(*args, "--json")
    assert code == 0, err
    assert time.process_time() - start < 60
    import json

    data = json.loads(out)
    assert data["epsilons"]["prv"] is None and "GiB" in data["unavailable"]["prv"]
    assert data["accountant"] == "rdp" and data["epsilon"] == data["epsilons"]["rdp"] > 1e4
    code, out, _ = cli(*args)
    assert code == 0 and "n/a" in out
