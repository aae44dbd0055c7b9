"""Contract tests for the taxonomy: builders, texts, conflicts, sampling, and enforce() against the checkers."""

from __future__ import annotations

import json
import random

import pytest

from dpaudit.data import constraints as C
from dpaudit.data.constraints import CONSTRAINT_TYPES, describe, enforce, sample_constraints, validate_constraint
from dpaudit.data.text import words
from dpaudit.errors import ConfigError, InputError
from dpaudit.evaluators.adherence import judge_response

PROMPT = "Tell me about the history of tea, please."
RESPONSES = [
    "Tea was first drunk in China, thousands of years ago. It spread along trade routes; by the 17th century it "
    "reached Europe, where it became very popular. Today it is a really common drink around the world!",
    "",
    "short answer",
    "Dr. Li said: brew at 85.5 degrees, e.g. for green tea.\n\n- item one\n- item two *bold*\n\nSECTION 1 *** PART 2",
    "Ünïcode wörds ärë fün. Naïve café, très bien! 東京のお茶。",
    " ".join(["A long sentence, with good words and bad words, that keeps going and going."] * 30),
]
ALL_TYPES = sorted(CONSTRAINT_TYPES)


def _all_pass(response: str, constraints: list[dict], prompt: str = PROMPT) -> list[str]:
    full_prompt = prompt + "\n\n" + " ".join(describe(c) for c in constraints)
    verdict = judge_response(prompt=full_prompt, constraints=constraints, response=response)
    return [r.type for r in verdict.results if not r.strict]


def test_taxonomy_covers_the_issue():
    assert len(CONSTRAINT_TYPES) >= 20
    assert {CONSTRAINT_TYPES.get(t).group for t in CONSTRAINT_TYPES} == {
        "keywords", "length", "format", "case", "startend", "punctuation", "combination"}


@pytest.mark.parametrize("type_id", ALL_TYPES)
def test_builder_output_is_json_and_described(type_id):
    ctype = CONSTRAINT_TYPES.get(type_id)
    for seed in range(20):
        kwargs = ctype.build(random.Random(seed))
        constraint = {"type": type_id, "kwargs": kwargs}
        assert json.loads(json.dumps(constraint)) == constraint
        assert validate_constraint(constraint) == constraint
        text = describe(constraint)
        assert isinstance(text, str) and text.strip() and "{" not in text


def test_conflicts_are_symmetric_and_known():
    for type_id in ALL_TYPES:
        ctype = CONSTRAINT_TYPES.get(type_id)
        assert type_id not in ctype.conflicts
        for other in ctype.conflicts:
            assert other in CONSTRAINT_TYPES
            assert type_id in CONSTRAINT_TYPES.get(other).conflicts, f"{type_id} / {other}"
    assert "case:uppercase" in CONSTRAINT_TYPES.get("case:lowercase").conflicts
    assert "format:bullets" in CONSTRAINT_TYPES.get("format:json").conflicts


def test_every_type_is_enforceable():
    assert all(CONSTRAINT_TYPES.get(t).enforceable for t in ALL_TYPES)


def test_sampling_is_deterministic_compatible_and_serialisable():
    for seed in range(200):
        k = seed % 5
        first = sample_constraints(random.Random(seed), k)
        assert first == sample_constraints(random.Random(seed), k)
        assert len(first) == k and len({c["type"] for c in first}) == k
        C.check_compatible(first)
        assert json.loads(json.dumps(first)) == first


def test_sampling_rejects_impossible_k():
    with pytest.raises(ConfigError, match="`k`"):
        sample_constraints(random.Random(0), -1)
    with pytest.raises(ConfigError, match="could not sample"):
        sample_constraints(random.Random(0), len(CONSTRAINT_TYPES))


@pytest.mark.parametrize("type_id", ALL_TYPES)
def test_enforce_single_type_passes_its_checker(type_id):
    ctype = CONSTRAINT_TYPES.get(type_id)
    for seed in range(15):
        constraints = [{"type": type_id, "kwargs": ctype.build(random.Random(seed))}]
        for response in RESPONSES:
            out = enforce(response, constraints, prompt=PROMPT)
            assert not _all_pass(out, constraints), (constraints, response, out)


def test_enforce_random_compatible_sets_pass_every_checker():
    rng = random.Random(1234)
    for _ in range(600):
        constraints = sample_constraints(rng, rng.randint(1, 3))
        response = rng.choice(RESPONSES)
        prompt = rng.choice([PROMPT, PROMPT + "\n\n" + " ".join(describe(c) for c in constraints)])
        out = enforce(response, constraints, prompt=prompt)
        assert not _all_pass(out, constraints), (constraints, response, out)


