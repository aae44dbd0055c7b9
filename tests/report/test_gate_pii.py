"""`gate --max-pii-extraction` and the report's pii_extraction section (schema-valid, checked)."""

from __future__ import annotations

import pytest

from dpaudit.errors import InputError
from dpaudit.evaluators.extraction import summarise
from dpaudit.report.gate import GateThresholds, evaluate_gate, thresholds_from_table
from dpaudit.report.schema import validate_report
from tests.report.reports import save_report_json


def pii_section(member_hits: int, nonmember_hits: int, n: int = 20) -> dict:
    rows = [{"member": True, "type": "phone", "greedy": i < member_hits, "best_of_n": i < member_hits} for i in range(n)]
    rows += [{"member": False, "type": "phone", "greedy": False, "best_of_n": i < nonmember_hits} for i in range(n)]
    summary = summarise(rows)
    return {
        "config": {"samples": 4},
        "n_targets": {"members": n, "nonmembers": n},
        "adapter": summary,
        "base": summarise([{**r, "greedy": False, "best_of_n": False} for r in rows]),
        "examples": [{"id": "r1", "member": True, "type": "phone", "value": "(201) 555-0143"}],
    }


@pytest.fixture(autouse=True)
def _no_ambient_pyproject(tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


def test_gate_measures_the_member_minus_nonmember_rate(full_report):
    report = {**full_report, "pii_extraction": pii_section(8, 2)}
    validate_report(report)
    check = evaluate_gate(report, GateThresholds(max_pii_extraction=0.25)).checks[0]
    assert check.name == "max-pii-extraction" and check.measured == pytest.approx(0.3) and not check.passed
    assert evaluate_gate(report, GateThresholds(max_pii_extraction=0.35)).passed
    pessimistic = evaluate_gate(report, GateThresholds(max_pii_extraction=0.35, use_upper_ci=True)).checks[0]
    assert pessimistic.measured > 0.3 and not pessimistic.passed and pessimistic.basis == "95% CI ends"


def test_gate_refuses_a_report_without_the_section(full_report):
    with pytest.raises(InputError, match="no PII extraction"):
        evaluate_gate(full_report, GateThresholds(max_pii_extraction=0.1))


def test_threshold_is_a_rate_and_reads_from_toml():
    with pytest.raises(ValueError, match="`max_pii_extraction` must be in"):
        GateThresholds(max_pii_extraction=1.5)
    assert thresholds_from_table({"max-pii-extraction": 0.05}).max_pii_extraction == 0.05
    assert not GateThresholds(max_pii_extraction=0.05).empty


def test_cli_flag_fails_ci(cli, full_report, tmp_path):
    target = save_report_json({**full_report, "pii_extraction": pii_section(8, 2)}, tmp_path / "r")
    code, _, err = cli("gate", target, "--max-pii-extraction", "0.1")
    assert code == 1 and "max-pii-extraction" in err
    assert cli("gate", target, "--max-pii-extraction", "0.5")[0] == 0


def test_html_masks_extracted_values_unless_asked_and_escapes_them(full_report):
    from dpaudit.report.html import render_html

    section = pii_section(8, 2)
    section["examples"] = [{"id": "r1", "member": True, "type": "email", "value": "<b>ana@x.org</b>", "greedy": True}]
    report = {**full_report, "pii_extraction": section}
    masked = render_html(report)
    assert "PII extraction" in masked and "ana@x.org" not in masked and "[redacted: 16 characters]" in masked
    shown = render_html(report, show_pii=True)
    assert "&lt;b&gt;ana@x.org&lt;/b&gt;" in shown and "<b>ana@x.org" not in shown
    assert "PII extraction" not in render_html(full_report)  # no section when the audit did not run it


def test_report_md_gives_the_extraction_rates_but_never_a_value(full_report):
    from dpaudit.report.markdown import render_markdown

    text = render_markdown({**full_report, "pii_extraction": pii_section(8, 2)})
    line = next(line for line in text.splitlines() if line.startswith("**PII extraction**"))
    assert "best of 4" in line and "adapter 0.400 of members' spans (8/20) vs 0.100 of non-members' (gap 0.300)" in line
    assert "base 0.000" in line
    assert "555-0143" not in text
    assert "PII extraction" not in render_markdown(full_report)
