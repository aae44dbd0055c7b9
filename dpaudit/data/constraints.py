"""Verifiable instructions (IFEval-style taxonomy): how to phrase them and how to obey them.

A constraint is stored as plain data, ``{"type": "<group>:<name>", "kwargs": {...}}``, in a
record's ``constraints`` field. This module owns the taxonomy: for each type, a builder that
samples arguments, the instruction text, the types it conflicts with, and (where possible)
a way to rewrite a reference response so that it obeys. The checkers that judge responses
live in :mod:`dpaudit.evaluators.adherence` and are registered under the same type ids.

Public API (used by the synthetic generator and the judge):

- ``CONSTRAINT_TYPES``: Registry of ``ConstraintType``.
- ``sample_constraints(rng: random.Random, k: int, *, enforceable_only: bool) -> list[dict]``:
  ``k`` mutually non-conflicting constraints.
- ``describe(constraint: dict) -> str``: the instruction text to append to a prompt.
- ``enforce(response: str, constraints: list[dict], *, prompt: str) -> str``: a response obeying all.
- ``validate_constraint(constraint) -> dict`` and ``check_compatible(constraints)``: input checks
  that raise :class:`~dpaudit.errors.InputError` naming the offending field.
- ``request_text(prompt, constraints) -> str``: what "repeat the request" refers to.

>>> import random
>>> cs = sample_constraints(random.Random(0), 2)
>>> [c["type"] for c in cs] == [c["type"] for c in sample_constraints(random.Random(0), 2)]
True
>>> enforce("Hello, world.", [{"type": "case:lowercase", "kwargs": {}}, {"type": "punctuation:no_comma", "kwargs": {}}], prompt="Say hi.")
'hello world.'

How ``enforce`` composes
------------------------
Each enforceable type contributes *steps*, ``(order, fn(text, kwargs, ctx) -> str)``, and
:func:`enforce` runs the steps of all constraints sorted by order, on the response body:

====  ==========================================================================================
  1   prune the body: forbidden words, keyword maxima (their words appear in no fixed text we add)
 10+  append to the body: missing keywords, keyword/letter/capital-word counts, placeholders,
      highlights (counted without the pruned words, so that no later edit undoes them)
 20   layout (at most one: bullets, ``***`` paragraphs, blank-line paragraphs, sections)
 30+  wrap: two responses, title, postscript, end phrase, repeated request, double quotes
 40+  prune again what two responses doubled: keyword and capital-word maxima
 50   JSON (whitespace collapsed, so that a later change of case keeps it valid JSON)
 60+  letter case, then commas
====  ==========================================================================================

Length limits (words, sentences) have no step: :func:`enforce` recomposes in a loop, appending
neutral filler sentences while a minimum is unmet and trimming the original body while a maximum
is exceeded. Conflicts rule out the pairs this order cannot satisfy together (lowercase with
``SECTION`` markers, JSON with a postscript, ...); :func:`sample_constraints` also checks that the
fixed text a set adds fits its length limits. Every type here is enforceable; the contract tests
check each with its checker, alone and in random compatible sets.
"""

from __future__ import annotations

import json
import random
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dpaudit.data import text as tx
from dpaudit.errors import ConfigError, InputError
from dpaudit.registry import Registry

AT_LEAST = "at least"
LESS_THAN = "less than"
RELATIONS = (AT_LEAST, LESS_THAN)

