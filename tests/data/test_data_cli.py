"""`dpaudit data synth` and `dpaudit data stats` through the in-process CLI."""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace

import pytest

from dpaudit.data.loaders import load_records


def test_synth_then_stats_numbers_agree(cli, tmp_path):
    out = tmp_path / "d"
    code, stdout, stderr = cli("data", "synth", "--n", "200", "--seed", "3", "--out", out, "--canaries", "4", "--json")
    assert code == 0, stderr
    manifest = json.loads(stdout)
    assert manifest["counts"] == {"public": 200, "private": 200, "canaries": 4}
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["files"]

    code, stdout, stderr = cli("data", "stats", out / "private.jsonl", "--json")
    assert code == 0, stderr
    stats = json.loads(stdout)
    records = load_records(out / "private.jsonl")
    assert stats["records"] == 200
    assert stats["categories"] == manifest["categories"]["private"] == dict(Counter(r.category for r in records))
    assert sum(stats["categories"].values()) == 200
    assert stats["duplicates"] == 0 and stats["duplicate_ids"] == 0
    assert stats["constraints"]["records_with"] == manifest["constrained"]["private"]
    assert stats["constraints"]["total"] == sum(len(r.constraints) for r in records)
    assert stats["multi_turn"] == stats["categories"].get("Chat", 0)

    code, stdout, _ = cli("data", "stats", out / "canaries.jsonl", "--json")
    assert code == 0 and json.loads(stdout)["records"] == 4


def test_synth_categories_and_mix(cli, tmp_path):
    out = tmp_path / "d"
    code, stdout, stderr = cli("data", "synth", "--n", "100", "--out", out, "--categories", "coding,closed-qa", "--mix", "1,3")
    assert code == 0, stderr
    assert "Closed QA" in stdout
    assert Counter(r.category for r in load_records(out / "private.jsonl")) == {"Coding": 25, "Closed QA": 75}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--categories", "poetry"], "unknown category 'poetry'"),
        (["--categories", "Chat,Coding", "--mix", "1"], "1 weights for 2 categories"),
        (["--mix", "a,b"], "`--mix` must be comma-separated numbers"),
        (["--n", "0"], "`n` must be a positive integer"),
    ],
)
def test_synth_bad_options_are_one_line_errors(cli, tmp_path, args, message):
    code, _, stderr = cli("data", "synth", "--out", tmp_path / "d", *args)
    assert code == 2
    assert message in stderr
    assert "Traceback" not in stderr


def test_stats_bad_input_names_file_and_line(cli, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "p", "response": "r"}\n{"prompt": \n', encoding="utf-8")
    code, _, stderr = cli("data", "stats", path)
    assert code == 2
    assert "bad.jsonl:2" in stderr and "malformed JSON" in stderr
    assert "Traceback" not in stderr
    code, _, stderr = cli("data", "stats", tmp_path / "missing.jsonl")
    assert code == 2 and "missing.jsonl" in stderr
    code, _, stderr = cli("data", "stats", path, "--format", "sharegpt")
    assert code == 2 and "unknown format 'sharegpt'" in stderr


def test_stats_table_output(cli, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "p", "response": "r", "category": "Chat"}\n' * 3, encoding="utf-8")
    code, stdout, _ = cli("data", "stats", path)
    assert code == 0
    assert "records" in stdout and "duplicates" in stdout and "Chat" in stdout


def test_stats_with_base_reports_token_lengths(cli, tmp_path, monkeypatch, micro_tokenizer):
    base = pytest.importorskip("dpaudit.models.base")
    asked = []

    def fake_load_base(spec, *, seed=0):
        asked.append((spec, seed))
        return SimpleNamespace(tokenizer=micro_tokenizer)

    monkeypatch.setattr(base, "load_base", fake_load_base)
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"question {i}", "response": "answer " * i}) + "\n" for i in range(1, 30)), encoding="utf-8")
    code, stdout, stderr = cli("data", "stats", path, "--base", "tiny", "--seed", "5", "--json")
    assert code == 0, stderr
    assert asked == [("tiny", 5)]
    lengths = json.loads(stdout)["token_lengths"]
    assert set(lengths) == {"p50", "p90", "p99", "max", "mean"}
    assert lengths["p50"] <= lengths["p90"] <= lengths["p99"] <= lengths["max"]
