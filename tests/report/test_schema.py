"""report.json schema: full and partial reports validate, malformed ones are rejected with the field named."""

from __future__ import annotations

import json
import warnings

import pytest
from jsonschema import Draft202012Validator

from dpaudit.errors import InputError, MissingFileError
from dpaudit.evaluators.mia_metrics import mia_metrics
from dpaudit.report.schema import (
    SCHEMA_PATH,
    SCHEMA_VERSION,
    build_report,
    fingerprint_ids,
    load_report,
    load_schema,
    validate_report,
)
from tests.report.reports import mutated


def test_shipped_schema_is_valid_draft_2020_12():
    assert SCHEMA_PATH.is_file()
    Draft202012Validator.check_schema(load_schema())
    assert load_schema()["properties"]["schema_version"]["const"] == SCHEMA_VERSION


def test_full_and_minimal_reports_validate(full_report, minimal_report):
    validate_report(full_report)
    validate_report(minimal_report)
    assert minimal_report["epsilon"] is None and minimal_report["utility"] is None and minimal_report["exposure"] is None
    assert full_report["worst_case_attack"] == "ref"  # the strongest synthetic attack
    json.dumps(full_report, allow_nan=False)  # strictly valid JSON


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("attacks.loss.auc", "high", "$.attacks.loss.auc"),
        ("attacks.loss.auc", 1.7, "$.attacks.loss.auc"),
        ("epsilon.verdict", "fine", "$.epsilon"),
        ("data.members.sha256", "not-a-hash", "$.data.members.sha256"),
        ("schema_version", "0.9", "$.schema_version"),
        ("most_exposed", [{"id": "r1", "text": "x", "score": 1.0}], "$.most_exposed[0]"),
    ],
)
def test_malformed_report_is_rejected_naming_the_field(full_report, path, value, field):
    with pytest.raises(InputError) as info:
        validate_report(mutated(full_report, path, value))
    assert info.value.field.startswith(field)


def test_missing_section_is_rejected(full_report):
    broken = dict(full_report)
    del broken["attacks"]
    with pytest.raises(InputError, match="attacks"):
        validate_report(broken)


def test_undefined_metrics_are_stored_as_null(minimal_report):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one_class = mia_metrics(scores=[0.1, 0.2], labels=[1, 1])
    report = build_report(
        adapter={"path": "a", "weights_sha256": None, "card": None},
        data={"members": fingerprint_ids(["a", "b"]), "nonmembers": fingerprint_ids([])},
        attacks={"loss": one_class},
    )
    assert report["attacks"]["loss"]["auc"] is None
    assert report["attacks"]["loss"]["tpr_at_fpr"]["0.01"] is None


def test_fingerprint_ignores_order():
    assert fingerprint_ids(["b", "a", "c"]) == fingerprint_ids(["c", "b", "a"])
    assert fingerprint_ids(["a"])["sha256"] != fingerprint_ids(["b"])["sha256"]
    assert fingerprint_ids(["a", "b"])["n"] == 2


def test_load_report_from_dir_and_file(tmp_path, full_report):
    (tmp_path / "report.json").write_text(json.dumps(full_report))
    assert load_report(tmp_path) == full_report
    assert load_report(tmp_path / "report.json") == full_report


def test_load_report_errors(tmp_path, full_report):
    with pytest.raises(MissingFileError, match="dpaudit audit"):
        load_report(tmp_path / "nowhere")
    with pytest.raises(MissingFileError, match="No report.json"):
        load_report(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": "1.0",\n  oops}')
    with pytest.raises(InputError, match=r"bad.json:2: not valid JSON"):
        load_report(bad)
    future = tmp_path / "future.json"
    future.write_text(json.dumps(mutated(full_report, "schema_version", "9.0")))
    with pytest.raises(InputError, match="schema_version '9.0' is not supported"):
        load_report(future)
    adapter = tmp_path / "runs" / "lora"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    with pytest.raises(InputError, match=r"is an adapter directory; run `dpaudit audit --adapter"):
        load_report(adapter)
