"""Strict/loose × prompt/instruction aggregation on a hand-computed example; bootstrap CIs; exact McNemar."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from dpaudit.evaluators.adherence import judge_response, loose_variants, mcnemar, score_responses

NO_COMMA = {"type": "punctuation:no_comma", "kwargs": {}}
LOWER = {"type": "case:lowercase", "kwargs": {}}
UPPER = {"type": "case:uppercase", "kwargs": {}}
BYE = {"type": "startend:end_phrase", "kwargs": {"end_phrase": "Bye."}}
HIGHLIGHT = {"type": "format:highlights", "kwargs": {"num_highlights": 1}}

# prompt 1: both followed.                               strict 2/2, loose 2/2
# prompt 2: the comma is on the chatty first line only.  strict 1/2 (no_comma fails), loose 2/2
# prompt 3: not uppercase on any variant.                strict 1/2, loose 1/2
# prompt 4: no constraints: skipped.
ITEMS = [
    {"prompt": "p1", "constraints": [NO_COMMA, LOWER], "response": "hello there", "id": "a"},
    {"prompt": "p2", "constraints": [NO_COMMA, BYE], "response": "Sure, here it is:\nok then\nBye.", "id": "b"},
    {"prompt": "p3", "constraints": [HIGHLIGHT, UPPER], "response": "*hi* there", "id": "c"},
    {"prompt": "p4", "constraints": [], "response": "anything", "id": "d"},
]


def test_hand_computed_aggregation():
    result = score_responses(ITEMS, seed=0, n_bootstrap=200)
    assert (result.n_prompts, result.n_instructions, result.n_unconstrained) == (3, 6, 1)
    assert result.prompt_strict == pytest.approx(1 / 3)
    assert result.prompt_loose == pytest.approx(2 / 3)
    assert result.instruction_strict == pytest.approx(4 / 6)
    assert result.instruction_loose == pytest.approx(5 / 6)
    assert result.prompt_pass().tolist() == [True, False, False]
    assert result.prompt_pass(loose=True).tolist() == [True, True, False]
    per_type = {t: (a.n, a.strict, a.loose) for t, a in result.per_type.items()}
    assert per_type == {
        "punctuation:no_comma": (2, 0.5, 1.0),
        "case:lowercase": (1, 1.0, 1.0),
        "startend:end_phrase": (1, 1.0, 1.0),
        "format:highlights": (1, 1.0, 1.0),
        "case:uppercase": (1, 0.0, 0.0),
    }


def test_verdict_detail():
    verdict = judge_response(**{k: ITEMS[1][k] for k in ("prompt", "constraints", "response", "id")})
    assert [(r.type, r.strict, r.loose) for r in verdict.results] == [
        ("punctuation:no_comma", False, True), ("startend:end_phrase", True, True)]
    assert (verdict.strict, verdict.loose, verdict.id) == (False, True, "b")


def test_loose_variants():
    assert loose_variants("a\n*b*\nc") == ["a\n*b*\nc", "*b*\nc", "a\n*b*", "*b*", "a\nb\nc", "b\nc", "a\nb", "b"]


def test_loose_accepts_markup_removed():
    verdict = judge_response(prompt="p", constraints=[BYE], response="It is done. **Bye.**")
    assert (verdict.results[0].strict, verdict.results[0].loose) == (False, True)


def test_bootstrap_cis_are_seeded_and_bracket_the_estimate():
    result = score_responses(ITEMS, seed=3, n_bootstrap=500)
    again = score_responses(ITEMS, seed=3, n_bootstrap=500)
    assert result.ci95 == again.ci95
    for level, (lo, hi) in result.ci95.items():
        assert 0.0 <= lo <= getattr(result, level) <= hi <= 1.0
    assert score_responses(ITEMS, seed=4, n_bootstrap=500).ci95 != result.ci95
    # every prompt followed: no uncertainty left
    perfect = score_responses([ITEMS[0]] * 5, n_bootstrap=100)
    assert all(ci == (1.0, 1.0) for ci in perfect.ci95.values())


def test_to_json_matches_the_report_schema_shape():
    data = score_responses(ITEMS, n_bootstrap=0).to_json(include_verdicts=True)
    assert data["ci95"] is None
    assert data["per_type"]["punctuation:no_comma"] == 0.5
    assert data["per_type_detail"]["punctuation:no_comma"] == {"n": 2, "strict": 0.5, "loose": 1.0}
    assert [v["id"] for v in data["verdicts"]] == ["a", "b", "c"]


def test_no_constrained_prompt_gives_nan_and_null():
    with pytest.warns(RuntimeWarning, match="no prompt with constraints"):
        result = score_responses([ITEMS[3]])
    assert math.isnan(result.prompt_strict) and result.to_json()["prompt_strict"] is None


def test_unknown_type_is_an_input_error():
    from dpaudit.errors import InputError

    with pytest.raises(InputError, match=r"constraints\[0\]\.type"):
        score_responses([{"prompt": "p", "constraints": [{"type": "x:y", "kwargs": {}}], "response": "r"}])


def test_mcnemar_hand_computed():
    a = [1, 1, 1, 1, 0, 0, 1, 0]
    b = [0, 0, 0, 1, 0, 1, 1, 0]
    # discordant: 3 only-A, 1 only-B; P(X <= 1 | n=4) = (1 + 4) / 16; two-sided doubles it
    assert mcnemar(a, b) == (1.0, 0.625)
    assert mcnemar(b, a) == (1.0, 0.625)
    assert mcnemar([1, 0, 1], [1, 0, 1]) == (0.0, 1.0)
    assert mcnemar([1] * 10, [0] * 10) == (0.0, pytest.approx(2 / 2**10))


def test_mcnemar_matches_scipy_binomtest():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.random(300) < 0.6
        b = rng.random(300) < 0.5
        only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
        expected = binomtest(only_a, only_a + only_b, 0.5).pvalue
        assert mcnemar(a, b)[1] == pytest.approx(expected, rel=1e-9)


def test_mcnemar_rejects_unpaired_input():
    with pytest.raises(ValueError, match="same length"):
        mcnemar([1, 0], [1])