# ---------------------------------------------------------------------------------------------------------------------
# Word pools. Builders draw keywords from these; the fixed text that enforce() adds (fillers, titles, notes) must use
# none of the words that enforce() later removes (FORBIDDEN_POOL, FREQUENCY_POOL): a test checks this.
# ---------------------------------------------------------------------------------------------------------------------
INCLUDE_POOL = (
    "balance", "context", "evidence", "example", "future", "method", "network", "pattern", "quality", "result",
    "resource", "strategy", "system", "purpose", "history", "energy", "community", "design", "process", "value",
)
FORBIDDEN_POOL = (
    "very", "really", "basically", "actually", "literally", "obviously", "totally", "extremely", "definitely",
    "honestly", "however", "therefore", "great", "good", "bad", "thing", "things", "stuff", "nice", "awesome",
)
FREQUENCY_POOL = (
    "important", "simple", "idea", "people", "world", "problem", "plan", "change", "common", "practice", "topic",
    "option",
)
FIRST_WORD_POOL = ("first", "next", "also", "finally", "overall", "meanwhile", "today", "still", "here", "now")
LETTER_WORDS = {
    "z": ("zebra", "pizza", "zone", "zigzag", "breeze", "fuzz"),
    "q": ("quiz", "quick", "quest", "quartz", "queen", "squad"),
    "x": ("box", "fox", "exit", "mix", "taxi", "xylophone"),
    "j": ("jam", "jazz", "joy", "jump", "jungle", "juice"),
    "k": ("kite", "kick", "knock", "kayak", "kiwi", "knack"),
    "v": ("vivid", "valve", "vine", "van", "velvet", "level"),
    "w": ("window", "wow", "swim", "willow", "awkward", "wind"),
    "y": ("yoyo", "yearly", "yummy", "by", "yellow", "sky"),
}
END_PHRASES = (
    "Is there anything else I can help with?",
    "Let me know if you have additional questions.",
    "Hope this helps!",
    "That is all for now.",
    "Thank you for reading.",
)
POSTSCRIPT_MARKERS = ("P.S.", "P.P.S.")
SECTION_SPLITTERS = ("SECTION", "PART")
TITLES = ("Key Points", "A Short Answer", "Overview", "Quick Guide", "In Brief")
POSTSCRIPT_NOTES = ("Thanks for reading.", "Feel free to ask for more.", "Happy to help further.")
FILLERS = (
    "This is worth keeping in mind.",
    "Each part matters here.",
    "That covers the main point.",
    "Details can vary by case.",
    "Small steps add up over time.",
    "Context helps here.",
    "It pays to check twice.",
    "Keep this in view.",
)
PLACEHOLDERS = ("[name]", "[date]", "[address]", "[city]", "[phone number]", "[company]", "[email]", "[amount]")
HIGHLIGHT_WORDS = ("focus", "clarity", "care", "detail", "scope", "timing")
CAPITAL_WORDS = ("NOTE", "KEY", "TIP", "FACT", "ALSO", "STEP", "FAQ", "OK")
SECOND_RESPONSE_LEAD = "Here is another version."
JSON_KEY = "response"
TWO_RESPONSES_SEPARATOR = "******"

# ---------------------------------------------------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnforceContext:
    """What a step may need besides the text: the request, and the words a later step removes."""

    request: str
    avoid: frozenset[str]  # lowercase words pruned at order 40+ (forbidden words, keyword maxima)
    variant: int  # picks among fixed titles and notes, from a hash of the response (deterministic, varied)


Step = Callable[[str, Mapping[str, Any], EnforceContext], str]


@dataclass(frozen=True)
class Param:
    """One keyword argument of a type: ``kind`` is ``int``, ``str``, ``words`` (list of str), ``relation``, ``letter``."""

    kind: str
    required: bool = True
    minimum: int = 1


@dataclass(frozen=True)
class ConstraintType:
    """One verifiable instruction type.

    ``build(rng)`` samples kwargs; ``text(kwargs)`` phrases the instruction; ``steps`` rewrite a
    response to obey (see the module docstring for the order); ``gap(text, kwargs)`` is set for
    length limits: ``(dimension, +k)`` when ``k`` more units are needed, ``(dimension, -k)`` when
    ``k`` too many, ``(dimension, 0)`` when satisfied. ``conflicts`` is symmetric (derived from one table).
    """

    id: str
    params: Mapping[str, Param]
    build: Callable[[random.Random], dict[str, Any]]
    text: Callable[[Mapping[str, Any]], str]
    steps: tuple[tuple[int, Step], ...] = ()
    gap: Callable[[str, Mapping[str, Any]], tuple[str, int]] | None = None
    conflicts: frozenset[str] = field(default_factory=frozenset)

    @property
    def group(self) -> str:
        return self.id.split(":", 1)[0]

    @property
    def enforceable(self) -> bool:
        return bool(self.steps) or self.gap is not None


CONSTRAINT_TYPES: Registry[ConstraintType] = Registry("constraint type")
_DEFINED: list[ConstraintType] = []


def _define(type_id: str, params: Mapping[str, Param], build, text, *, steps=(), gap=None) -> None:
    _DEFINED.append(ConstraintType(type_id, dict(params), build, text, tuple(steps), gap))


