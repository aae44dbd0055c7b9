"""Side metrics on a hand-computed example; LCS against a brute-force reference."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from dpaudit.evaluators.adherence import rouge_l_f1, side_metrics
from dpaudit.evaluators.adherence.side_metrics import lcs_length


def test_hand_computed():
    m = side_metrics(
        responses=["the cat sat", "", "the cat the cat"],
        references=["the cat sat on the mat", "something", None],
    )
    assert m.empty_rate == pytest.approx(1 / 3)
    assert m.distinct_2 == pytest.approx(3 / 5)  # (the cat) (cat sat) | (the cat) (cat the) (the cat)
    assert m.length_ratio == pytest.approx((3 / 6 + 0 / 1) / 2)
    assert m.rouge_l_f1 == pytest.approx((2 * 1 * 0.5 / 1.5 + 0) / 2)
    assert m.n_with_reference == 2


def test_without_references_and_empty_input():
    m = side_metrics(responses=["only one"])
    assert math.isnan(m.length_ratio) and m.to_json()["rouge_l_f1"] is None
    empty = side_metrics(responses=[])
    assert empty.to_json()["empty_rate"] is None and empty.n == 0
    with pytest.raises(ValueError, match="match"):
        side_metrics(responses=["a"], references=[])


def _lcs_brute(a, b):
    for size in range(min(len(a), len(b)), 0, -1):
        subs = set(itertools.combinations(b, size))
        if any(c in subs for c in itertools.combinations(a, size)):
            return size
    return 0


def test_lcs_matches_brute_force():
    rng = random.Random(0)
    for _ in range(200):
        a = [rng.choice("abc") for _ in range(rng.randint(0, 7))]
        b = [rng.choice("abc") for _ in range(rng.randint(0, 7))]
        assert lcs_length(a, b) == _lcs_brute(a, b)


def test_rouge_l():
    assert rouge_l_f1("The cat, sat!", "the cat sat") == 1.0
    assert rouge_l_f1("", "the cat") == 0.0
    assert rouge_l_f1("dog", "cat") == 0.0
