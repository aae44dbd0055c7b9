"""Write a report directory: report.json, report.html and report.md, all or nothing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dpaudit.io import atomic_dir
from dpaudit.report.html import render_html
from dpaudit.report.markdown import render_markdown
from dpaudit.report.schema import REPORT_FILE, to_jsonable, validate_report

HTML_FILE = "report.html"
MARKDOWN_FILE = "report.md"


def write_report(report: Mapping[str, Any], out_dir: str | Path, *, redact: bool = False) -> Path:
    """Validate ``report`` and write ``out_dir/{report.json, report.html, report.md}``.

    Everything is built in a temporary directory beside ``out_dir`` that replaces it only when all
    three files are written, so a failure (an invalid report, a plotting error) leaves the previous
    ``out_dir`` untouched, or none at all. ``redact`` masks record text in the HTML only; report.json
    keeps the data (it is the machine-readable record of the audit) and report.md never shows text.
    """
    report = to_jsonable(report)
    validate_report(report)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
        (tmp / HTML_FILE).write_text(render_html(report, redact=redact), encoding="utf-8")
        (tmp / MARKDOWN_FILE).write_text(render_markdown(report), encoding="utf-8")
    return out_dir
