"""compare: side-by-side rows, differences, the better column, and the written files."""

from __future__ import annotations

import json
import math

import pytest

from dpaudit.errors import InputError
from dpaudit.report.compare import (
    compare_reports,
    render_compare_markdown,
    unique_labels,
    write_comparison,
)
from tests.report.reports import save_report_json


@pytest.fixture(scope="module")
def comparison(full_report, dp_report):
    return compare_reports([full_report, dp_report], ["lora", "dp-lora"])


def row(comparison, name):
    (found,) = [r for r in comparison.rows if r.name == name]
    return found


def test_better_column(comparison, full_report, dp_report):
    auc = row(comparison, "highest AUC (any attack)")
    assert auc.better == "lower" and auc.best == "dp-lora"
    assert auc.values == tuple(max(a["auc"] for a in r["attacks"].values()) for r in (full_report, dp_report))
    assert auc.deltas[0] == "" and auc.deltas[1] == f"{auc.values[1] - auc.values[0]:+.3f}"
    assert row(comparison, "adherence (prompt, strict)").best == "lora"  # higher is better
    assert row(comparison, "adherence (prompt, strict)").deltas[1] == "-7.0 pp"
    epsilon = row(comparison, "ε (accountant)")
    assert math.isinf(epsilon.values[0]) and epsilon.values[1] == 8.0 and epsilon.best == "dp-lora"
    assert epsilon.shown == ("∞ (not DP)", "8.00")
    assert row(comparison, "perplexity, held-out").best == "tie"
    assert row(comparison, "verdict").shown == ("no-guarantee", "consistent") and row(comparison, "verdict").best == ""


def test_rows_nobody_measured_are_left_out(full_report, minimal_report):
    names = [r.name for r in compare_reports([minimal_report, minimal_report]).rows]
    assert "highest AUC (any attack)" in names and not any("adherence" in n or "ε" in n for n in names)
    mixed = compare_reports([minimal_report, full_report], ["quick", "lora"])
    adherence = row(mixed, "adherence (prompt, strict)")
    assert adherence.shown == ("—", "62.0%") and adherence.deltas == ("", "") and adherence.best == ""


def test_markdown_table(comparison):
    md = render_compare_markdown(comparison)
    assert "| Metric | lora | dp-lora | Δ dp-lora − lora | Better |" in md
    line = next(line for line in md.splitlines() if line.startswith("| highest AUC (any attack) ↓"))
    assert line.rstrip().endswith("| **dp-lora** |")
    line = next(line for line in md.splitlines() if line.startswith("| adherence (prompt, strict) ↑"))
    assert line.rstrip().endswith("| **lora** |")


def test_write_comparison_files(tmp_path, comparison):
    (tmp_path / "lora").mkdir()
    (tmp_path / "lora" / "keep.txt").write_text("the compared report dirs live here too")
    write_comparison(comparison, tmp_path)
    assert (tmp_path / "lora" / "keep.txt").exists()  # the directory is not replaced
    html = (tmp_path / "compare.html").read_text()
    assert html.count('src="data:image/png;base64,') == 2  # overlaid log-log ROC + privacy-utility scatter
    assert "<strong>dp-lora</strong>" in html
    data = json.loads((tmp_path / "compare.json").read_text())
    assert data["labels"] == ["lora", "dp-lora"]
    auc = next(r for r in data["rows"] if r["metric"] == "ε (accountant)")
    assert auc["values"] == ["inf", 8.0]
    assert (tmp_path / "compare.md").read_text() == render_compare_markdown(comparison)


def test_labels():
    assert unique_labels(["lora", "lora", "dp"]) == ["lora", "lora-2", "dp"]
    with pytest.raises(InputError, match="at least two"):
        compare_reports([{}])


def test_compare_cli(cli, tmp_path, full_report, dp_report):
    save_report_json(full_report, tmp_path / "lora")
    save_report_json(dp_report, tmp_path / "dp-lora")
    code, out, err = cli("compare", tmp_path / "lora", tmp_path / "dp-lora", "--out", tmp_path / "cmp", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["labels"] == ["lora", "dp-lora"] and data["out"] == str(tmp_path / "cmp")
    assert (tmp_path / "cmp" / "compare.html").is_file() and (tmp_path / "cmp" / "compare.md").is_file()
    code, out, _ = cli("compare", tmp_path / "lora", tmp_path / "dp-lora", "--label", "A", "--label", "B")
    assert code == 0 and "highest AUC" in out and "Δ B" in out
    adapter = tmp_path / "runs" / "lora"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    code, _, err = cli("compare", tmp_path / "lora", adapter)
    assert code == 2 and "is an adapter directory: pass --out DIR" in err
    assert cli("compare", tmp_path / "lora")[0] == 2
