"""PII spans: the generator's offsets, the loader's checks and the regex detector."""

from __future__ import annotations

import json

import pytest

from dpaudit.data.loaders import load_records
from dpaudit.data.pii import detect_pii, non_overlapping, spans_of
from dpaudit.data.records import Message, PiiSpan, Record
from dpaudit.data.synth import SynthConfig, generate
from dpaudit.errors import InputError


@pytest.fixture(scope="module")
def dataset():
    return generate(SynthConfig(n=150, seed=3))


def test_generator_spans_point_at_their_values(dataset):
    types = set()
    for record in dataset.private + dataset.public:
        for span in record.pii:
            assert record.messages[span.message].content[span.start : span.end] == span.value
            types.add(span.type)
        assert list(record.pii) == sorted(record.pii, key=lambda s: (s.message, s.start))
    assert {"name", "email", "phone", "account", "dob", "diagnosis", "salary"} <= types
    assert sum(bool(r.pii) for r in dataset.private) >= 0.95 * len(dataset.private)


def test_spans_survive_a_jsonl_round_trip(dataset, tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r.to_json()) + "\n" for r in dataset.private), encoding="utf-8")
    assert [r.pii for r in load_records(path)] == [r.pii for r in dataset.private]


@pytest.mark.parametrize(
    ("span", "problem"),
    [
        ({"message": 5, "start": 0, "end": 2, "type": "x", "value": "hi"}, "message 5 does not exist"),
        ({"message": 1, "start": 3, "end": 2, "type": "x", "value": "hi"}, "not a non-empty range"),
        ({"message": 1, "start": 0, "end": 2, "type": "x", "value": "no"}, "is not the span's value"),
        ({"message": 1, "start": "0", "end": 2, "type": "x", "value": "Hi"}, "not an integer"),
    ],
)
def test_loader_rejects_spans_that_do_not_fit(tmp_path, span, problem):
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "Hi there"}], "pii": [span]}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=problem) as info:
        load_records(path)
    assert info.value.line == 1 and info.value.field.startswith("pii[0]")


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("mail ana.li7@example.org now", "email", "ana.li7@example.org"),
        ("call (201) 555-0143.", "phone", "(201) 555-0143"),
        ("call +1 201-555-0143 today", "phone", "+1 201-555-0143"),
        ("ring +44 20 7946 0958 please", "phone", "+44 20 7946 0958"),
        ("IBAN DE89 3704 0044 0532 0130 00 ok", "iban", "DE89 3704 0044 0532 0130 00"),
        ("SSN 123-45-6789.", "ssn", "123-45-6789"),
        ("account 0123456789 is", "account", "0123456789"),
        ("born 03/04/1987 in", "date", "03/04/1987"),
        ("born March 4, 1987 in", "date", "March 4, 1987"),
        ("born 4 March 1987 in", "date", "4 March 1987"),
        ("on 1987-03-04.", "date", "1987-03-04"),
    ],
)
def test_detector_finds_each_documented_type(text, kind, value):
    spans = detect_pii([Message("user", text)])
    assert [(s.type, s.value) for s in spans] == [(kind, value)]
    assert text[spans[0].start : spans[0].end] == value


def test_detector_ignores_ordinary_numbers_and_words():
    assert detect_pii([Message("user", "I have 3 cats, 1200 books and version 2.0.1; see page 42.")]) == ()


def test_detector_recovers_the_generators_spans(dataset):
    """Recall on the synthetic data for every type the patterns cover (the generator is ground truth)."""
    covered = {"email": "email", "phone": "phone", "account": "account", "ssn": "ssn", "dob": "date"}
    for record in dataset.private:
        detected = {(s.message, s.start, s.end): s.type for s in detect_pii(record.messages)}
        for span in record.pii:
            if span.type in covered:
                assert detected.get((span.message, span.start, span.end)) == covered[span.type], span


def test_overlaps_keep_the_earlier_then_longer_span():
    a, b, c = PiiSpan(0, 0, 5, "x", "aaaaa"), PiiSpan(0, 2, 9, "y", "b" * 7), PiiSpan(0, 0, 3, "z", "ccc")
    assert non_overlapping([b, c, a]) == (a,)
    record = Record(id="r", messages=(Message("assistant", "mail a@b.co"),))
    assert spans_of(record)[0].type == "email"  # detected when the record marks none
    marked = Record(id="r", messages=record.messages, pii=(PiiSpan(0, 0, 4, "word", "mail"),))
    assert spans_of(marked) == marked.pii  # its own spans win
