"""`dataset_stats`: counts checked by hand, token lengths against encode_record."""

from __future__ import annotations

import numpy as np

from dpaudit.data.records import Message, Record
from dpaudit.data.stats import dataset_stats
from dpaudit.data.tokenize import encode_record
from tests.conftest import make_records


def test_counts_by_hand():
    a, b, c = make_records(3)
    lower = {"type": "case:lowercase", "kwargs": {}}
    words = {"type": "length:words", "kwargs": {"n": 5}}
    records = [
        a,
        Record("copy-of-a", a.messages, "Open QA"),  # same text
        Record(b.id, b.messages, None, (lower, words)),
        Record(b.id, c.messages, "Chat", (lower,)),  # same id, other text
        Record("s", (Message("system", "x"), Message("user", "q"), Message("assistant", "a"), Message("user", "q2"), Message("assistant", "a2")), "Chat"),
    ]
    stats = dataset_stats(records)
    assert stats["records"] == 5
    assert stats["categories"] == {"Open QA": 2, "Chat": 2, "(none)": 1}
    assert list(stats["categories"]) == ["Open QA", "Chat", "(none)"]  # No Robots order, then the rest
    assert stats["duplicates"] == 1
    assert stats["duplicate_ids"] == 1
    assert stats["multi_turn"] == 1 and stats["with_system_prompt"] == 1
    assert stats["constraints"] == {"records_with": 2, "total": 3, "by_type": {"case:lowercase": 2, "length:words": 1}}
    assert "token_lengths" not in stats


def test_token_length_percentiles(micro_tokenizer):
    records = make_records(40)
    stats = dataset_stats(records, tokenizer=micro_tokenizer)["token_lengths"]
    lengths = [len(encode_record(r, micro_tokenizer, max_length=10**9).input_ids) for r in records]
    assert stats["max"] == max(lengths)
    assert stats["p50"] == float(np.percentile(lengths, 50))
    assert stats["p50"] <= stats["p90"] <= stats["p99"] <= stats["max"]


def test_duplicate_groups_are_what_stats_count():
    """The trainer reuses this for group privacy (issue #10): one id list per repeated text."""
    from dpaudit.data.stats import duplicate_groups

    a, b = make_records(2)
    records = [a, Record("a2", a.messages), b, Record("a3", a.messages), Record("b2", b.messages)]
    assert duplicate_groups(records) == [[a.id, "a2", "a3"], [b.id, "b2"]]
    assert dataset_stats(records)["duplicates"] == 3
    assert duplicate_groups(make_records(5)) == []
