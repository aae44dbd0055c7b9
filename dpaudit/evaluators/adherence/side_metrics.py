"""Side metrics that reveal degenerate outputs (DP-trained models collapse in telling ways).

- ``empty_rate``: fraction of responses that are empty or whitespace only;
- ``distinct_2``: distinct word bigrams ÷ all word bigrams, pooled over responses (low = repetitive);
- ``length_ratio``: mean of (response words ÷ reference words) over pairs with a non-empty reference;
- ``rouge_l_f1``: mean ROUGE-L F1 (longest common subsequence of lowercased words) against the reference.

Words are :func:`dpaudit.data.text.words`, lowercased. Metrics with nothing to average are NaN
(``null`` in JSON): no references, or no bigram at all.

>>> round(rouge_l_f1("the cat sat on the mat", "the cat lay on the mat"), 4)  # LCS 5 of 6 and 6
0.8333
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dpaudit.data.text import words


@dataclass(frozen=True)
class SideMetrics:
    n: int
    empty_rate: float
    distinct_2: float
    length_ratio: float
    rouge_l_f1: float
    n_with_reference: int

    def to_json(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in self.__dict__.items()
        }


def _tokens(text: str) -> list[str]:
    return [w.lower() for w in words(text)]


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (O(len(a)·len(b)) time, O(len(b)) memory)."""
    if len(a) < len(b):
        a, b = b, a
    row = [0] * (len(b) + 1)
    for x in a:
        prev_diag = 0
        for j, y in enumerate(b, start=1):
            keep = row[j]
            row[j] = prev_diag + 1 if x == y else max(row[j], row[j - 1])
            prev_diag = keep
    return row[-1]


def rouge_l_f1(candidate: str, reference: str) -> float:
    """ROUGE-L F1 between two texts (0 when either has no words)."""
    c, r = _tokens(candidate), _tokens(reference)
    if not c or not r:
        return 0.0
    lcs = lcs_length(c, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(c), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def side_metrics(*, responses: Sequence[str], references: Sequence[str | None] | None = None) -> SideMetrics:
    """Side metrics of ``responses`` (shape (n,)); ``references`` (same length, entries may be None) is optional."""
    if references is not None and len(references) != len(responses):
        raise ValueError(f"references must match responses in length, got {len(references)} and {len(responses)}")
    n = len(responses)
    empty = sum(1 for r in responses if not r.strip())
    bigrams: list[tuple[str, str]] = []
    for r in responses:
        toks = _tokens(r)
        bigrams.extend(zip(toks, toks[1:]))
    ratios, rouges = [], []
    for response, reference in zip(responses, references or [None] * n):
        if reference is None or not words(reference):
            continue
        ratios.append(len(words(response)) / len(words(reference)))
        rouges.append(rouge_l_f1(response, reference))
    return SideMetrics(
        n=n,
        empty_rate=empty / n if n else math.nan,
        distinct_2=len(set(bigrams)) / len(bigrams) if bigrams else math.nan,
        length_ratio=sum(ratios) / len(ratios) if ratios else math.nan,
        rouge_l_f1=sum(rouges) / len(rouges) if rouges else math.nan,
        n_with_reference=len(ratios),
    )
