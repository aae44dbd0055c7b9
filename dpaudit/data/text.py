"""Offline splitting of text into words, sentences and paragraphs (no runtime data downloads).

Both sides of a verifiable instruction count with these functions: the constraint taxonomy
(:mod:`dpaudit.data.constraints`) when it rewrites a response to obey, and the adherence checkers
(:mod:`dpaudit.evaluators.adherence`) when they judge one. One definition of "a word" and "a
sentence" serves both, so that a rewritten response passes its own checker by construction.

Definitions (chosen to be predictable rather than linguistically perfect):

- A **word** is a run of letters or digits, possibly joined by an apostrophe or a hyphen
  (``don't``, ``well-known``, ``3.5`` counts as ``3`` and ``5``). Markup (``*``, ``#``, ``<<``) is not a word.
- **Sentences** are found line by line: every non-blank line is split after ``.``, ``!``, ``?`` or
  ``…`` (plus closing quotes or brackets) followed by whitespace, except after a known
  abbreviation (``e.g.``, ``Dr.``, ``U.S.``) or a single-letter initial (``J. Smith``). Decimals
  (``3.14``) never split because no whitespace follows the point. A piece counts only if it holds a
  letter or a digit, so a line of ``***`` is not a sentence. Splitting never looks at letter case, so
  lowercasing a text does not change its sentence count.
- **Paragraphs** are blocks separated by one or more blank lines.

>>> split_sentences("Dr. Smith paid $3.50 for it. Was it worth it? Yes!")
['Dr. Smith paid $3.50 for it.', 'Was it worth it?', 'Yes!']
>>> count_words("A well-known fact: it's 3.5 km.")
7
"""

from __future__ import annotations

import re

WORD_PATTERN = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")
# A sentence ends at terminal punctuation, optionally followed by closing quotes/brackets, then whitespace.
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)")
_ALNUM = re.compile(r"[^\W_]")
_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*\n\s*")

ABBREVIATIONS = frozenset(
    {
        "mr.", "mrs.", "ms.", "dr.", "prof.", "sr.", "jr.", "st.", "vs.", "etc.", "e.g.", "i.e.", "cf.",
        "no.", "fig.", "approx.", "inc.", "ltd.", "co.", "corp.", "dept.", "est.", "u.s.", "u.k.", "u.n.",
        "a.m.", "p.m.", "p.s.", "p.p.s.", "jan.", "feb.", "mar.", "apr.", "jun.", "jul.", "aug.", "sep.",
        "sept.", "oct.", "nov.", "dec.", "mt.", "ave.", "gen.", "col.", "lt.", "sgt.", "capt.", "rev.",
        "vol.", "ed.", "al.", "pp.", "ph.d.",
    }
)


def words(text: str) -> list[str]:
    """The words of ``text`` in order (see the module docstring for what counts)."""
    return WORD_PATTERN.findall(text)


def count_words(text: str) -> int:
    return len(words(text))


def _is_abbreviation(line: str, end: int) -> bool:
    """Whether the period ending at ``line[end - 1]`` closes an abbreviation or an initial."""
    start = end - 1
    while start > 0 and not line[start - 1].isspace():
        start -= 1
    token = line[start:end].lstrip("\"'“‘([{").lower()
    if token in ABBREVIATIONS:
        return True
    core = token[:-1]
    return len(core) == 1 and core.isalpha()


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` offsets of each sentence in ``text`` (stripped), in order."""
    spans: list[tuple[int, int]] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        start = 0
        for match in _BOUNDARY.finditer(line):
            punct_end = match.start() + len(match.group().rstrip("\"'”’)]"))
            if line[match.start():punct_end] == "." and _is_abbreviation(line, punct_end):
                continue
            spans.append((offset + start, offset + match.end()))
            start = match.end()
        spans.append((offset + start, offset + len(line)))
        offset += len(line)
    out = []
    for start, end in spans:
        piece = text[start:end]
        if _ALNUM.search(piece):
            out.append((start + len(piece) - len(piece.lstrip()), end - (len(piece) - len(piece.rstrip()))))
    return out


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, stripped, in order; pieces without a letter or digit are dropped."""
    return [text[start:end] for start, end in sentence_spans(text)]


def count_sentences(text: str) -> int:
    return len(split_sentences(text))


def split_paragraphs(text: str) -> list[str]:
    """Blocks separated by blank lines, stripped; blank blocks dropped."""
    return [p.strip() for p in _BLANK_LINES.split(text) if p.strip()]


def count_occurrences(text: str, word: str) -> int:
    """Whole-word, case-insensitive occurrences of ``word`` (which may be a phrase) in ``text``."""
    return len(word_pattern(word).findall(text))


def word_pattern(word: str) -> re.Pattern[str]:
    """A case-insensitive pattern for ``word`` as a whole word (not inside a longer word)."""
    return re.compile(rf"(?<![^\W_]){re.escape(word)}(?![^\W_])", re.IGNORECASE)


def is_capital_word(word: str) -> bool:
    """A word of two or more letters, all of them capitals (``NASA``; not ``I``, not ``P.S``)."""
    letters = [c for c in word if c.isalpha()]
    return len(letters) >= 2 and all(c.isupper() for c in letters)


def count_capital_words(text: str) -> int:
    return sum(is_capital_word(w) for w in words(text))


# Markdown-ish markup that instructions ask for. One definition each, shared by the rewriter and the checkers.
# *like this* (also inside **bold**); as in markdown, no space just inside the stars, so "a * b * c" is none
HIGHLIGHT_PATTERN = re.compile(r"\*[^\s*](?:[^\n*]*[^\s*])?\*")
PLACEHOLDER_PATTERN = re.compile(r"\[[^\[\]\n]*[^\s\[\]][^\[\]\n]*\]")  # [like this]
BULLET_PATTERN = re.compile(r"^[ \t]*[*\-+•][ \t]+\S", re.MULTILINE)  # "* item", "- item"; not "*word*", not "---"


def count_highlights(text: str) -> int:
    return len(HIGHLIGHT_PATTERN.findall(text))


def count_placeholders(text: str) -> int:
    return len(PLACEHOLDER_PATTERN.findall(text))


def count_bullets(text: str) -> int:
    return len(BULLET_PATTERN.findall(text))
