"""One deterministic checker per verifiable-instruction type, registered under the type id.

A checker is ``check(response, kwargs, ctx) -> bool`` on validated kwargs (see
:func:`dpaudit.data.constraints.validate_constraint`). Words, sentences, paragraphs and markup are
counted with :mod:`dpaudit.data.text`, the same definitions the taxonomy uses when it rewrites a
response to obey, so "enforce, then check" agrees by construction.

Checkers see the text as given; the judge (:mod:`dpaudit.evaluators.adherence.judge`) decides what
to show them (loose variants) and fails every instruction on an empty response, so that an
empty output cannot "follow" *no commas* or *all lowercase*.

Choices where IFEval-style checks are ambiguous (documented so that numbers can be compared):

- keyword matches are whole-word and case-insensitive; letter counts are case-insensitive;
- ``format:json`` accepts an object or an array, optionally inside a ``` / ```json code fence;
- ``format:sections`` counts marker lines (``SECTION 2``, optionally after ``#`` heading marks), case-sensitively,
  and wants exactly N; ``format:bullets`` wants exactly N lines starting with ``*``, ``-``, ``+`` or ``•`` and a space;
- ``format:postscript`` wants the marker at the start of a line (``P.S.``, ``p. s.``, any case; markup or a quote may
  precede it);
- ``startend:end_phrase`` is case-insensitive and ignores trailing whitespace;
- ``combination:repeat_prompt`` compares with whitespace runs collapsed, case-sensitively.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dpaudit.data import text as tx
from dpaudit.data.constraints import AT_LEAST, TWO_RESPONSES_SEPARATOR
from dpaudit.registry import Registry


@dataclass(frozen=True)
class CheckContext:
    """What some checkers need besides the response: ``request`` is the prompt without its instruction texts."""

    prompt: str
    request: str


Checker = Callable[[str, Mapping[str, Any], CheckContext], bool]
CHECKERS: Registry[Checker] = Registry("checker")


def _compare(count: int, relation: str, limit: int) -> bool:
    return count >= limit if relation == AT_LEAST else count < limit


# --- keywords -------------------------------------------------------------------------------------------------------


@CHECKERS.register("keywords:include")
def check_include(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    return all(tx.count_occurrences(response, w) > 0 for w in kwargs["keywords"])


@CHECKERS.register("keywords:forbidden")
def check_forbidden(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    return all(tx.count_occurrences(response, w) == 0 for w in kwargs["forbidden_words"])


@CHECKERS.register("keywords:frequency")
def check_frequency(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    return _compare(tx.count_occurrences(response, kwargs["keyword"]), kwargs["relation"], kwargs["frequency"])


@CHECKERS.register("keywords:letter_frequency")
def check_letter_frequency(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    return _compare(response.lower().count(kwargs["letter"].lower()), kwargs["relation"], kwargs["frequency"])


# --- length ---------------------------------------------------------------------------------------------------------


@CHECKERS.register("length:words")
def check_words(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    return _compare(tx.count_words(response), kwargs["relation"], kwargs["num_words"])


@CHECKERS.register("length:sentences")
def check_sentences(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    return _compare(tx.count_sentences(response), kwargs["relation"], kwargs["num_sentences"])


_DIVIDER = re.compile(r"\s*\*{3,}\s*")


@CHECKERS.register("length:paragraphs")
def check_paragraphs(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    """Exactly N non-empty chunks between ``***`` dividers (an empty chunk, e.g. a leading divider, fails)."""
    chunks = _DIVIDER.split(response.strip())
    return len(chunks) == kwargs["num_paragraphs"] and all(c.strip() for c in chunks)


@CHECKERS.register("length:nth_paragraph_first_word")
def check_nth_paragraph_first_word(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    paragraphs = tx.split_paragraphs(response)
    n = kwargs["nth_paragraph"]
    if len(paragraphs) != kwargs["num_paragraphs"] or not 1 <= n <= len(paragraphs):
        return False
    first = tx.words(paragraphs[n - 1])
    return bool(first) and first[0].lower() == kwargs["first_word"].strip().lower()


# --- format ---------------------------------------------------------------------------------------------------------


@CHECKERS.register("format:bullets")
def check_bullets(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    return tx.count_bullets(response) == kwargs["num_bullets"]


_FENCE = re.compile(r"^```[\w-]*[ \t]*\n?(.*?)\n?[ \t]*```$", re.DOTALL)


@CHECKERS.register("format:json")
def check_json(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    text = response.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return isinstance(value, (dict, list))


_TITLE = re.compile(r"<<[^\n<>]*[^\s<>][^\n<>]*>>")


@CHECKERS.register("format:title")
def check_title(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    return _TITLE.search(response) is not None


@CHECKERS.register("format:highlights")
def check_highlights(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    return tx.count_highlights(response) >= kwargs["num_highlights"]


@CHECKERS.register("format:sections")
def check_sections(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    marker = re.compile(rf"^[ \t]*(?:#+[ \t]*)?{re.escape(kwargs['section_splitter'].strip())}[ \t]+\d+\b", re.MULTILINE)
    return len(marker.findall(response)) == kwargs["num_sections"]


@CHECKERS.register("format:placeholders")
def check_placeholders(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    return tx.count_placeholders(response) >= kwargs["num_placeholders"]


def postscript_pattern(marker: str) -> re.Pattern[str]:
    """``P.S.`` at a line start (after markup or quotes at most: ``**P.S.**``, ``"P.S.``), any case, ``p. s.`` too."""
    parts = [re.escape(p.strip()) for p in marker.split(".") if p.strip()]
    body = r"\.\s?".join(parts) + (r"\." if marker.strip().endswith(".") else "")
    return re.compile(rf"^[^\w\n]*{body}", re.MULTILINE | re.IGNORECASE)


@CHECKERS.register("format:postscript")
def check_postscript(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    return postscript_pattern(kwargs["marker"]).search(response) is not None


# --- case -----------------------------------------------------------------------------------------------------------


@CHECKERS.register("case:lowercase")
def check_lowercase(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    return response == response.lower()


@CHECKERS.register("case:uppercase")
def check_uppercase(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    return response == response.upper()


@CHECKERS.register("case:capital_frequency")
def check_capital_frequency(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    return _compare(tx.count_capital_words(response), kwargs["relation"], kwargs["frequency"])


# --- start/end, punctuation -----------------------------------------------------------------------------------------


@CHECKERS.register("startend:end_phrase")
def check_end_phrase(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    return response.strip().lower().endswith(kwargs["end_phrase"].strip().lower())


_QUOTE_PAIRS = (('"', '"'), ("“", "”"))


@CHECKERS.register("startend:quotes")
def check_quotes(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    text = response.strip()
    return len(text) >= 2 and any(text.startswith(a) and text.endswith(b) for a, b in _QUOTE_PAIRS)


@CHECKERS.register("punctuation:no_comma")
def check_no_comma(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    return "," not in response and "，" not in response


# --- combination ----------------------------------------------------------------------------------------------------


@CHECKERS.register("combination:two_responses")
def check_two_responses(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    parts = [p.strip() for p in response.split(TWO_RESPONSES_SEPARATOR)]
    return len(parts) == 2 and all(parts) and parts[0] != parts[1]


@CHECKERS.register("combination:repeat_prompt")
def check_repeat_prompt(response: str, kwargs: Mapping[str, Any], ctx: CheckContext) -> bool:
    request = " ".join((kwargs.get("prompt_to_repeat") or ctx.request).split())
    text = " ".join(response.split())
    if not request or not text.startswith(request):
        return False
    rest = text[len(request):]
    return not rest or not (request[-1].isalnum() and rest[0].isalnum())  # "Hi" is not repeated by "History"
