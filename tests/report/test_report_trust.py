"""Reports say exactly what they measure (issue #11): labels, δ, data fingerprints, confidence, counts."""

from __future__ import annotations

import pytest

from dpaudit.errors import InputError
from dpaudit.report import display as fmt
from dpaudit.report.compare import compare_reports, render_compare_html, render_compare_markdown
from dpaudit.report.html import render_html
from dpaudit.report.markdown import render_markdown
from tests.report.reports import mutated, save_report_json


def _split_worst(report):
    """The worst case by TPR@1% FPR is 'ref', but another attack has the higher AUC (as in the issue: 0.484 vs 0.544)."""
    report = mutated(report, "attacks.zlib.auc", 0.999)
    return mutated(report, "worst_case_attack", "ref")


def test_the_headline_shows_the_highest_auc_as_such(full_report):
    report = _split_worst(full_report)
    facts = fmt.headline(report)
    assert (facts["auc"], facts["auc_attack"]) == ("0.999", "zlib")
    assert facts["worst_attack"] == "ref" and facts["worst_auc"] == fmt.num(report["attacks"]["ref"]["auc"])
    html = render_html(report)
    assert "Highest MIA AUC (any attack)" in html and "Worst case (highest TPR at 1% FPR)" in html
    md = render_markdown(report)
    assert "**Highest AUC:** **0.999**" in md and "(`zlib`)" in md and "Worst case (highest TPR at 1% FPR):** `ref`" in md


def test_compare_uses_the_same_definitions(full_report, dp_report):
    comparison = compare_reports([_split_worst(full_report), dp_report], ["lora", "dp"])
    rows = {r.name: r for r in comparison.rows}
    assert rows["highest AUC (any attack)"].values[0] == 0.999
    assert rows["attack with the highest AUC"].shown[0] == "zlib"
    assert rows["worst case (highest TPR at 1% FPR)"].shown[0] == "ref"
    assert "worst-case AUC" not in rows


def test_compare_shows_delta_per_column(full_report, dp_report):
    comparison = compare_reports([full_report, mutated(dp_report, "epsilon.delta", 1e-4)], ["lora", "dp"])
    (delta,) = [r for r in comparison.rows if r.name.startswith("δ")]
    assert delta.shown == ("1e-05", "0.0001")
    assert "ε empirical lower bound (at that δ)" in render_compare_markdown(comparison)


def test_compare_warns_or_refuses_on_different_data(full_report, cli, tmp_path):
    other = mutated(full_report, "data.members.sha256", "ff" * 32)
    comparison = compare_reports([full_report, other], ["a", "b"])
    assert comparison.warnings == ("the reports were built on different member ids (a vs b): their numbers are not comparable",)
    assert "Warning:" in render_compare_html(comparison) and "⚠️ **Warning:**" in render_compare_markdown(comparison)
    assert compare_reports([full_report, full_report], ["a", "b"]).warnings == ()
    with pytest.raises(InputError, match="different member ids .*--strict"):
        compare_reports([full_report, other], ["a", "b"], strict=True)
    save_report_json(full_report, tmp_path / "a")
    save_report_json(other, tmp_path / "b")
    code, _, err = cli("compare", tmp_path / "a", tmp_path / "b")
    assert code == 0 and "warning: the reports were built on different member ids" in err
    code, _, err = cli("compare", tmp_path / "a", tmp_path / "b", "--strict")
    assert code == 2 and err.strip().startswith("error:") and len(err.strip().splitlines()) == 1


def test_confidence_is_never_rounded_to_100_percent(full_report):
    report = mutated(full_report, "epsilon.empirical", [dict(full_report["epsilon"]["empirical"][0], confidence=0.995)])
    html = render_html(report)
    assert ">99.5%<" in html and ">100%<" not in html
    assert fmt.confidence(0.95) == "95%" and fmt.confidence(0.995) == "99.5%"


def test_counts_print_as_integers():
    assert fmt.flatten({"adapter": {"n": 16, "distinct_2": 0.7}}) == [("adapter: n", "16"), ("adapter: distinct_2", "0.700")]


def test_null_tpr_renders_without_a_number(full_report):
    """Too few non-members for an FPR: TPR is null in report.json, and no page shows a number for it."""
    report = mutated(full_report, "attacks.ref.tpr_at_fpr", {k: None for k in full_report["attacks"]["ref"]["tpr_at_fpr"]})
    _, rows = fmt.attack_rows(report)
    assert not any(t.endswith("%") for t in next(r for r in rows if r["name"] == "ref")["tprs"])
    assert not fmt.headline(report)["tpr"].endswith("%")
    render_html(report)
    render_markdown(report)


def test_the_scatter_y_axis_starts_at_zero():
    from dpaudit.report.plots import utility_limits

    assert utility_limits([0.62, 0.55], rate=True) == (0.0, 1.05)
    low, high = utility_limits([12.50, 12.51], rate=False)
    assert low == 0.0 and high == pytest.approx(1.15 * 12.51)


def test_the_compare_table_wraps_instead_of_cutting_names_at_80_columns(full_report, dp_report):
    from rich.console import Console

    from dpaudit.cli.compare_cmd import comparison_table

    console = Console(width=80, record=True, color_system=None)
    console.print(comparison_table(compare_reports([full_report, dp_report], ["lora-adapter", "dp-lora-adapter"])))
    text = console.export_text()
    assert "…" not in text and "Better" in text


@pytest.mark.parametrize("command", [["train"], ["audit"], ["attack"], ["compare"], ["demo"], ["data", "synth"]])
def test_help_shows_no_type_placeholder_after_flags(cli, command):
    code, out, _ = cli(*command, "--help")
    assert code == 0 and "<bool>" not in out