def _quote_list(items: Sequence[str]) -> str:
    quoted = [f"'{w}'" for w in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def _append(body: str, sentence: str) -> str:
    """Add a sentence after ``body``, on a new line if the body does not end a sentence."""
    body = body.rstrip()
    if not body:
        return sentence
    return body + (" " if body[-1] in ".!?…\"')]”’" else "\n") + sentence


def _without(text: str, avoid: Iterable[str]) -> str:
    for word in avoid:
        text = tx.word_pattern(word).sub("", text)
    return text


# --- keywords -----------------------------------------------------------------------------------------------------


def _include_step(text: str, kw: Mapping[str, Any], ctx: EnforceContext) -> str:
    missing = [w for w in kw["keywords"] if tx.count_occurrences(text, w) == 0]
    return _append(text, f"This also relates to {' and '.join(missing)}.") if missing else text


_define(
    "keywords:include",
    {"keywords": Param("words")},
    lambda rng: {"keywords": rng.sample(INCLUDE_POOL, rng.randint(1, 3))},
    lambda kw: f"Include the keyword{'s' if len(kw['keywords']) > 1 else ''} {_quote_list(kw['keywords'])} in your "
    "response.",
    steps=[(10, _include_step)],
)


def _forbidden_step(text: str, kw: Mapping[str, Any], ctx: EnforceContext) -> str:
    for word in kw["forbidden_words"]:
        text = re.sub(rf"[ \t]?{tx.word_pattern(word).pattern}", "", text, flags=re.IGNORECASE)
    return text


_define(
    "keywords:forbidden",
    {"forbidden_words": Param("words")},
    lambda rng: {"forbidden_words": rng.sample(FORBIDDEN_POOL, rng.randint(1, 3))},
    lambda kw: f"Do not include the word{'s' if len(kw['forbidden_words']) > 1 else ''} "
    f"{_quote_list(kw['forbidden_words'])} anywhere in your response.",
    steps=[(1, _forbidden_step)],
)


def _frequency_add(text: str, kw: Mapping[str, Any], ctx: EnforceContext) -> str:
    if kw["relation"] != AT_LEAST:
        return text
    missing = kw["frequency"] - tx.count_occurrences(text, kw["keyword"])
    return _append(text, f"Key word: {' '.join([kw['keyword']] * missing)}.") if missing > 0 else text


def _frequency_prune(text: str, kw: Mapping[str, Any], ctx: EnforceContext) -> str:
    if kw["relation"] != LESS_THAN:
        return text
    keep = kw["frequency"] - 1
    pattern = re.compile(rf"[ \t]?{tx.word_pattern(kw['keyword']).pattern}", re.IGNORECASE)
    seen = 0

    def drop(match: re.Match[str]) -> str:
        nonlocal seen
        seen += 1
        return match.group() if seen <= keep else ""

    return pattern.sub(drop, text)


def _build_frequency(rng: random.Random) -> dict[str, Any]:
    relation = rng.choice(RELATIONS)
    return {
        "keyword": rng.choice(FREQUENCY_POOL),
        "frequency": rng.randint(1, 4) if relation == AT_LEAST else rng.randint(2, 5),
        "relation": relation,
    }


_define(
    "keywords:frequency",
    {"keyword": Param("str"), "frequency": Param("int"), "relation": Param("relation")},
    _build_frequency,
    lambda kw: f"In your response, the word '{kw['keyword']}' should appear {kw['relation']} {_times(kw['frequency'])}.",
    steps=[(1, _frequency_prune), (11, _frequency_add), (41, _frequency_prune)],
)


def _letter_step(text: str, kw: Mapping[str, Any], ctx: EnforceContext) -> str:
    letter = kw["letter"].lower()
    if kw["relation"] != AT_LEAST:
        raise ConfigError(f"keywords:letter_frequency can only be enforced with relation '{AT_LEAST}'")
    need = kw["frequency"] - _without(text, ctx.avoid).lower().count(letter)
    if need <= 0:
        return text
    pool = LETTER_WORDS.get(letter) or (letter * 3,)
    chosen = [pool[0]]
    while (sentence := f"Words to note: {' '.join(chosen)}.").lower().count(letter) < need:
        chosen.append(pool[len(chosen) % len(pool)])
    return _append(text, sentence)


_define(
    "keywords:letter_frequency",
    {"letter": Param("letter"), "frequency": Param("int"), "relation": Param("relation")},
    lambda rng: {"letter": rng.choice(sorted(LETTER_WORDS)), "frequency": rng.randint(2, 8), "relation": AT_LEAST},
    lambda kw: f"In your response, the letter '{kw['letter']}' should appear {kw['relation']} {_times(kw['frequency'])}.",
    steps=[(12, _letter_step)],
)

# --- length -------------------------------------------------------------------------------------------------------


def _length_gap(dimension: str, count: Callable[[str], int], key: str):
    def gap(text: str, kw: Mapping[str, Any]) -> tuple[str, int]:
        n, limit = count(text), kw[key]
        if kw["relation"] == AT_LEAST:
            return dimension, max(0, limit - n)
        return dimension, -max(0, n - limit + 1)

    return gap


def _build_words(rng: random.Random) -> dict[str, Any]:
    relation = rng.choice(RELATIONS)
    choices = (20, 30, 50, 80, 100) if relation == AT_LEAST else (60, 80, 100, 150, 200, 300)
    return {"num_words": rng.choice(choices), "relation": relation}


def _build_sentences(rng: random.Random) -> dict[str, Any]:
    relation = rng.choice(RELATIONS)
    return {"num_sentences": rng.randint(2, 8) if relation == AT_LEAST else rng.randint(6, 15), "relation": relation}


_define(
    "length:words",
    {"num_words": Param("int"), "relation": Param("relation")},
    _build_words,
    lambda kw: f"Answer with {'at least' if kw['relation'] == AT_LEAST else 'fewer than'} {kw['num_words']} words.",
    gap=_length_gap("words", tx.count_words, "num_words"),
)
_define(
    "length:sentences",
    {"num_sentences": Param("int"), "relation": Param("relation")},
    _build_sentences,
    lambda kw: f"Your response should contain {'at least' if kw['relation'] == AT_LEAST else 'fewer than'} "
    f"{kw['num_sentences']} sentences.",
    gap=_length_gap("sentences", tx.count_sentences, "num_sentences"),
)

# --- layout (order 20: at most one of these in a set) ---------------------------------------------------------------

_LIST_MARKER = re.compile(r"^\s*(?:[*\-+•]|\d+[.)])\s+")
_STARS = re.compile(r"\*{3,}")


def _groups(text: str, n: int, *, drop: re.Pattern[str] | None = None) -> list[str]:
    """The sentences of ``text`` in ``n`` non-empty groups (fillers pad a short text), markup stripped."""
    sentences = []
    for s in tx.split_sentences(text):
        s = _STARS.sub("", _LIST_MARKER.sub("", s))
        if drop is not None:
            s = drop.sub("", s)
        s = " ".join(s.split())
        if tx.words(s):
            sentences.append(s)
    i = 0
    while len(sentences) < n:
        sentences.append(FILLERS[i % len(FILLERS)])
        i += 1
    size, extra = divmod(len(sentences), n)
    groups, start = [], 0
    for g in range(n):
        end = start + size + (1 if g < extra else 0)
        groups.append(" ".join(sentences[start:end]))
        start = end
    return groups


def _bullets_step(text: str, kw: Mapping[str, Any], ctx: EnforceContext) -> str:
    return "\n".join(f"* {g}" for g in _groups(text, kw["num_bullets"]))


def _paragraphs_step(text: str, kw: Mapping[str, Any], ctx: EnforceContext) -> str:
    return "\n\n***\n\n".join(_groups(text, kw["num_paragraphs"]))


def _nth_paragraph_step(text: str, kw: Mapping[str, Any], ctx: EnforceContext) -> str:
    groups = _groups(text, kw["num_paragraphs"])
    i, word = kw["nth_paragraph"] - 1, kw["first_word"]
    first = tx.words(groups[i])
    if not first or first[0].lower() != word.lower():
        groups[i] = f"{word.capitalize()} {groups[i]}"
    return "\n\n".join(groups)


def _sections_step(text: str, kw: Mapping[str, Any], ctx: EnforceContext) -> str:
    splitter = kw["section_splitter"]
    groups = _groups(text, kw["num_sections"], drop=re.compile(rf"\b{re.escape(splitter)}\s+\d+"))
    return "\n\n".join(f"{splitter} {i}\n{g}" for i, g in enumerate(groups, start=1))


def _build_nth(rng: random.Random) -> dict[str, Any]:
    n = rng.randint(2, 5)
    return {"num_paragraphs": n, "nth_paragraph": rng.randint(1, n), "first_word": rng.choice(FIRST_WORD_POOL)}


_define(
    "length:paragraphs",
    {"num_paragraphs": Param("int")},
    lambda rng: {"num_paragraphs": rng.randint(2, 5)},
    lambda kw: f"There should be exactly {kw['num_paragraphs']} paragraphs, separated from each other by the "
    "markdown divider ***.",
    steps=[(20, _paragraphs_step)],
)
_define(
    "length:nth_paragraph_first_word",
    {"num_paragraphs": Param("int"), "nth_paragraph": Param("int"), "first_word": Param("str")},
    _build_nth,
    lambda kw: f"Write exactly {kw['num_paragraphs']} paragraphs, separated by blank lines. Paragraph "
    f"{kw['nth_paragraph']} must start with the word '{kw['first_word']}'.",
    steps=[(20, _nth_paragraph_step)],
)
_define(
    "format:bullets",
    {"num_bullets": Param("int")},
    lambda rng: {"num_bullets": rng.randint(2, 6)},
    lambda kw: f"Your answer must contain exactly {kw['num_bullets']} bullet points in markdown, each on its own "
    "line starting with '* '.",
    steps=[(20, _bullets_step)],
)
_define(
    "format:sections",
    {"num_sections": Param("int"), "section_splitter": Param("str")},
    lambda rng: {"num_sections": rng.randint(2, 5), "section_splitter": rng.choice(SECTION_SPLITTERS)},
    lambda kw: f"Your response must have exactly {kw['num_sections']} sections. Mark the start of each section "
    f"with '{kw['section_splitter']} X' on its own line, where X is its number.",
    steps=[(20, _sections_step)],
)

# --- format (inline and wrapping) -----------------------------------------------------------------------------------

_ELIGIBLE_WORD = re.compile(r"(?<![\w*\[<])([^\W\d_][^\W\d_'’-]{2,})(?![\w*\]>])")


def _highlights_step(text: str, kw: Mapping[str, Any], ctx: EnforceContext) -> str:
    # Stray asterisks in the text could pair up with ours (or start a list item), so ours are the only ones.
    text = text.replace("*", "")
    need = kw["num_highlights"]

    def wrap(match: re.Match[str]) -> str:
        nonlocal need
        if need <= 0 or match.group(1).lower() in ctx.avoid:
            return match.group()
        need -= 1
        return f"*{match.group(1)}*"

    text = _ELIGIBLE_WORD.sub(wrap, text)
    if need > 0:
        words = [HIGHLIGHT_WORDS[i % len(HIGHLIGHT_WORDS)] for i in range(need)]
        text = _append(text, f"Keep in mind {' and '.join(f'*{w}*' for w in words)}.")
    return text


def _placeholders_step(text: str, kw: Mapping[str, Any], ctx: EnforceContext) -> str:
    need = kw["num_placeholders"] - tx.count_placeholders(_without(text, ctx.avoid))
    if need <= 0:
        return text
    names = [PLACEHOLDERS[i % len(PLACEHOLDERS)] for i in range(need)]
    return _append(text, f"Fill in {' and '.join(names)} as needed.")


def _json_step(text: str, kw: Mapping[str, Any], ctx: EnforceContext) -> str:
    # Whitespace collapsed and control characters dropped: the JSON then has no escapes that a change of case breaks.
    flat = " ".join(re.sub(r"[\x00-\x08\x0b\x0e-\x1f\x7f]", "", text).split())
    return json.dumps({JSON_KEY: flat}, ensure_ascii=False)


def _title_step(text: str, kw: Mapping[str, Any], ctx: EnforceContext) -> str:
    return f"<<{TITLES[ctx.variant % len(TITLES)]}>>\n{text.lstrip()}".rstrip()


def _postscript_step(text: str, kw: Mapping[str, Any], ctx: EnforceContext) -> str:
    note = POSTSCRIPT_NOTES[ctx.variant % len(POSTSCRIPT_NOTES)]
    body = text.rstrip()
    return f"{body}\n{kw['marker']} {note}" if body else f"{kw['marker']} {note}"


_define(
    "format:highlights",
    {"num_highlights": Param("int")},
    lambda rng: {"num_highlights": rng.randint(1, 4)},
    lambda kw: f"Highlight at least {kw['num_highlights']} parts of your answer with markdown, i.e. *highlighted part*.",
    steps=[(15, _highlights_step)],
)
_define(
    "format:placeholders",
    {"num_placeholders": Param("int")},
    lambda rng: {"num_placeholders": rng.randint(1, 4)},
    lambda kw: f"The response must contain at least {kw['num_placeholders']} placeholders in square brackets, "
    "such as [address].",
    steps=[(14, _placeholders_step)],
)
_define(
    "format:json",
    {},
    lambda rng: {},
    lambda kw: "Wrap your entire output in JSON format. You may use markdown code fences such as ```.",
    steps=[(50, _json_step)],
)
_define(
    "format:title",
    {},
    lambda rng: {},
    lambda kw: "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.",
    steps=[(31, _title_step)],
)
_define(
    "format:postscript",
    {"marker": Param("str")},
    lambda rng: {"marker": rng.choice(POSTSCRIPT_MARKERS)},
    lambda kw: f"At the end of your response, please explicitly add a postscript starting with {kw['marker']}",
    steps=[(32, _postscript_step)],
)

# --- case -----------------------------------------------------------------------------------------------------------


def _capital_add(text: str, kw: Mapping[str, Any], ctx: EnforceContext) -> str:
    if kw["relation"] != AT_LEAST:
        return text
    need = kw["frequency"] - tx.count_capital_words(_without(text, ctx.avoid))
    if need <= 0:
        return text
    tags = [CAPITAL_WORDS[i % len(CAPITAL_WORDS)] for i in range(need)]
    return _append(text, f"Tags: {' '.join(tags)}.")


def _capital_prune(text: str, kw: Mapping[str, Any], ctx: EnforceContext) -> str:
    if kw["relation"] != LESS_THAN:
        return text
    keep = kw["frequency"] - 1
    seen = 0

    def lower(match: re.Match[str]) -> str:
        nonlocal seen
        if not tx.is_capital_word(match.group()):
            return match.group()
        seen += 1
        return match.group() if seen <= keep else match.group().lower()

    return tx.WORD_PATTERN.sub(lower, text)


def _build_capital(rng: random.Random) -> dict[str, Any]:
    relation = rng.choice(RELATIONS)
    return {"frequency": rng.randint(1, 5) if relation == AT_LEAST else rng.randint(2, 6), "relation": relation}


_define(
    "case:lowercase",
    {},
    lambda rng: {},
    lambda kw: "Your entire response should be in English and in all lowercase letters. No capital letters are allowed.",
    steps=[(60, lambda text, kw, ctx: text.lower())],
)
_define(
    "case:uppercase",
    {},
    lambda rng: {},
    lambda kw: "Your entire response should be in English and in all capital letters.",
    steps=[(60, lambda text, kw, ctx: text.upper())],
)
_define(
    "case:capital_frequency",
    {"frequency": Param("int"), "relation": Param("relation")},
    _build_capital,
    lambda kw: f"In your response, words with all capital letters should appear {kw['relation']} "
    f"{_times(kw['frequency'])}.",
    steps=[(13, _capital_add), (42, _capital_prune)],
)

# --- start/end, punctuation -----------------------------------------------------------------------------------------


def _end_phrase_step(text: str, kw: Mapping[str, Any], ctx: EnforceContext) -> str:
    body = text.rstrip()
    return f"{body} {kw['end_phrase']}" if body else kw["end_phrase"]


_define(
    "startend:end_phrase",
    {"end_phrase": Param("str")},
    lambda rng: {"end_phrase": rng.choice(END_PHRASES)},
    lambda kw: f"Finish your response with this exact phrase: '{kw['end_phrase']}'. No other words should follow it.",
    steps=[(33, _end_phrase_step)],
)
_define(
    "startend:quotes",
    {},
    lambda rng: {},
    lambda kw: "Wrap your entire response with double quotation marks.",
    steps=[(35, lambda text, kw, ctx: f'"{text.strip()}"')],
)
_define(
    "punctuation:no_comma",
    {},
    lambda rng: {},
    lambda kw: "In your entire response, refrain from the use of any commas.",
    steps=[(70, lambda text, kw, ctx: text.replace(",", "").replace("，", ""))],
)

# --- combination ----------------------------------------------------------------------------------------------------


def _two_responses_step(text: str, kw: Mapping[str, Any], ctx: EnforceContext) -> str:
    body = _STARS.sub("", text).strip()
    first = body or FILLERS[0]
    return f"{first}\n{TWO_RESPONSES_SEPARATOR}\n{_append(SECOND_RESPONSE_LEAD, first)}"


def _repeat_step(text: str, kw: Mapping[str, Any], ctx: EnforceContext) -> str:
    request = kw.get("prompt_to_repeat") or ctx.request
    if not request.strip():
        raise ConfigError("combination:repeat_prompt cannot be enforced without a prompt to repeat")
    return f"{request.strip()}\n\n{text.lstrip()}".rstrip()


_define(
    "combination:two_responses",
    {},
    lambda rng: {},
    lambda kw: "Give two different responses. Responses and only responses should be separated by 6 asterisk "
    "symbols: ******.",
    steps=[(30, _two_responses_step)],
)
_define(
    "combination:repeat_prompt",
    {"prompt_to_repeat": Param("str", required=False)},
    lambda rng: {},
    lambda kw: "First repeat the request word for word without change, then give your answer. Do not say anything "
    "before repeating the request, and do not repeat this instruction.",
    steps=[(34, _repeat_step)],
)

# ---------------------------------------------------------------------------------------------------------------------
# Conflicts: one symmetric table. Each entry says these types cannot be in one set, and why.
# ---------------------------------------------------------------------------------------------------------------------
_LAYOUTS = ("format:bullets", "length:paragraphs", "length:nth_paragraph_first_word", "format:sections")
_CONFLICT_GROUPS: tuple[tuple[Sequence[str], Sequence[str]], ...] = (
    # the response is laid out one way only
    (_LAYOUTS, _LAYOUTS),
    # case: contradictory, or a marker/count that a change of case destroys
    (("case:lowercase",), ("case:uppercase", "case:capital_frequency", "format:sections")),
    (("case:uppercase",), ("case:capital_frequency",)),
    (("case:capital_frequency",), ("format:sections",)),
    # JSON is the whole output: nothing may stand outside it, and it flattens lines
    (("format:json",), _LAYOUTS + ("length:words", "length:sentences", "format:title", "format:postscript",
                                   "startend:end_phrase", "startend:quotes", "combination:two_responses",
                                   "combination:repeat_prompt")),
    # quotes must be the first and last characters
    (("startend:quotes",), ("startend:end_phrase", "format:bullets", "format:sections", "combination:repeat_prompt")),
    # a '*' at the start of a highlight looks like a bullet; two responses break counts of layout blocks
    (("format:bullets",), ("format:highlights",)),
    # the title line would be the first words of paragraph 1
    (("format:title",), ("length:nth_paragraph_first_word",)),
    (("combination:two_responses",), _LAYOUTS + ("combination:repeat_prompt",)),
    # the repeated request is the user's text: it may hold capitals, commas, any word, any length
    (("combination:repeat_prompt",), _LAYOUTS + ("case:lowercase", "case:uppercase", "case:capital_frequency",
                                                 "punctuation:no_comma", "keywords:forbidden", "keywords:frequency",
                                                 "length:words", "length:sentences")),
)


def _register_all() -> None:
    ids = {t.id for t in _DEFINED}
    conflicts: dict[str, set[str]] = {i: set() for i in ids}
    for left, right in _CONFLICT_GROUPS:
        for a in left:
            for b in right:
                if a not in ids or b not in ids:
                    raise ValueError(f"conflict table names an unknown type: {a if a not in ids else b}")
                if a != b:
                    conflicts[a].add(b)
                    conflicts[b].add(a)
    for t in _DEFINED:
        CONSTRAINT_TYPES.register(t.id)(replace(t, conflicts=frozenset(conflicts[t.id])))


_register_all()

# ---------------------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------------------


def validate_constraint(
    constraint: Any, *, index: int | None = None, path: str | None = None, line: int | None = None
) -> dict[str, Any]:
    """A checked copy ``{"type", "kwargs"}`` of ``constraint``; :class:`InputError` names the bad field.

    ``index`` (position in the list), ``path`` and ``line`` locate the constraint in a file.
    """
    prefix = f"constraints[{index}]" if index is not None else "constraint"

    def fail(message: str, where: str) -> InputError:
        return InputError(message, path=path, line=line, field=where)

    if not isinstance(constraint, Mapping):
        raise fail(f'must be an object {{"type": ..., "kwargs": {{...}}}}, got {type(constraint).__name__}', prefix)
    type_id = constraint.get("type")
    if not isinstance(type_id, str) or not type_id:
        raise fail("missing or not a string", f"{prefix}.type")
    if type_id not in CONSTRAINT_TYPES:
        known = ", ".join(sorted(CONSTRAINT_TYPES))
        raise fail(f"unknown constraint type '{type_id}'; registered: {known}", f"{prefix}.type")
    extra = set(constraint) - {"type", "kwargs"}
    if extra:
        raise fail(f"unexpected keys {sorted(extra)}; a constraint has only 'type' and 'kwargs'", prefix)
    kwargs = constraint.get("kwargs", {})
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping):
        raise fail(f"must be an object, got {type(kwargs).__name__}", f"{prefix}.kwargs")
    spec = CONSTRAINT_TYPES.get(type_id).params
    unknown = set(kwargs) - set(spec)
    if unknown:
        raise fail(f"unknown arguments {sorted(unknown)} for {type_id}; expected {sorted(spec) or 'none'}",
                   f"{prefix}.kwargs")
    clean: dict[str, Any] = {}
    for name, param in spec.items():
        where = f"{prefix}.kwargs.{name}"
        if name not in kwargs or kwargs[name] is None:
            if param.required:
                raise fail(f"required by {type_id}", where)
            continue
        clean[name] = _check_param(kwargs[name], param, lambda message: fail(message, where))
    return {"type": type_id, "kwargs": clean}


