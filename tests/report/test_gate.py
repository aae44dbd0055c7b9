"""The CI gate on hand-made reports: exit codes, measured values, CI bounds, config files, JUnit."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import pytest

from dpaudit.errors import ConfigError, InputError
from dpaudit.report.gate import (
    GateThresholds,
    evaluate_gate,
    junit_xml,
    thresholds_from_table,
)
from tests.report.reports import mutated, save_report_json


@pytest.fixture()
def write(tmp_path):
    """Write a report dict to tmp_path/NAME/report.json and return the directory."""

    def _write(report, name="r"):
        return save_report_json(report, tmp_path / name)

    return _write


@pytest.fixture(autouse=True)
def _no_ambient_pyproject(tmp_path, monkeypatch):
    """Run every gate in an empty directory so that the repository's pyproject.toml is not read."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


def test_pass_exits_0(cli, write, dp_report):
    code, out, err = cli("gate", write(dp_report), "--max-auc", "0.7", "--max-tpr-at-fpr", "0.1:0.3",
                         "--max-epsilon", "8", "--max-empirical-epsilon", "1", "--min-adherence", "0.5")
    assert code == 0, err
    assert "gate passed: 5 thresholds hold" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--max-auc", "0.6"], "max-auc: AUC (attack ref, point estimate) = 0.8955 > 0.6"),
        (["--max-tpr-at-fpr", "0.1:0.05"], "max-tpr-at-fpr[0.1]: TPR at 10% FPR (attack ref, point estimate) = 0.745 > 0.05"),
        (["--max-epsilon", "8"], "max-epsilon: theoretical ε (not trained with DP) = ∞ (not DP) > 8"),
        (["--max-empirical-epsilon", "0.1"], "max-empirical-epsilon: empirical ε lower bound (clopper-pearson) (attack ref, 95% confidence bound) = 0.4 > 0.1"),
        (["--min-adherence", "0.7"], "min-adherence: adherence (prompt, strict) (point estimate) = 0.62 < 0.7"),
    ],
)
def test_each_kind_of_failure_exits_1_with_the_measured_value(cli, write, full_report, args, expected):
    code, _, err = cli("gate", write(full_report), *args)
    assert code == 1
    assert expected in " ".join(err.split())
    assert "1 of 1 gate thresholds failed" in err


def test_failures_are_all_listed(cli, write, full_report):
    code, _, err = cli("gate", write(full_report), "--max-auc", "0.6", "--max-epsilon", "8", "--min-adherence", "0.1")
    assert code == 1
    assert err.count("FAIL") == 2 and "2 of 3 gate thresholds failed" in err


def test_use_upper_ci_flips_a_borderline_pass(cli, write, dp_report):
    metrics = dp_report["attacks"]
    worst_point = max(m["auc"] for m in metrics.values())
    worst_upper = max(m["auc_ci95"][1] for m in metrics.values())
    assert worst_point < worst_upper
    threshold = f"{(worst_point + worst_upper) / 2:.4f}"
    target = write(dp_report)
    assert cli("gate", target, "--max-auc", threshold)[0] == 0
    code, _, err = cli("gate", target, "--max-auc", threshold, "--use-upper-ci")
    assert code == 1 and "upper 95% CI" in err


