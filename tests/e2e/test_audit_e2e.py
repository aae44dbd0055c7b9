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


def test_a_fully_fine_tuned_model_is_audited_like_an_adapter(workspace, micro_base_dir, cli, isolated_cache, tmp_path):
    """`train --method full` writes a whole model; audit scores the base by swapping its weights in."""
    import torch

    from dpaudit.models.adapters import load_adapter
    from tests.conftest import make_records

    full = tmp_path / "full"
    data = workspace / "data" / "private.jsonl"
    code, _, err = cli("train", "--data", data, "--base", micro_base_dir, "--method", "full", "--epochs", "2",
                       "--max-length", "96", "--batch-size", "8", "--out", full)
    assert code == 0, err
    code, out, err = cli("audit", "--adapter", full, "--out", tmp_path / "report", "--quick", "--json")
    assert code == 0, err
    report = json.loads(out)
    validate_report(report)
    assert {"loss", "ref"} <= set(report["attacks"]) and report["adapter"]["card"]["method"] == "full"
    ppl = report["utility"]["perplexity"]
    assert ppl["base_heldout"] is not None and ppl["base_heldout"] != ppl["heldout"]  # the base was really swapped in

    loaded = load_adapter(full, base=str(micro_base_dir))
    ids = loaded.tokenizer(make_records(1)[0].text, return_tensors="pt")
    with torch.no_grad():
        tuned = loaded.model(**ids).logits
        with loaded.model.disable_adapter():
            bare = loaded.model(**ids).logits
            torch.testing.assert_close(bare, loaded.base.model(**ids).logits)
        torch.testing.assert_close(loaded.model(**ids).logits, tuned)  # the fine-tuned weights are back
    assert not torch.allclose(tuned, bare)

    code, _, err = cli("attack", "--adapter", full, "--attacks", "lira", "--shadows", "4")
    assert code == 2 and "shadow attacks need a PEFT adapter" in err
