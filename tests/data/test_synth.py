"""The synthetic sensitive dataset: determinism, category mix, constraints, canaries, files."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from dpaudit.data.canaries import load_canaries, matches_format
from dpaudit.data.constraints import CONSTRAINT_TYPES, describe
from dpaudit.data.loaders import load_records
from dpaudit.data.splits import check_disjoint
from dpaudit.data.synth import (
    CATEGORIES,
    EXCLUDED_CONSTRAINTS,
    FILES,
    NO_ROBOTS_MIX,
    SynthConfig,
    allocate,
    canonical_category,
    generate,
    write_dataset,
)
from dpaudit.data.synth_templates import TEMPLATES
from dpaudit.errors import ConfigError, InputError
from dpaudit.io import sha256_file


@pytest.fixture(scope="module")
def big():
    """N = 5000 private records (and 1250 public ones), generated once for this module."""
    return generate(SynthConfig(n=5000, seed=0, canaries=20, public_fraction=0.2))


# --------------------------------------------------------------------------- config


def test_every_category_has_several_templates():
    assert list(TEMPLATES) == list(CATEGORIES)
    assert all(len(TEMPLATES[c]) >= 2 for c in CATEGORIES)
    assert sum(map(len, TEMPLATES.values())) >= 30


def test_allocate_is_exact_largest_remainder():
    assert allocate(10, [45.6, 12.4, 42.0]) == [5, 1, 4]
    assert allocate(7, [1, 1, 1]) == [3, 2, 2]
    assert allocate(0, [1, 2]) == [0, 0]
    for total in (1, 13, 999, 5000):
        counts = allocate(total, NO_ROBOTS_MIX)
        assert sum(counts) == total
        assert all(abs(k - total * w / sum(NO_ROBOTS_MIX)) < 1 for k, w in zip(counts, NO_ROBOTS_MIX))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "`n`"),
        ({"categories": ("Poetry",)}, "unknown category 'Poetry'"),
        ({"categories": ()}, "at least one"),
        ({"categories": ("Chat", "chat")}, "more than once"),
        ({"categories": ("Chat", "Coding"), "mix": (1.0,)}, "1 weights for 2 categories"),
        ({"categories": ("Chat", "Coding"), "mix": (1.0, -1.0)}, "`mix`"),
        ({"categories": ("Chat",), "mix": (0.0,)}, "`mix`"),
        ({"public_fraction": 1.0}, "`public_fraction`"),
        ({"canaries": -1}, "`canaries`"),
        ({"canaries": 11, "canary_format": "d"}, "`canary_format`"),
    ],
)
def test_config_is_validated_at_construction(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        SynthConfig(**kwargs)


def test_category_names_are_forgiving():
    assert canonical_category("open-qa") == "Open QA"
    assert canonical_category(" closed_qa ") == "Closed QA"
    assert SynthConfig(categories=["coding", "CHAT"]).categories == ("Coding", "Chat")


def test_public_split_size():
    assert SynthConfig(n=2000).n_public == 2000
    assert SynthConfig(n=2000, public_fraction=0.0).n_public == 0
    assert SynthConfig(n=100, public_fraction=0.8).n_public == 400


# --------------------------------------------------------------------------- determinism and files


def _write(tmp_path, name, **kwargs):
    return write_dataset(generate(SynthConfig(**kwargs)), tmp_path / name)


def test_same_seed_gives_byte_identical_files(tmp_path):
    first = _write(tmp_path, "a", n=200, seed=7, canaries=5)
    second = _write(tmp_path, "b", n=200, seed=7, canaries=5)
    other = _write(tmp_path, "c", n=200, seed=8, canaries=5)
    for name in FILES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
        assert (first / name).read_bytes() != (other / name).read_bytes(), name


def test_private_records_do_not_depend_on_public_or_canaries():
    plain = generate(SynthConfig(n=150, seed=3))
    more = generate(SynthConfig(n=150, seed=3, canaries=10, public_fraction=0.7))
    assert more.private == plain.private


def test_manifest_and_files_agree(tmp_path):
    out = _write(tmp_path, "d", n=300, seed=1, canaries=6)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["seed"] == 1
    assert manifest["counts"] == {"public": 300, "private": 300, "canaries": 6}
    for name, digest in manifest["files"].items():
        assert sha256_file(out / name) == digest
    private = load_records(out / "private.jsonl")
    assert len(private) == 300
    assert manifest["categories"]["private"] == dict(Counter(r.category for r in private))
    assert manifest["constrained"]["private"] == sum(bool(r.constraints) for r in private)
    assert len(load_records(out / "public.jsonl")) == 300
    assert len(load_canaries(out / "canaries.jsonl")) == 6


def test_rewriting_an_output_dir_is_allowed_but_foreign_files_are_kept(tmp_path):
    out = _write(tmp_path, "d", n=20, seed=1)
    _write(tmp_path, "d", n=30, seed=1)
    assert len(load_records(out / "private.jsonl")) == 30
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(InputError, match="notes.txt"):
        _write(tmp_path, "d", n=40, seed=1)
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert len(load_records(out / "private.jsonl")) == 30


def test_empty_canaries_file_when_none_asked(tmp_path):
    out = _write(tmp_path, "d", n=10, seed=1)
    assert (out / "canaries.jsonl").read_text(encoding="utf-8") == ""
    assert load_canaries(out / "canaries.jsonl") == []


# --------------------------------------------------------------------------- content at N = 5000


def test_category_mix_within_two_points_at_5000(big):
    counts = Counter(r.category for r in big.private)
    assert len(big.private) == 5000
    for category, share in zip(CATEGORIES, NO_ROBOTS_MIX):
        assert abs(100.0 * counts[category] / 5000 - share) <= 2.0, category
    public = Counter(r.category for r in big.public)
    assert all(public[c] > 0 for c in CATEGORIES)


def test_subset_and_custom_mix():
    ds = generate(SynthConfig(n=400, seed=2, categories=("Coding", "Chat"), mix=(3, 1)))
    assert Counter(r.category for r in ds.private) == {"Coding": 300, "Chat": 100}
    assert Counter(r.category for r in ds.public) == {"Coding": 300, "Chat": 100}


def test_records_are_unique_disjoint_and_well_formed(big):
    records = big.private + big.public
    assert len({r.id for r in records}) == len(records)
    assert len({r.text for r in records}) == len(records)
    check_disjoint(big.private, big.public)
    for r in records:
        assert r.messages[-1].role == "assistant" and r.prompt and r.response
        assert re.search(r"\d{2,}", r.text), r.id  # every record carries a number: a date, an amount, an id
    chats = [r for r in big.private if r.category == "Chat"]
    assert any(r.messages[0].role == "system" for r in chats)
    assert all(sum(m.role == "assistant" for m in r.messages) >= 2 for r in chats)


def test_sensitive_fields_appear(big):
    text = "\n".join(r.text for r in big.private)
    assert re.search(r"\(\d{3}\) \d{3}-\d{4}", text)  # phone numbers
    assert re.search(r"[a-z0-9._]+@[a-z]+\.[a-z]+", text)  # emails
    assert re.search(r"\d{3}-\d{2}-\d{4}", text)  # social security numbers
    assert re.search(r"MRN-\d{7}", text)  # medical record numbers
    assert re.search(r"\$\d{2,3},\d{3}", text)  # salaries
    assert "diagnos" in text and "born" in text


def test_about_half_carry_structured_constraints(big):
    constrained = [r for r in big.private if r.constraints]
    assert 0.45 <= len(constrained) / len(big.private) <= 0.55
    assert {len(r.constraints) for r in constrained} == {1, 2, 3}
    for r in constrained:
        for c in r.constraints:
            assert set(c) == {"type", "kwargs"} and isinstance(c["kwargs"], dict)
            assert c["type"] in CONSTRAINT_TYPES
            assert describe(c) in r.prompt  # the instruction states it
        assert len({c["type"] for c in r.constraints}) == len(r.constraints)
        assert not {c["type"] for c in r.constraints} & EXCLUDED_CONSTRAINTS.get(r.category, set())


def test_reference_responses_pass_their_own_checks(big):
    judge_response = pytest.importorskip("dpaudit.evaluators.adherence").judge_response
    failures = []
    for r in big.private + big.public:
        if r.constraints:
            verdict = judge_response(prompt=r.prompt, constraints=r.constraints, response=r.response)
            if not verdict.strict:
                failures.append((r.id, [v.type for v in verdict.results if not v.strict]))
    assert not failures, failures[:5]


def test_canaries(big):
    assert len(big.canaries) == 20
    assert len({c.id for c in big.canaries}) == 20
    assert len({c.secret for c in big.canaries}) == 20
    assert all(matches_format(c.secret, "dddd-dddd") for c in big.canaries)
    corpus = "\n".join(r.text for r in big.private + big.public)
    for canary in big.canaries:
        name = re.search(r"(?:of|by|to) ([A-Z][\w'-]+ [A-Z][\w'-]+) is $", canary.prefix)
        assert name, canary.prefix
        assert name.group(1) not in corpus  # the canary's person appears nowhere else
        assert canary.secret not in corpus
