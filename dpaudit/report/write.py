"""Write a report directory: report.json, report.html and report.md, all or nothing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dpaudit.io import atomic_dir
from dpaudit.report.html import redacted, render_html
from dpaudit.report.markdown import render_markdown
from dpaudit.report.schema import REPORT_FILE, to_jsonable, validate_report

HTML_FILE = "report.html"
MARKDOWN_FILE = "report.md"
REPORT_FILES = (REPORT_FILE, HTML_FILE, MARKDOWN_FILE)
"""Everything a report directory holds: a directory with nothing else is an earlier report."""


def write_report(report: Mapping[str, Any], out_dir: str | Path, *, show_records: bool = False,
                 show_pii: bool = False) -> Path:
    """Validate ``report`` and write ``out_dir/{report.json, report.html, report.md}``.

    Everything is built in a temporary directory beside ``out_dir`` that replaces it only when all
    three files are written, so a failure (an invalid report, a plotting error) leaves the previous
    ``out_dir`` untouched, or none at all. Reports are shared with reviewers who must not see the
    training data, so record and canary text is redacted in every file (ids and lengths stay)
    unless ``show_records``, which report.html then states at its top; report.md never shows text.
    Extracted PII values are masked in the HTML unless ``show_pii``.
    """
    report = to_jsonable(report)
    validate_report(report)
    if not show_records:
        report = redacted(report)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
        (tmp / HTML_FILE).write_text(render_html(report, show_records=show_records, show_pii=show_pii), encoding="utf-8")
        (tmp / MARKDOWN_FILE).write_text(render_markdown(report), encoding="utf-8")
    return out_dir
