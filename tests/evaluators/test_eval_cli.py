"""`dpaudit eval` end to end on a micro base and a hand-made adapter directory (ARCHITECTURE.md's card)."""

from __future__ import annotations

import json
import math
import random

import pytest
from jsonschema import Draft202012Validator

from dpaudit.data.canaries import Canary, canaries_to_jsonl
from dpaudit.data.constraints import sample_constraints
from dpaudit.evaluators.adherence_eval import augment_record
from dpaudit.evaluators.suite import evaluate
from dpaudit.report.schema import load_schema
from tests.conftest import make_records
from tests.evaluators.model_helpers import lora_model, varied_model, write_jsonl

CANARIES = [
    Canary("canary-0000", "The access code of Ana Ruiz is ", "4817-2093", "dddd-dddd"),
    Canary("canary-0001", "The access code of Bo Lind is ", "6352-7718", "dddd-dddd"),
    Canary("canary-0002", "The alarm code of Cy Moss is ", "0042", "dddd"),
]


@pytest.fixture()
def adapter_dir(tmp_path, micro_tokenizer, monkeypatch):
    """base/ (HF dir), data.jsonl, canaries.jsonl and adapter/ with a LoRA adapter, id lists and a card."""
    monkeypatch.setenv("DPAUDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    base = varied_model(micro_tokenizer, scale=0.05)
    base.save_pretrained(tmp_path / "base")
    micro_tokenizer.save_pretrained(tmp_path / "base")
    rng = random.Random(0)
    records = [augment_record(r, sample_constraints(rng, 2)) if i % 2 else r for i, r in enumerate(make_records(16))]
    write_jsonl(tmp_path / "data.jsonl", [r.to_json() for r in records])
    (tmp_path / "canaries.jsonl").write_text(canaries_to_jsonl(CANARIES), encoding="utf-8")
    out = tmp_path / "adapter"
    model = lora_model(base)
    model.peft_config["default"].base_model_name_or_path = str(tmp_path / "base")
    model.save_pretrained(out)
    (out / "members.txt").write_text("".join(f"{r.id}\n" for r in records[:8]), encoding="utf-8")
    (out / "nonmembers.txt").write_text("".join(f"{r.id}\n" for r in records[8:]), encoding="utf-8")
    card = {
        "dpaudit_version": "0.1.0",
        "base": str(tmp_path / "base"),
        "base_resolved": str(tmp_path / "base"),
        "data_file": "data.jsonl",  # relative to where training ran, as `dpaudit train` writes it
        "data_sha256": None,
        "members_file": "members.txt",
        "nonmembers_file": "nonmembers.txt",
        "method": "lora",
        "hyperparameters": {"max_length": 128},
        "dp": None,
        "canaries": {"file": "canaries.jsonl", "mode": "repeats", "repeats": {"canary-0000": 4, "canary-0001": 1}},
        "seed": 0,
        "wall_time_s": 1.0,
        "versions": {},
    }
    (out / "dpaudit.json").write_text(json.dumps(card), encoding="utf-8")
    return out


def _schema_validator(name):
    schema = load_schema()
    return Draft202012Validator({"$defs": schema["$defs"], "$ref": f"#/$defs/{name}"})


def test_perplexity_json(cli, adapter_dir):
    code, out, err = cli("eval", "--adapter", adapter_dir, "--json")
    assert code == 0, err
    result = json.loads(out)
    ppl = result["utility"]["perplexity"]
    assert ppl["gap"] == pytest.approx(ppl["heldout"] / ppl["member"])
    assert ppl["base_heldout"] > 0 and ppl["base_heldout"] != pytest.approx(ppl["heldout"])
    assert result["data"]["heldout"]["n"] == 8 and result["data"]["members"]["n"] == 8
    assert result["utility"]["adherence"] is None and result["exposure"] is None
    assert result["settings"]["max_length"] == 128  # from the card
    _schema_validator("utility").validate(result["utility"])


def test_adherence_exposure_and_judge(cli, adapter_dir, tmp_path):
    code, out, err = cli(
        "eval", "--adapter", adapter_dir, "--adherence", "--augment", "--limit", "5", "--max-new-tokens", "6",
        "--exposure", "--exposure-samples", "40", "--enumerate-limit", "100", "--judge-model", tmp_path / "base",
        "--json", "--seed", "3",
    )
    assert code == 0, err
    result = json.loads(out)
    adherence = result["utility"]["adherence"]
    assert adherence["n_prompts"] == 5 and adherence["adapter"]["n_prompts"] == 5 and adherence["base"]["n_prompts"] == 5
    counts = adherence["mcnemar"]
    assert counts["adapter_only"] + counts["base_only"] + counts["both"] + counts["neither"] == 5
    assert adherence["model_judge"]["model"] == str(tmp_path / "base")
    assert 0 <= adherence["model_judge"]["agreement"]["accuracy"] <= 1
    assert set(result["utility"]["side_metrics"]) == {"adapter", "base"}
    _schema_validator("utility").validate(result["utility"])

    exposure = result["exposure"]
    _schema_validator("exposure").validate(exposure)
    # canary-0002 is in the file but not in the card's repeats: never inserted.
    assert set(exposure["per_repeat"]) == {"0", "1", "4"}
    by_id = {c["id"]: c for c in exposure["canaries"]}
    assert by_id["canary-0002"]["repeats"] == 0 and by_id["canary-0002"]["method"] == "estimated"
    assert by_id["canary-0000"]["n_candidates"] == 40
    assert exposure["max_exposure"] == pytest.approx(math.log2(10**8))


def test_tables(cli, adapter_dir):
    code, out, err = cli("eval", "--adapter", adapter_dir, "--adherence", "--limit", "3", "--max-new-tokens", "4",
                         "--exposure", "--exposure-samples", "20", "--enumerate-limit", "100")
    assert code == 0, err
    for text in ("adapter, held-out", "gap", "Instruction adherence", "McNemar", "ROUGE-L", "Canary exposure", "4×"):
        assert text in out


def test_library_call_matches_cli(cli, adapter_dir):
    code, out, _ = cli("eval", "--adapter", adapter_dir, "--json", "--data", "data.jsonl")
    from_cli = json.loads(out)
    from_lib = evaluate(adapter_dir, data="data.jsonl")
    assert from_cli["utility"] == from_lib["utility"]
    assert from_lib["data"]["heldout"] == {"source": "data.jsonl", "n": 16}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--adapter", "nowhere"], "no such adapter directory"),
        (["--data", "missing.jsonl"], "missing.jsonl"),
        (["--exposure", "--canaries", "missing.jsonl"], "missing.jsonl"),
        (["--limit", "0"], "`limit` must be >= 1, got 0"),
        (["--max-new-tokens", "0", "--exposure-samples", "1"], "`exposure_samples` must be >= 2"),
    ],
)
def test_bad_input_is_one_line_exit_2(cli, adapter_dir, args, message):
    if args[0] != "--adapter":
        args = ["--adapter", adapter_dir, *args]
    code, out, err = cli("eval", *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_no_card_needs_data(cli, adapter_dir):
    (adapter_dir / "dpaudit.json").unlink()
    code, _, err = cli("eval", "--adapter", adapter_dir)
    assert code == 2 and "--data" in err
    code, _, err = cli("eval", "--adapter", adapter_dir, "--data", "data.jsonl", "--exposure")
    assert code == 2 and "--canaries" in err
    write_jsonl(adapter_dir.parent / "plain.jsonl", [r.to_json() for r in make_records(3)])
    code, _, err = cli("eval", "--adapter", adapter_dir, "--data", "plain.jsonl", "--base", "base", "--adherence")
    assert code == 2 and "--augment" in err  # no record has constraints
