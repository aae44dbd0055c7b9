"""`dpaudit attack` through the in-process CLI."""

from __future__ import annotations

import json

import pytest

from dpaudit.privacy.scores_io import read_scores_csv


@pytest.mark.slow
def test_json_out_and_scores(cli, memorising_adapter, tmp_path):
    out, scores = tmp_path / "attack.json", tmp_path / "scores"
    code, stdout, stderr = cli(
        "attack", "--adapter", memorising_adapter, "--attacks", "loss,ref,minkpp", "--shadows", "0",
        "--json", "--out", out, "--save-scores", scores,
    )
    assert code == 0, stderr
    result = json.loads(stdout)  # stdout is pure JSON; the table went to stderr
    assert json.loads(out.read_text()) == result
    assert set(result["attacks"]) == {"loss", "ref", "minkpp"}
    loss = result["attacks"]["loss"]
    for key in ("auc", "auc_ci95", "tpr_at_fpr", "balanced_accuracy", "n_members", "n_nonmembers", "roc"):
        assert key in loss
    assert result["worst_case"] in result["attacks"]
    assert "worst case" in stderr
    assert "◀" in stderr
    ids, labels, _ = read_scores_csv(scores / "ref.csv")
    assert len(ids) == 128 and labels.sum() == 64


@pytest.mark.slow
def test_table_marks_the_worst_case(cli, memorising_adapter):
    code, stdout, stderr = cli("attack", "--adapter", memorising_adapter, "--attacks", "loss,zlib", "--shadows", "0")
    assert code == 0, stderr
    assert "AUC" in stdout and "TPR@1%" in stdout
    rows = {line.split("│")[1].strip(): line for line in stdout.splitlines() if line.count("│") > 3}
    assert {"loss", "zlib"} <= {name.rstrip(" ◀") for name in rows}
    assert sum(name.endswith("◀") for name in rows) == 1  # exactly one worst case
    assert "worst case" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--adapter", "no/such/dir"], "no such adapter directory"),
        (["--attacks", "loss,bogus", "--shadows", "0"], "unknown attack 'bogus'; registered:"),
        (["--attacks", "lira", "--shadows", "0"], "needs shadow models"),
        (["--members", "m.jsonl"], "both --members and --nonmembers"),
        ([], "--members FILE --nonmembers FILE"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, plain_peft_adapter, args, message, tmp_path):
    if "--adapter" not in args:
        args = ["--adapter", str(plain_peft_adapter), *args]
    out = tmp_path / "never.json"
    code, stdout, stderr = cli("attack", *args, "--out", out)
    assert code == 2
    assert message in " ".join(stderr.split())
    assert len(stderr.strip().splitlines()) <= 2  # one message (rich may wrap a long line)
    assert not out.exists()
