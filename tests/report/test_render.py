"""HTML and Markdown rendering, and the all-or-nothing report directory."""

from __future__ import annotations

import json
import re

import pytest

import dpaudit.report.write as write_module
from dpaudit.errors import InputError
from dpaudit.report.html import render_html
from dpaudit.report.markdown import render_markdown
from dpaudit.report.write import write_report
from tests.report.reports import mutated

SECRET = "1234-5678"


@pytest.fixture(scope="module")
def full_html(full_report):
    return render_html(full_report, show_records=True)


def test_dataset_text_renders_as_text(full_html):
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in full_html
    assert "<script" not in full_html.lower()  # the page runs no script at all


def test_html_is_self_contained_with_every_figure(full_html):
    images = re.findall(r'<img [^>]*src="([^"]+)"', full_html)
    assert len(images) == 4  # ROC (linear + log-log), histograms, ε, adherence
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(src|href)="https?://', full_html)
    for fact in ("Highest MIA AUC (any attack)", "Worst case (highest TPR at 1% FPR)", "0.895", "no-guarantee", "62.0%", "12.50", "TPR @ 0.1% FPR", "adapter: distinct_2"):
        assert fact in full_html


def test_record_text_is_redacted_by_default_and_shown_only_on_request(full_report, full_html):
    """Issue #11: the page embedded every record's text unless --redact was given."""
    assert SECRET in full_html and "This report shows training-record text" in full_html
    redacted = render_html(full_report)
    assert SECRET not in redacted
    assert "[redacted: " in redacted and "Record content redacted" in redacted
    assert full_report["most_exposed"][0]["id"] in redacted  # records stay identifiable by id
    assert full_report["most_exposed"][0]["text"].startswith("<script>")  # the input is not modified


def test_partial_report_renders(minimal_report):
    html = render_html(minimal_report)
    assert "No ε comparison in this audit." in html
    assert "No utility evaluation in this audit." in html
    assert "Not recorded in this audit." in html


def test_markdown_summary(full_report, dp_report, minimal_report):
    md = render_markdown(full_report)
    assert "| Attack | AUC (95% CI) | TPR@0.1% FPR | TPR@1% FPR | TPR@10% FPR | Bal. acc. |" in md
    assert re.search(r"^\| \*\*ref\*\* \(worst\) \| 0\.895 \[", md, re.MULTILINE)
    assert "verdict: ⚠️ **no-guarantee**" in md and "theory ∞ (not DP)" in md
    assert "adherence (prompt, strict) 62.0%" in md
    assert "<script>" not in md and SECRET not in md  # PR comments are public: no record text
    assert "theory 8.00, prv" in render_markdown(dp_report) and "✅ **consistent**" in render_markdown(dp_report)
    assert "**ε:** not compared in this audit." in render_markdown(minimal_report)


def test_markdown_escapes_pipes_in_attack_names(minimal_report):
    report = mutated(minimal_report, "attacks", {"a|b": minimal_report["attacks"]["loss"]})
    report["worst_case_attack"] = "a|b"
    assert "a\\|b" in render_markdown(report)


def test_write_report_writes_three_files(tmp_path, full_report):
    out = write_report(full_report, tmp_path / "reports" / "lora")
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]
    for name in ("report.html", "report.json", "report.md"):
        assert SECRET not in (out / name).read_text(), name  # redacted everywhere by default
    shown = write_report(full_report, tmp_path / "reports" / "shown", show_records=True)
    assert json.loads((shown / "report.json").read_text()) == full_report  # --show-records keeps the data


def test_write_report_is_all_or_nothing(tmp_path, full_report, minimal_report, monkeypatch):
    out = tmp_path / "reports" / "lora"

    def broken(report):
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(write_module, "render_markdown", broken)
    with pytest.raises(RuntimeError):
        write_report(minimal_report, out)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # no temp dir left behind either
    monkeypatch.undo()

    write_report(minimal_report, out)
    before = (out / "report.json").read_text()
    with pytest.raises(InputError):
        write_report(mutated(full_report, "attacks.loss.auc", "high"), out)
    assert (out / "report.json").read_text() == before  # the previous report survives
