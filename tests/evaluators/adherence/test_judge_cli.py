"""`dpaudit judge` on small responses files."""

from __future__ import annotations

import json

import pytest

from tests.evaluators.adherence.test_scoring import ITEMS


@pytest.fixture()
def responses_file(tmp_path):
    path = tmp_path / "responses.jsonl"
    rows = [dict(item, reference="hello there friend") for item in ITEMS]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    return path


def test_table(cli, responses_file):
    code, out, err = cli("judge", "--responses", responses_file, "--bootstrap", "50")
    assert code == 0, err
    assert "prompt" in out and "instruction" in out and "punctuation:no_comma" in out and "ROUGE-L" in out
    assert "33.3%" in out  # prompt-level strict


def test_json(cli, responses_file):
    code, out, err = cli("judge", "--responses", responses_file, "--json", "--seed", "1", "--verdicts")
    assert code == 0, err
    data = json.loads(out)
    adherence = data["adherence"]
    assert adherence["prompt_strict"] == pytest.approx(1 / 3)
    assert adherence["instruction_loose"] == pytest.approx(5 / 6)
    assert adherence["n_unconstrained"] == 1 and adherence["seed"] == 1
    assert set(adherence["ci95"]) == {"prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose"}
    assert len(adherence["verdicts"]) == 3
    assert data["side_metrics"]["empty_rate"] == 0.0
    # same seed, same numbers
    assert json.loads(cli("judge", "--responses", responses_file, "--json", "--seed", "1", "--verdicts")[1]) == data


@pytest.mark.parametrize(
    ("line", "where"),
    [
        ('{"prompt": "p", "constraints": [{"type": "case:shouting", "kwargs": {}}], "response": "r"}',
         "field 'constraints[0].type'"),
        ('{"prompt": "p", "constraints": [], "response": 3}', "field 'response'"),
        ('{"prompt": "p", "response": "r"}', "field 'constraints'"),
        ("not json", "not valid JSON"),
    ],
)
def test_bad_line_exits_2_naming_file_and_line(cli, tmp_path, line, where):
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"prompt": "p", "constraints": [{"type": "case:lowercase", "kwargs": {}}], "response": "ok"})
    path.write_text(good + "\n" + line + "\n", encoding="utf-8")
    code, out, err = cli("judge", "--responses", path)
    assert code == 2
    flat = " ".join(err.split())
    assert f"{path.name}:2" in flat and where in flat


def test_missing_file_exits_2(cli, tmp_path):
    code, _, err = cli("judge", "--responses", tmp_path / "nope.jsonl")
    assert code == 2 and "No responses file" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "no responses to judge (empty file)"),
     ('{"prompt": "p", "constraints": [], "response": "r"}\n', "none of the 1 responses has constraints to judge")],
)
def test_nothing_to_judge_is_one_line_and_exit_2(cli, tmp_path, text, message):
    """Issue #11: an empty file exited 0 with a raw numpy warning."""
    path = tmp_path / "empty.jsonl"
    path.write_text(text, encoding="utf-8")
    code, out, err = cli("judge", "--responses", path)
    assert code == 2 and out == ""
    assert err.strip() == f"error: {path}: {message}" and "Warning" not in err
