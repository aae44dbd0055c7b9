"""Every checker passes and fails where it should, including edge cases.

Each row: (type, kwargs, response, strict pass?). The judge's rules (empty fails everything, loose
variants) are tested in test_scoring.py; here a checker is called as the judge calls it.
"""

from __future__ import annotations

import pytest

from dpaudit.data.constraints import CONSTRAINT_TYPES, describe, request_text
from dpaudit.evaluators.adherence import CHECKERS, judge_response
from dpaudit.evaluators.adherence.checkers import CheckContext

PROMPT = "Write a short note about tea."

CASES = [
    # keywords
    ("keywords:include", {"keywords": ["tea", "green"]}, "Green tea is nice.", True),
    ("keywords:include", {"keywords": ["tea", "green"]}, "TEA and GREEN.", True),
    ("keywords:include", {"keywords": ["tea", "green"]}, "Greenish teas only.", False),
    ("keywords:include", {"keywords": ["café"]}, "Un café, s'il vous plaît.", True),
    ("keywords:forbidden", {"forbidden_words": ["very", "good"]}, "It is fine.", True),
    ("keywords:forbidden", {"forbidden_words": ["very", "good"]}, "Everyone is goodly.", True),
    ("keywords:forbidden", {"forbidden_words": ["very", "good"]}, "It is Very fine.", False),
    ("keywords:frequency", {"keyword": "plan", "frequency": 2, "relation": "at least"}, "Plan. plan!", True),
    ("keywords:frequency", {"keyword": "plan", "frequency": 2, "relation": "at least"}, "plan planning", False),
    ("keywords:frequency", {"keyword": "plan", "frequency": 2, "relation": "less than"}, "one plan", True),
    ("keywords:frequency", {"keyword": "plan", "frequency": 2, "relation": "less than"}, "plan and plan", False),
    ("keywords:letter_frequency", {"letter": "z", "frequency": 3, "relation": "at least"}, "Zoo pizza", True),
    ("keywords:letter_frequency", {"letter": "z", "frequency": 3, "relation": "at least"}, "zoo", False),
    ("keywords:letter_frequency", {"letter": "z", "frequency": 2, "relation": "less than"}, "zoo", True),
    ("keywords:letter_frequency", {"letter": "z", "frequency": 2, "relation": "less than"}, "Zz", False),
    # length
    ("length:words", {"num_words": 3, "relation": "at least"}, "one two three", True),
    ("length:words", {"num_words": 3, "relation": "at least"}, "one two *** ---", False),
    ("length:words", {"num_words": 3, "relation": "less than"}, "one two   \n\n", True),
    ("length:words", {"num_words": 3, "relation": "less than"}, "one two three", False),
    ("length:sentences", {"num_sentences": 2, "relation": "at least"}, "Dr. Who came. He left.", True),
    ("length:sentences", {"num_sentences": 2, "relation": "at least"}, "Dr. Who paid 3.50 today.", False),
    ("length:sentences", {"num_sentences": 2, "relation": "less than"}, "Only one, e.g. this.", True),
    ("length:sentences", {"num_sentences": 2, "relation": "less than"}, "One. Two.", False),
    ("length:paragraphs", {"num_paragraphs": 2}, "First part.\n\n***\n\nSecond part.", True),
    ("length:paragraphs", {"num_paragraphs": 2}, "First***Second", True),
    ("length:paragraphs", {"num_paragraphs": 2}, "First.\n\nSecond.", False),
    ("length:paragraphs", {"num_paragraphs": 2}, "***\nFirst\n***\nSecond", False),  # empty first chunk
    ("length:paragraphs", {"num_paragraphs": 2}, "A\n***\nB\n***\nC", False),
    (
        "length:nth_paragraph_first_word",
        {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "next"},
        "Start here.\n\n*Next*, do this.\n\nDone.",
        True,
    ),
    (
        "length:nth_paragraph_first_word",
        {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "next"},
        "Start here.\n\nThen next.\n\nDone.",
        False,
    ),
    (
        "length:nth_paragraph_first_word",
        {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "next"},
        "Start here.\n\nNext do this.",
        False,
    ),
    # format
    ("format:bullets", {"num_bullets": 2}, "Intro:\n* one\n- two\nOutro", True),
    ("format:bullets", {"num_bullets": 2}, "* one\n* two\n* three", False),
    ("format:bullets", {"num_bullets": 2}, "*one* and *two*\n---", False),
    ("format:json", {}, '{"a": 1, "b": [1, 2]}', True),
    ("format:json", {}, '```json\n{"a": "ü"}\n```', True),
    ("format:json", {}, '```\n[1, 2]\n```\n   ', True),
    ("format:json", {}, "Here it is: {\"a\": 1}", False),
    ("format:json", {}, '"just a string"', False),
    ("format:json", {}, "{'a': 1}", False),
    ("format:title", {}, "<<Tea Time>>\nTea is nice.", True),
    ("format:title", {}, "Title: Tea Time", False),
    ("format:title", {}, "<<   >> nothing", False),
    ("format:highlights", {"num_highlights": 2}, "Use *green* tea and **black** tea.", True),
    ("format:highlights", {"num_highlights": 2}, "Use *green* tea * not this *.", False),
    ("format:sections", {"num_sections": 2, "section_splitter": "SECTION"}, "SECTION 1\nA\nSECTION 2\nB", True),
    ("format:sections", {"num_sections": 2, "section_splitter": "SECTION"}, "## SECTION 1: A\n## SECTION 2: B", True),
    ("format:sections", {"num_sections": 2, "section_splitter": "SECTION"}, "Section 1\nA\nSection 2\nB", False),
    ("format:sections", {"num_sections": 2, "section_splitter": "SECTION"}, "SECTION 1\nsee SECTION 2", False),
    ("format:placeholders", {"num_placeholders": 2}, "Dear [name], see you at [time].", True),
    ("format:placeholders", {"num_placeholders": 2}, "Dear [name], see you at [ ].", False),
    ("format:postscript", {"marker": "P.S."}, "Body.\nP.S. more", True),
    ("format:postscript", {"marker": "P.S."}, "Body.\n**p. s.** more", True),
    ("format:postscript", {"marker": "P.S."}, "Body. P.S. inline only", False),
    ("format:postscript", {"marker": "P.P.S."}, "Body.\nP.S. more", False),
    ("format:postscript", {"marker": "P.P.S."}, "Body.\nP.P.S. more", True),
    # case
    ("case:lowercase", {}, "all lower, naïve über 123.", True),
    ("case:lowercase", {}, "not Lower", False),
    ("case:lowercase", {}, "ünïcode ß", True),
    ("case:lowercase", {}, "Ünïcode", False),
    ("case:uppercase", {}, "ALL UPPER, NAÏVE 123.", True),
    ("case:uppercase", {}, "ALL UPPEr", False),
    ("case:capital_frequency", {"frequency": 2, "relation": "at least"}, "NASA and the USA", True),
    ("case:capital_frequency", {"frequency": 2, "relation": "at least"}, "I saw NASA", False),
    ("case:capital_frequency", {"frequency": 2, "relation": "less than"}, "I saw NASA", True),
    ("case:capital_frequency", {"frequency": 2, "relation": "less than"}, "NASA USA", False),
    # start/end, punctuation
    ("startend:end_phrase", {"end_phrase": "Any questions?"}, "Done. any questions?  \n", True),
    ("startend:end_phrase", {"end_phrase": "Any questions?"}, "Any questions? Done.", False),
    ("startend:quotes", {}, '  "Quoted answer."\n', True),
    ("startend:quotes", {}, "“Curly quoted.”", True),
    ("startend:quotes", {}, '"', False),
    ("startend:quotes", {}, '"Only an opening quote.', False),
    ("punctuation:no_comma", {}, "No commas here; none at all.", True),
    ("punctuation:no_comma", {}, "One, two.", False),
    ("punctuation:no_comma", {}, "全角，逗号", False),
    # combination
    ("combination:two_responses", {}, "First answer.\n******\nSecond answer.", True),
    ("combination:two_responses", {}, "Same.\n******\nSame.", False),
    ("combination:two_responses", {}, "One.\n******\n", False),
    ("combination:two_responses", {}, "A\n******\nB\n******\nC", False),
    ("combination:repeat_prompt", {}, "Write a short note about tea.\nTea is great.", True),
    ("combination:repeat_prompt", {}, "Write a   short note\nabout tea. Tea is great.", True),
    ("combination:repeat_prompt", {}, "Sure! Write a short note about tea.", False),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Say hi"}, "Say hi. Hi!", True),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Say hi"}, "Say history", False),
]