def test_enforce_is_deterministic_and_keeps_a_compliant_response():
    constraints = [{"type": "case:lowercase", "kwargs": {}}, {"type": "punctuation:no_comma", "kwargs": {}}]
    assert enforce("Hello, World.", constraints, prompt=PROMPT) == "hello world."
    assert enforce("already fine.", constraints, prompt=PROMPT) == "already fine."
    constraints = sample_constraints(random.Random(7), 3)
    assert enforce(RESPONSES[0], constraints, prompt=PROMPT) == enforce(RESPONSES[0], constraints, prompt=PROMPT)


def test_enforce_truncates_to_a_word_limit():
    constraints = [{"type": "length:words", "kwargs": {"num_words": 60, "relation": "less than"}}]
    out = enforce(RESPONSES[-1], constraints, prompt=PROMPT)
    assert 40 <= len(words(out)) < 60 and out.endswith(".")


def test_enforce_rejects_conflicts_and_unknown_types():
    with pytest.raises(ConfigError, match="conflict"):
        enforce("x", [{"type": "case:lowercase", "kwargs": {}}, {"type": "case:uppercase", "kwargs": {}}], prompt="p")
    with pytest.raises(ConfigError, match="twice"):
        enforce("x", [{"type": "format:title", "kwargs": {}}] * 2, prompt="p")
    with pytest.raises(InputError, match="unknown constraint type 'case:shouting'"):
        enforce("x", [{"type": "case:shouting", "kwargs": {}}], prompt="p")
    with pytest.raises(ConfigError, match="without a prompt"):
        enforce("x", [{"type": "combination:repeat_prompt", "kwargs": {}}], prompt="  ")


@pytest.mark.parametrize(
    ("constraint", "field", "message"),
    [
        ("lowercase", "constraint", "must be an object"),
        ({"kwargs": {}}, "constraint.type", "missing"),
        ({"type": "case:shouting"}, "constraint.type", "registered: case:capital_frequency"),
        ({"type": "case:lowercase", "kwargs": []}, "constraint.kwargs", "must be an object"),
        ({"type": "case:lowercase", "kwargs": {}, "extra": 1}, "constraint", "unexpected keys"),
        ({"type": "length:words", "kwargs": {"relation": "at least"}}, "constraint.kwargs.num_words", "required"),
        ({"type": "length:words", "kwargs": {"num_words": "5", "relation": "at least"}},
         "constraint.kwargs.num_words", "integer"),
        ({"type": "length:words", "kwargs": {"num_words": 0, "relation": "at least"}}, "constraint.kwargs.num_words",
         ">= 1"),
        ({"type": "length:words", "kwargs": {"num_words": 5, "relation": "at most"}}, "constraint.kwargs.relation",
         "one of"),
        ({"type": "keywords:include", "kwargs": {"keywords": []}}, "constraint.kwargs.keywords", "non-empty list"),
        ({"type": "keywords:letter_frequency", "kwargs": {"letter": "ab", "frequency": 1, "relation": "at least"}},
         "constraint.kwargs.letter", "single letter"),
        ({"type": "format:title", "kwargs": {"title": "x"}}, "constraint.kwargs", "unknown arguments"),
    ],
)
def test_validation_names_the_field(constraint, field, message):
    with pytest.raises(InputError, match=message) as info:
        validate_constraint(constraint)
    assert info.value.field == field


def test_validation_locates_file_and_line():
    with pytest.raises(InputError) as info:
        C.validate_constraints([{"type": "case:lowercase"}, {"type": "nope"}], path="r.jsonl", line=7)
    assert str(info.value).startswith("r.jsonl:7 field 'constraints[1].type'")


def test_fixed_texts_avoid_the_words_enforce_removes():
    fixed = " ".join(
        C.FILLERS + C.TITLES + C.POSTSCRIPT_NOTES + C.END_PHRASES + C.PLACEHOLDERS + C.HIGHLIGHT_WORDS
        + C.CAPITAL_WORDS + C.FIRST_WORD_POOL + C.INCLUDE_POOL + C.SECTION_SPLITTERS
        + tuple(w for ws in C.LETTER_WORDS.values() for w in ws)
        + (C.SECOND_RESPONSE_LEAD, C.JSON_KEY, "This also relates to Key word: Words to note: Tags: Fill in as needed.",
           "Keep in mind and")
    )
    fixed_words = {w.lower() for w in words(fixed)}
    assert not fixed_words & set(C.FORBIDDEN_POOL)
    assert not fixed_words & set(C.FREQUENCY_POOL)
    assert "," not in fixed