def test_attack_option_selects_one_attack(cli, write, full_report):
    target = write(full_report)
    zlib_auc = full_report["attacks"]["zlib"]["auc"]
    assert cli("gate", target, "--max-auc", f"{zlib_auc + 0.01}", "--attack", "zlib")[0] == 0
    assert cli("gate", target, "--max-auc", f"{zlib_auc + 0.01}")[0] == 1  # worst: ref is higher
    code, _, err = cli("gate", target, "--max-auc", "0.6", "--attack", "lira")
    assert code == 2 and "no attack 'lira'" in err and "loss, ref, zlib" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"schema_version": "1.0", ', "not valid JSON"),
        ('{"schema_version": "1.0"}', "invalid report"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_malformed_report_exits_2_naming_the_file(cli, tmp_path, content, message):
    (tmp_path / "report.json").write_text(content)
    code, _, err = cli("gate", tmp_path / "report.json", "--max-auc", "0.6")
    assert code == 2
    assert message in err and "report.json" in err


def test_usage_errors_exit_2(cli, write, tmp_path, full_report, minimal_report):
    target = write(full_report)
    assert "no gate thresholds given" in cli("gate", target)[2]
    assert cli("gate", target)[0] == 2
    assert cli("gate", tmp_path / "missing", "--max-auc", "0.6")[0] == 2
    code, _, err = cli("gate", target, "--max-tpr-at-fpr", "0.01")
    assert code == 2 and "FPR:TPR" in err
    code, _, err = cli("gate", target, "--max-tpr-at-fpr", "0.05:0.1")
    assert code == 2 and "not at 0.05" in err
    code, _, err = cli("gate", target, "--max-auc", "1.5")
    assert code == 2 and "`max_auc` must be in [0, 1], got 1.5" in err
    code, _, err = cli("gate", write(minimal_report, "m"), "--min-adherence", "0.5")
    assert code == 2 and "no adherence" in err
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    # An adapter directory is audited before gating: a broken one fails there, with nothing written.
    code, _, err = cli("gate", adapter, "--max-auc", "0.6", "--out", tmp_path / "audit")
    assert code == 2 and "adapter_config.json field 'peft_type'" in err
    assert not (tmp_path / "audit").exists()


def test_thresholds_from_pyproject_and_cli_override(cli, write, full_report):
    target = write(full_report)
    with open("pyproject.toml", "w") as handle:
        handle.write('[project]\nname = "x"\n\n[tool.dpaudit.gate]\nmax-auc = 0.6\nmax_tpr_at_fpr = ["0.1:0.9"]\n')
    code, _, err = cli("gate", target)
    assert code == 1 and "max-auc" in err and "1 of 2" in err
    assert cli("gate", target, "--max-auc", "0.99")[0] == 0


def test_config_option(cli, write, full_report, tmp_path):
    target = write(full_report)
    config = tmp_path / "gate.toml"
    config.write_text("[tool.dpaudit.gate]\nmin_adherence = 0.9\nuse_upper_ci = true\n")
    code, _, err = cli("gate", target, "--config", config)
    assert code == 1 and "lower 95% CI" in err
    assert cli("gate", target, "--config", config, "--min-adherence", "0.5", "--point-estimate")[0] == 0
    config.write_text("[tool.dpaudit.gate]\nmax_auk = 0.9\n")
    code, _, err = cli("gate", target, "--config", config)
    assert code == 2 and "max_auk" in err and "unknown gate setting" in err
    config.write_text("[tool.other]\nx = 1\n")
    assert "has no [tool.dpaudit.gate] table" in cli("gate", target, "--config", config)[2]


def test_junit_xml_parses_one_testcase_per_threshold(cli, write, full_report, tmp_path):
    junit = tmp_path / "gate.xml"
    code, _, _ = cli("gate", write(full_report), "--max-auc", "0.6", "--min-adherence", "0.5", "--junit", junit)
    assert code == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    assert [c.get("name") for c in cases] == ["max-auc[ref]", "min-adherence"]
    assert cases[0].find("failure") is not None and cases[1].find("failure") is None
    assert "0.8955 > 0.6" in cases[0].find("failure").get("message")


def test_json_output(cli, write, dp_report):
    code, out, _ = cli("gate", write(dp_report), "--max-auc", "0.9", "--max-epsilon", "10", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["passed"] is True and [c["name"] for c in result["checks"]] == ["max-auc", "max-epsilon"]


def test_unmeasurable_metric_fails_closed(full_report):
    report = mutated(full_report, "attacks.loss.auc", None)
    result = evaluate_gate(report, GateThresholds(max_auc=0.99))
    assert not result.passed and result.checks[0].measured is None and result.checks[0].attack == "loss"
    no_ci = mutated(full_report, "attacks.ref.auc_ci95", [None, None])
    assert not evaluate_gate(no_ci, GateThresholds(max_auc=0.99, use_upper_ci=True)).passed
    assert "not measured" in junit_xml(evaluate_gate(report, GateThresholds(max_auc=0.99)))


def test_theory_epsilon_uses_the_training_accountant(dp_report):
    # theory: prv 8.0, rdp 8.8; the card's accountant (prv) is what the training promised
    check = evaluate_gate(dp_report, GateThresholds(max_epsilon=8.0)).checks[0]
    assert check.passed and check.measured == 8.0
    no_accountant = mutated(dp_report, "epsilon.accountant", None)
    assert evaluate_gate(no_accountant, GateThresholds(max_epsilon=8.0)).checks[0].measured == pytest.approx(8.8)


def test_threshold_validation():
    with pytest.raises(ConfigError, match="`max_epsilon` must be >= 0, got -1"):
        GateThresholds(max_epsilon=-1)
    with pytest.raises(ConfigError, match="TPR must be in"):
        GateThresholds(max_tpr_at_fpr=((0.01, 2.0),))
    assert thresholds_from_table({"max_tpr_at_fpr": {"0.01": 0.05}}).max_tpr_at_fpr == ((0.01, 0.05),)
    with pytest.raises(InputError, match="field 'max-auc': must be a number, got 'high'"):
        thresholds_from_table({"max-auc": "high"})
    assert math.isinf(evaluate_gate({"epsilon": {"theory": None}, "attacks": {}}, GateThresholds(max_epsilon=1)).checks[0].measured)