def _check_param(value: Any, param: Param, fail: Callable[[str], InputError]) -> Any:
    if param.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(f"must be an integer, got {value!r}")
        if value < param.minimum:
            raise fail(f"must be >= {param.minimum}, got {value}")
        return value
    if param.kind == "relation":
        if value not in RELATIONS:
            raise fail(f"must be one of {list(RELATIONS)}, got {value!r}")
        return value
    if param.kind == "letter":
        if not isinstance(value, str) or len(value) != 1 or not value.isalpha():
            raise fail(f"must be a single letter, got {value!r}")
        return value.lower()
    if param.kind == "words":
        if isinstance(value, str):
            value = [value]
        if (not isinstance(value, (list, tuple)) or not value
                or not all(isinstance(w, str) and w.strip() for w in value)):
            raise fail(f"must be a non-empty list of non-empty strings, got {value!r}")
        return [w.strip() for w in value]
    if not isinstance(value, str) or not value.strip():
        raise fail(f"must be a non-empty string, got {value!r}")
    return value


def validate_constraints(
    constraints: Any, *, path: str | None = None, line: int | None = None, field: str = "constraints"
) -> list[dict[str, Any]]:
    """:func:`validate_constraint` on each item of a list (``None`` is an empty list)."""
    if constraints is None:
        return []
    if not isinstance(constraints, (list, tuple)):
        raise InputError(f"must be a list of constraints, got {type(constraints).__name__}", path=path, line=line,
                         field=field)
    return [validate_constraint(c, index=i, path=path, line=line) for i, c in enumerate(constraints)]


