"""Find personal data in any chat-schema record with a small, documented set of regular expressions.

The synthetic generator marks the spans it writes (``Record.pii``); user data rarely does, so the
PII-extraction attack falls back to :func:`detect_pii`. The patterns aim at what can be checked
verbatim and is worth protecting, not at every name (names need a tagger, and a missed name only
makes the attack weaker, never wrong):

==============  ==========================================================  =========================
type            matches                                                     e.g.
==============  ==========================================================  =========================
``email``       local@domain.tld                                            ``ana.li7@example.org``
``phone``       NANP (``(201) 555-0143``, ``201-555-0143``, ``201.555.0143``,
                optional ``+1``) and international ``+CC`` then 7–12 digits ``+44 20 7946 0958``
                in groups
``iban``        2 letters, 2 check digits, 11–30 alphanumerics (groups of   ``DE89 3704 0044 0532 0130 00``
                4 may be spaced)
``ssn``         US social security number ddd-dd-dddd                       ``123-45-6789``
``account``     a run of 8–17 digits (card, account, policy numbers)       ``0123456789``
``date``        ``03/04/1987``, ``1987-03-04``, ``March 4, 1987``,          (a date of birth is a
                ``4 March 1987``                                            date the detector cannot
                                                                            tell apart)
==============  ==========================================================  =========================

Where two matches overlap, the one that starts first (then the longer) is kept, so a phone
number's digits are never also an account number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from dpaudit.data.records import Message, PiiSpan, Record

_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December"
    r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?"
)
PATTERNS: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
    "iban": re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
    "phone": re.compile(
        r"(?<![\w+])(?:(?:\+1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}|\+\d{1,3}(?:[ .-]?\d{2,4}){2,4})(?![\w-])"
    ),
    "ssn": re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])"),
    "account": re.compile(r"(?<![\w-])\d{8,17}(?![\w-])"),
    "date": re.compile(
        rf"\b(?:\d{{1,2}}/\d{{1,2}}/\d{{4}}|\d{{4}}-\d{{2}}-\d{{2}}|{_MONTH} \d{{1,2}}, \d{{4}}|\d{{1,2}} {_MONTH} \d{{4}})\b"
    ),
}
"""The detector's patterns, in priority order for matches that start at the same place."""


def non_overlapping(spans: Iterable[PiiSpan]) -> tuple[PiiSpan, ...]:
    """``spans`` ordered by (message, start), dropping any span that overlaps one kept before it
    (the earlier start wins, then the longer span)."""
    kept: list[PiiSpan] = []
    for span in sorted(spans, key=lambda s: (s.message, s.start, -(s.end - s.start))):
        if not kept or kept[-1].message != span.message or span.start >= kept[-1].end:
            kept.append(span)
    return tuple(kept)


def detect_pii(messages: Sequence[Message]) -> tuple[PiiSpan, ...]:
    """Every match of :data:`PATTERNS` in ``messages``, as non-overlapping :class:`PiiSpan` s."""
    found = [
        PiiSpan(index, match.start(), match.end(), kind, match.group())
        for index, message in enumerate(messages)
        for kind, pattern in PATTERNS.items()
        for match in pattern.finditer(message.content)
    ]
    return non_overlapping(found)


def spans_of(record: Record) -> tuple[PiiSpan, ...]:
    """The record's own ``pii`` spans when it has any, else the detected ones."""
    return record.pii or detect_pii(record.messages)