def test_every_type_has_passing_and_failing_cases():
    assert set(CHECKERS) == set(CONSTRAINT_TYPES)
    for type_id in CONSTRAINT_TYPES:
        outcomes = {expected for t, _, _, expected in CASES if t == type_id}
        assert outcomes == {True, False}, f"{type_id} needs a passing and a failing case"


@pytest.mark.parametrize(("type_id", "kwargs", "response", "expected"), CASES)
def test_checker(type_id, kwargs, response, expected):
    verdict = judge_response(prompt=PROMPT, constraints=[{"type": type_id, "kwargs": kwargs}], response=response)
    assert verdict.results[0].strict is expected


@pytest.mark.parametrize("type_id", sorted(CONSTRAINT_TYPES))
@pytest.mark.parametrize("response", ["", "   \n\t "])
def test_empty_response_fails_every_instruction(type_id, response):
    kwargs = next(kw for t, kw, _, _ in CASES if t == type_id)
    verdict = judge_response(prompt=PROMPT, constraints=[{"type": type_id, "kwargs": kwargs}], response=response)
    assert not verdict.results[0].strict and not verdict.results[0].loose


@pytest.mark.parametrize(("type_id", "kwargs", "response", "expected"), [c for c in CASES if c[3]])
def test_trailing_whitespace_does_not_change_a_pass(type_id, kwargs, response, expected):
    verdict = judge_response(
        prompt=PROMPT, constraints=[{"type": type_id, "kwargs": kwargs}], response=response + "  \n\n "
    )
    assert verdict.results[0].strict


def test_repeat_prompt_ignores_the_appended_instruction_text():
    constraint = {"type": "combination:repeat_prompt", "kwargs": {}}
    full_prompt = f"{PROMPT}\n\n{describe(constraint)}"
    assert request_text(full_prompt, [constraint]) == PROMPT
    ctx = CheckContext(prompt=full_prompt, request=request_text(full_prompt, [constraint]))
    assert CHECKERS.get("combination:repeat_prompt")(f"{PROMPT}\nTea.", {}, ctx)