def check_compatible(constraints: Sequence[Mapping[str, Any]]) -> None:
    """Raise :class:`ConfigError` if two constraints have the same type or conflicting types."""
    seen: list[str] = []
    for c in constraints:
        t = CONSTRAINT_TYPES.get(c["type"])
        for other in seen:
            if other == t.id:
                raise ConfigError(f"constraint type '{t.id}' appears twice")
            if other in t.conflicts:
                raise ConfigError(f"constraint types '{other}' and '{t.id}' conflict")
        seen.append(t.id)


# ---------------------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------------------


def describe(constraint: Mapping[str, Any]) -> str:
    """The instruction text for ``constraint``, to append to a prompt."""
    c = validate_constraint(constraint)
    return CONSTRAINT_TYPES.get(c["type"]).text(c["kwargs"])


def request_text(prompt: str, constraints: Sequence[Mapping[str, Any]]) -> str:
    """What "repeat the request" means: ``prompt`` without the instruction texts of ``constraints``.

    A record's prompt may or may not carry the appended instructions; either way the request is the rest,
    whitespace-trimmed.
    """
    for c in constraints:
        try:
            prompt = prompt.replace(describe(c), "")
        except InputError:
            continue
    return prompt.strip()


def sample_constraints(rng: random.Random, k: int, *, enforceable_only: bool = True) -> list[dict[str, Any]]:
    """``k`` mutually compatible constraints of distinct types, deterministic for the state of ``rng``.

    With ``enforceable_only`` (the default), every type has an ``enforce`` and the set is checked to be
    satisfiable together by :func:`enforce` (its fixed additions fit its length limits).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ConfigError(f"`k` must be an integer >= 0, got {k!r}")
    pool = sorted(t for t in CONSTRAINT_TYPES if CONSTRAINT_TYPES.get(t).enforceable or not enforceable_only)
    for _ in range(200):
        chosen: list[ConstraintType] = []
        for _ in range(k):
            allowed = [t for t in pool if all(t != c.id and t not in c.conflicts for c in chosen)]
            if not allowed:
                break
            chosen.append(CONSTRAINT_TYPES.get(rng.choice(allowed)))
        if len(chosen) < k:
            continue
        constraints = [{"type": t.id, "kwargs": t.build(rng)} for t in chosen]
        if not enforceable_only or _satisfiable(constraints):
            return constraints
    raise ConfigError(f"could not sample {k} compatible constraints; {len(pool)} types are available")


def _satisfiable(constraints: list[dict[str, Any]]) -> bool:
    try:
        enforce("", constraints, prompt="Repeat this request.")
    except ConfigError:
        return False
    return True


def enforce(response: str, constraints: Sequence[Mapping[str, Any]], *, prompt: str) -> str:
    """Rewrite ``response`` so that it follows every one of ``constraints`` (see the module docstring).

    ``prompt`` is the user turn (with or without the instruction texts); only ``combination:repeat_prompt``
    uses it. Raises :class:`ConfigError` for conflicting constraints or length limits that the fixed
    additions of the set already break.
    """
    cs = validate_constraints(list(constraints))
    check_compatible(cs)
    types = [CONSTRAINT_TYPES.get(c["type"]) for c in cs]
    avoid = set()
    for c in cs:
        if c["type"] == "keywords:forbidden":
            avoid.update(w.lower() for w in c["kwargs"]["forbidden_words"])
        elif c["type"] == "keywords:frequency" and c["kwargs"]["relation"] == LESS_THAN:
            avoid.add(c["kwargs"]["keyword"].lower())
    body = response.strip()
    ctx = EnforceContext(
        request=request_text(prompt, cs), avoid=frozenset(avoid), variant=zlib.crc32(body.encode("utf-8"))
    )
    steps = sorted(
        ((order, i, step, c["kwargs"]) for i, (t, c) in enumerate(zip(types, cs)) for order, step in t.steps),
        key=lambda item: (item[0], item[1]),
    )
    limits = [(t.gap, c["kwargs"]) for t, c in zip(types, cs) if t.gap is not None]
    fill = 0
    for _ in range(10_000):
        text = body
        for i in range(fill):
            text = _append(text, FILLERS[i % len(FILLERS)])
        for _order, _i, step, kwargs in steps:
            text = step(text, kwargs, ctx)
        if not tx.words(text) and not fill:  # an empty response obeys nothing (the judge fails it): say something
            fill = 1
            continue
        gaps = [gap(text, kwargs) for gap, kwargs in limits]
        short = max((g for _, g in gaps if g > 0), default=0)
        if short:
            fill += max(1, short // 5)
            continue
        excess = [(dim, -g) for dim, g in gaps if g < 0]
        if not excess:
            return text
        if not body:
            raise ConfigError(
                "the constraints' own additions already break a length limit: "
                + ", ".join(f"{c['type']} {json.dumps(c['kwargs'], sort_keys=True)}" for c in cs)
            )
        dim, amount = excess[0]
        body = _trim(body, dim, amount)
    raise ConfigError("enforce did not converge")  # pragma: no cover - each round adds filler or trims the body


def _trim(body: str, dimension: str, amount: int) -> str:
    """``body`` with its last ``amount`` words or sentences removed, ending on punctuation."""
    if dimension == "sentences":
        spans = tx.sentence_spans(body)
        cut = spans[-amount][0] if amount < len(spans) else 0
    else:
        matches = list(tx.WORD_PATTERN.finditer(body))
        cut = matches[-amount].start() if amount < len(matches) else 0
    body = body[:cut].rstrip(" \t\n,;:-–—(")
    if body and body[-1] not in ".!?…":
        body += "."
    return body if tx.words(body) else ""
