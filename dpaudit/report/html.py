"""report.html: one self-contained page (CSS inline, figures as PNG data URIs) rendered by jinja2.

Autoescaping is on for every template, so dataset text (which an attacker may control: it is
training data) always renders as text, ``<script>`` included. Record and canary content is masked
before it reaches the template unless ``show_records=True``, and the page says at its top which of
the two it is: an audit is shared with reviewers who must not see the training records. Each kind of
sensitive content has its own masking function and flag (records here, PII values beside them), so
a new section adds one of each.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from dpaudit.report import display as fmt
from dpaudit.report import plots

TEMPLATES = Path(__file__).with_name("templates")
_REDACTED_FIELDS = ("text", "secret", "prefix", "completion")


@functools.cache
def environment() -> jinja2.Environment:
    """The jinja2 environment of every dpaudit page (autoescape on; optional report fields render empty)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["fmt"] = fmt
    return env


def redact_text(text: str) -> str:
    """Mask content but keep its length visible (so a reader still sees which records are long)."""
    return f"[redacted: {len(text)} characters]"


def redacted(report: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``report`` with record texts and canary secrets masked."""
    out = copy.deepcopy(dict(report))
    for record in out.get("most_exposed") or []:
        for field in _REDACTED_FIELDS:
            if isinstance(record.get(field), str):
                record[field] = redact_text(record[field])
    for canary in (out.get("exposure") or {}).get("canaries") or []:
        for field in _REDACTED_FIELDS:
            if isinstance(canary.get(field), str):
                canary[field] = redact_text(canary[field])
    return out


def masked_pii(report: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``report`` whose extracted PII values (``pii_extraction.examples``) are masked."""
    out = copy.deepcopy(dict(report))
    for example in (out.get("pii_extraction") or {}).get("examples") or []:
        example["value"] = redact_text(example["value"])
    return out


def figures(report: Mapping[str, Any]) -> dict[str, str | None]:
    """Every figure of the report page as a data URI (None when there is nothing to plot)."""
    attacks = report.get("attacks") or {}
    utility = report.get("utility") or {}
    return {
        "roc": plots.roc_figure({name: m.get("roc") or {} for name, m in attacks.items()}),
        "histograms": plots.histogram_figure({name: m.get("score_histogram") for name, m in attacks.items()}),
        "epsilon": plots.epsilon_figure(report.get("epsilon")),
        "adherence": plots.adherence_figure(utility.get("adherence")),
    }


def render_html(report: Mapping[str, Any], *, show_records: bool = False, show_pii: bool = False) -> str:
    """The report page as one HTML string (no external resources). Record text is masked unless
    ``show_records``, extracted PII values unless ``show_pii``."""
    if not show_records:
        report = redacted(report)
    if not show_pii:
        report = masked_pii(report)
    fpr_columns, attack_rows = fmt.attack_rows(report)
    card = (report.get("adapter") or {}).get("card")
    return environment().get_template("report.html").render(
        report=report,
        summary=fmt.headline(report),
        fpr_columns=fpr_columns,
        attack_rows=attack_rows,
        figures=figures(report),
        card_json=json.dumps(card, indent=2, sort_keys=True) if card else None,
        redacted=not show_records,
        pii_shown=show_pii,
    )
