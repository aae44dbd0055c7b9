"""What is in a data file: size, category mix, duplicates, constraints, token lengths.

Token lengths are those of the full chat-template encoding that training and scoring use
(:func:`dpaudit.data.tokenize.encode_record`, untruncated), so they tell you what
``--max-length`` cuts off. Percentiles use linear interpolation (``numpy.percentile``).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dpaudit.data.loaders import load_records
from dpaudit.data.records import Record
from dpaudit.data.synth_templates import CATEGORIES
from dpaudit.data.tokenize import encode_record

NO_CATEGORY = "(none)"
PERCENTILES = (50, 90, 99)


def dataset_stats(records: Sequence[Record], *, tokenizer=None) -> dict[str, Any]:
    """Counts for ``records``; with a ``tokenizer``, also token-length percentiles.

    ``duplicates`` counts records whose text (all turns) equals an earlier record's, so a
    file with one record repeated three times has 2; ``duplicate_ids`` does the same for ids.
    """
    categories = Counter(r.category or NO_CATEGORY for r in records)
    ordered = [c for c in CATEGORIES if c in categories] + sorted(c for c in categories if c not in CATEGORIES)
    by_type = Counter(c["type"] for r in records for c in r.constraints)
    stats: dict[str, Any] = {
        "records": len(records),
        "categories": {c: categories[c] for c in ordered},
        "duplicates": sum(len(ids) - 1 for ids in duplicate_groups(records)),
        "duplicate_ids": len(records) - len({r.id for r in records}),
        "multi_turn": sum(sum(m.role == "assistant" for m in r.messages) > 1 for r in records),
        "with_system_prompt": sum(any(m.role == "system" for m in r.messages) for r in records),
        "constraints": {
            "records_with": sum(bool(r.constraints) for r in records),
            "total": sum(by_type.values()),
            "by_type": dict(sorted(by_type.items())),
        },
    }
    if tokenizer is not None:
        stats["token_lengths"] = token_length_stats(records, tokenizer)
    return stats


def duplicate_groups(records: Sequence[Record]) -> list[list[str]]:
    """Ids of the records that share a text (all turns), one list per repeated text, in file order.

    Only texts that occur more than once are listed. A record repeated k times is protected by
    DP only at group level (k records), which is why training reports these groups.
    """
    by_text: dict[str, list[str]] = {}
    for r in records:
        by_text.setdefault(r.text, []).append(r.id)
    return [ids for ids in by_text.values() if len(ids) > 1]


def token_length_stats(records: Sequence[Record], tokenizer) -> dict[str, float | int]:
    """p50/p90/p99/max/mean of the encoded length of each record (in tokens)."""
    lengths = np.array([len(encode_record(r, tokenizer, max_length=sys.maxsize).input_ids) for r in records])
    if lengths.size == 0:
        return {}
    out: dict[str, float | int] = {f"p{q}": float(np.percentile(lengths, q)) for q in PERCENTILES}
    out["max"] = int(lengths.max())
    out["mean"] = float(lengths.mean())
    return out


def file_stats(
    path: str | Path, *, format: str | None = None, base: str | None = None, seed: int = 0
) -> dict[str, Any]:
    """:func:`dataset_stats` of a file; ``base`` names a base model whose tokenizer measures lengths."""
    records = load_records(path, format=format)
    tokenizer = None
    if base is not None:
        from dpaudit.models.base import load_base  # noqa: PLC0415  (torch-heavy; only when asked)

        tokenizer = load_base(base, seed=seed).tokenizer
    stats = dataset_stats(records, tokenizer=tokenizer)
    stats["file"] = str(path)
    if base is not None:
        stats["base"] = base
    return stats
