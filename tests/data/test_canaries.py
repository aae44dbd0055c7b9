"""Canaries: secret formats, their candidate space, records and files."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from dpaudit.data.canaries import (
    Canary,
    canaries_to_jsonl,
    load_canaries,
    make_canaries,
    matches_format,
    random_secret,
    secret_from_index,
    secret_space_size,
)
from dpaudit.data.loaders import load_records
from dpaudit.errors import ConfigError, InputError


@pytest.mark.parametrize(
    ("fmt", "size"),
    [("dddd-dddd", 10**8), ("ddd", 1000), ("xxxx", 16**4), ("aa-AA", 26**4), ("PIN dddd", 10**4)],
)
def test_space_size_and_random_secrets_match(fmt, size):
    assert secret_space_size(fmt) == size
    rng = random.Random(0)
    for _ in range(50):
        secret = random_secret(rng, fmt)
        assert matches_format(secret, fmt), secret
    assert matches_format(random_secret(np.random.default_rng(0), fmt), fmt)


def test_random_secret_is_uniform_enough():
    rng = random.Random(1)
    counts = np.bincount([int(random_secret(rng, "d")) for _ in range(5000)], minlength=10)
    assert counts.min() > 400 and counts.max() < 600


def test_secret_from_index_enumerates_the_space():
    secrets = [secret_from_index(i, "d-x") for i in range(secret_space_size("d-x"))]
    assert len(set(secrets)) == 160
    assert secrets[0] == "0-0" and secrets[-1] == "9-f" and secrets[17] == "1-1"
    assert all(matches_format(s, "d-x") for s in secrets)
    with pytest.raises(ConfigError):
        secret_from_index(160, "d-x")


def test_format_without_placeholder_is_rejected():
    with pytest.raises(ConfigError, match="no placeholder"):
        secret_space_size("----")


def test_canary_record_text_is_prefix_plus_secret():
    canary = Canary("c0", "The access code of Ana Ruiz is ", "8391-2047", "dddd-dddd")
    record = canary.to_record()
    assert record.id == "c0"
    assert record.text == canary.prefix + canary.secret
    assert record.response.endswith("8391-2047")
    assert canary.with_secret("0000-0000").text.endswith("0000-0000")
    with pytest.raises(ConfigError):
        Canary("c1", "p ", "12345678", "dddd-dddd")


def test_make_canaries_distinct_and_deterministic():
    names = [f"Person {i}" for i in range(30)]
    first = make_canaries(30, rng=random.Random(3), names=names)
    again = make_canaries(30, rng=random.Random(3), names=names)
    assert first == again
    assert len({c.secret for c in first}) == 30
    assert len({c.id for c in first}) == 30
    assert all(names[i] in c.prefix for i, c in enumerate(first))


def test_canaries_file_round_trip_and_reads_as_chat(tmp_path):
    canaries = make_canaries(4, rng=random.Random(0), names=["A B", "C D", "E F", "G H"], secret_format="xxxx-dd")
    path = tmp_path / "canaries.jsonl"
    path.write_text(canaries_to_jsonl(canaries), encoding="utf-8")
    assert load_canaries(path) == canaries
    assert [r.text for r in load_records(path)] == [c.text for c in canaries]


def test_load_canaries_errors(tmp_path):
    path = tmp_path / "c.jsonl"
    good = {"id": "c0", "prefix": "code ", "secret": "1234", "secret_format": "dddd"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "c1", "secret": "12a4"}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"c\.jsonl:2 field 'secret'"):
        load_canaries(path)
    path.write_text(json.dumps({k: v for k, v in good.items() if k != "secret_format"}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"c\.jsonl:1 field 'secret_format': missing"):
        load_canaries(path)
    path.write_text("", encoding="utf-8")
    assert load_canaries(path) == []
