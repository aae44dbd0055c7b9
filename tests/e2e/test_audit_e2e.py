"""End to end on a micro base saved as a local HF directory: synth → train → audit → gate → compare."""

from __future__ import annotations

import json

import pytest

from dpaudit.data.synth import SynthConfig, generate, write_dataset
from dpaudit.report.schema import validate_report


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    write_dataset(generate(SynthConfig(n=40, seed=0)), root / "data")
    return root


def test_train_audit_gate_compare(workspace, micro_base_dir, cli, isolated_cache):
    base, data = micro_base_dir, workspace / "data" / "private.jsonl"
    lora, dp = workspace / "runs" / "lora", workspace / "runs" / "dp"
    common = ["--data", data, "--base", base, "--epochs", "4", "--max-length", "96", "--batch-size", "8", "--seed", "1"]
    assert cli("train", *common, "--out", lora)[0] == 0
    assert cli("train", *common, "--out", dp, "--dp", "--target-epsilon", "8", "--members-file", lora / "members.txt")[0] == 0

    reports = workspace / "reports"
    code, out, err = cli("audit", "--adapter", lora, "--out", reports / "lora", "--quick", "--json", "--seed", "3")
    assert code == 0, err
    report = json.loads(out)
    validate_report(report)
    assert set(report["attacks"]) == {"loss", "ref", "zlib", "mink", "minkpp"}
    assert report["epsilon"]["verdict"] == "no-guarantee"
    assert report["utility"]["perplexity"]["heldout"] > 0
    for name in ("report.json", "report.html", "report.md"):
        assert (reports / "lora" / name).is_file()

    code, _, err = cli("audit", "--adapter", dp, "--out", reports / "dp", "--quick", "--seed", "3")
    assert code == 0, err
    dp_report = json.loads((reports / "dp" / "report.json").read_text())
    assert dp_report["epsilon"]["verdict"] == "consistent"
    assert dp_report["epsilon"]["theory"]

    # Same seed, same numbers (the second audit reads the cached scores; the first recomputed them).
    code, out, _ = cli("audit", "--adapter", lora, "--out", reports / "lora2", "--quick", "--json", "--seed", "3")
    again = json.loads(out)
    assert {k: v["auc"] for k, v in again["attacks"].items()} == {k: v["auc"] for k, v in report["attacks"].items()}

    assert cli("gate", reports / "dp", "--max-epsilon", "8.01")[0] == 0
    assert cli("gate", reports / "lora", "--max-epsilon", "8")[0] == 1
    # An adapter directory is audited first (same settings), then gated.
    code, _, err = cli("gate", dp, "--quick", "--seed", "3", "--out", reports / "dp-gated", "--max-epsilon", "8.01")
    assert code == 0, err
    assert (reports / "dp-gated" / "report.md").is_file()
    code, _, err = cli("compare", reports / "lora", reports / "dp", "--out", reports)
    assert code == 0, err
    assert (reports / "compare.html").is_file() and (reports / "compare.md").is_file()


def test_audit_of_missing_adapter_is_one_line(cli, tmp_path):
    code, out, err = cli("audit", "--adapter", tmp_path / "nope", "--out", tmp_path / "r")
    assert code == 2
    assert "nope" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
