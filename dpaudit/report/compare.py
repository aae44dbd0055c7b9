"""Compare audit reports side by side: every metric, its difference from the first, and which is better.

Direction of "better" is a property of the metric, declared once in :data:`METRICS`: lower is better
for leakage (AUC, TPR, ε, exposure) and for perplexity; higher is better for adherence. The headline
use is LoRA vs DP-LoRA on the same members: how much privacy did DP buy, and what did it cost?

Numbers are only comparable on the same data: :func:`compare_reports` warns (or, with ``strict``,
refuses) when the reports' data fingerprints (member ids, non-member ids, data file) differ, and
the ε rows show each column's δ, since empirical ε at different δ are different quantities.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpaudit.errors import InputError
from dpaudit.evaluators.mia_metrics import WORST_CASE_FPR, fpr_key
from dpaudit.io import write_text_atomic
from dpaudit.report import display as fmt
from dpaudit.report import plots
from dpaudit.report.html import environment
from dpaudit.report.markdown import table

COMPARE_HTML = "compare.html"
COMPARE_MARKDOWN = "compare.md"
COMPARE_JSON = "compare.json"
COMPARE_FILES = (COMPARE_HTML, COMPARE_MARKDOWN, COMPARE_JSON)
LOWER, HIGHER = "lower", "higher"


@dataclass(frozen=True)
class Kind:
    """How a kind of number is shown and differenced."""

    show: Callable[[Any], str]
    delta: Callable[[float], str]


def _signed(digits: int) -> Callable[[float], str]:
    return lambda d: "∞" if d == math.inf else "-∞" if d == -math.inf else f"{d:+.{digits}f}"


KINDS = {
    "auc": Kind(fmt.num, _signed(3)),
    "rate": Kind(fmt.pct, lambda d: f"{100 * d:+.1f} pp"),
    "epsilon": Kind(fmt.epsilon_text, _signed(2)),
    "ppl": Kind(lambda v: fmt.num(v, 2), _signed(2)),
    "bits": Kind(lambda v: fmt.num(v, 1), _signed(1)),
    "text": Kind(lambda v: fmt.MISSING if v is None else str(v), lambda d: ""),
    "delta": Kind(lambda v: f"{v:g}" if fmt.is_number(v) else fmt.MISSING, lambda d: ""),
}
FINGERPRINTS = (("member ids", ("members", "sha256")), ("non-member ids", ("nonmembers", "sha256")),
                ("data file", ("data_sha256",)))
"""What must match for two reports to measure the same thing: (name, path under ``report["data"]``)."""


@dataclass(frozen=True)
class MetricSpec:
    section: str
    name: str
    kind: str
    better: str | None  # LOWER, HIGHER, or None (not ranked)
    read: Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class MetricRow:
    """One metric across reports. ``deltas[i]`` is report i minus the first ("" for the first)."""

    section: str
    name: str
    better: str | None
    values: tuple[Any, ...]
    shown: tuple[str, ...]
    deltas: tuple[str, ...]
    best: str  # label of the best report, "tie", or "" when not ranked


@dataclass(frozen=True)
class Comparison:
    labels: tuple[str, ...]
    reports: tuple[Mapping[str, Any], ...]
    rows: tuple[MetricRow, ...]
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "adapters": [(r.get("adapter") or {}).get("path") for r in self.reports],
            "warnings": list(self.warnings),
            "rows": [
                {"section": r.section, "metric": r.name, "better": r.better, "best": r.best,
                 "values": [_json_number(v) for v in r.values], "shown": list(r.shown), "deltas": list(r.deltas)}
                for r in self.rows
            ],
        }


def data_mismatches(reports: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> list[str]:
    """One sentence per data fingerprint that differs between reports (none known counts as equal)."""
    problems = []
    for name, path in FINGERPRINTS:
        values = []
        for report in reports:
            node: Any = report.get("data") or {}
            for key in path:
                node = (node or {}).get(key) if isinstance(node, Mapping) else None
            values.append(node)
        known = {v for v in values if v is not None}
        if len(known) > 1:
            groups: dict[Any, list[str]] = {}
            for value, label in zip(values, labels):
                groups.setdefault(value, []).append(label)
            shown = " vs ".join(", ".join(group) for group in groups.values())
            problems.append(f"the reports were built on different {name} ({shown}): their numbers are not comparable")
    return problems


def _worst(report: Mapping[str, Any]) -> Mapping[str, Any]:
    return (report.get("attacks") or {}).get(report.get("worst_case_attack")) or {}


def _tpr(metrics: Mapping[str, Any], key: str) -> Any:
    return (metrics.get("tpr_at_fpr") or {}).get(key)


def _utility(report: Mapping[str, Any], *path: str) -> Any:
    node: Any = report.get("utility") or {}
    for key in path:
        node = (node or {}).get(key)
    return node


def metric_specs(reports: Sequence[Mapping[str, Any]]) -> list[MetricSpec]:
    """Every metric worth a row, given the attacks, FPRs and repeat counts these reports hold."""
    attacks = sorted({name for r in reports for name in (r.get("attacks") or {})})
    keys = sorted({k for r in reports for k in fmt.fpr_keys(r.get("attacks") or {})}, key=float)
    repeats = sorted({k for r in reports for k in ((r.get("exposure") or {}).get("per_repeat") or {})}, key=_repeat_order)
    specs = [
        MetricSpec("Adapter", "method", "text", None, fmt.method),
        MetricSpec("Privacy", "highest AUC (any attack)", "auc", LOWER, lambda r: fmt.highest_auc(r)[1].get("auc")),
        MetricSpec("Privacy", "attack with the highest AUC", "text", None, lambda r: fmt.highest_auc(r)[0]),
        MetricSpec("Privacy", fmt.worst_case_label(), "text", None, lambda r: r.get("worst_case_attack")),
    ]
    specs += [MetricSpec("Privacy", f"worst case: TPR @ {fmt.fpr_label(k)} FPR", "rate", LOWER, lambda r, k=k: _tpr(_worst(r), k))
              for k in keys]
    worst_key = fpr_key(WORST_CASE_FPR)
    for name in attacks:
        specs.append(MetricSpec("Attacks", f"{name}: AUC", "auc", LOWER, lambda r, n=name: ((r.get("attacks") or {}).get(n) or {}).get("auc")))
        specs.append(MetricSpec("Attacks", f"{name}: TPR @ {fmt.fpr_label(worst_key)} FPR", "rate", LOWER,
                                lambda r, n=name: _tpr((r.get("attacks") or {}).get(n) or {}, worst_key)))
    specs += [
        MetricSpec("ε", "ε (accountant)", "epsilon", LOWER, fmt.theory_epsilon),
        MetricSpec("ε", "δ (of the empirical ε)", "delta", None, lambda r: (r.get("epsilon") or {}).get("delta")),
        MetricSpec("ε", "ε empirical lower bound (at that δ)", "epsilon", LOWER,
                   lambda r: (fmt.strongest_empirical(r) or {}).get("epsilon_lb")),
        MetricSpec("ε", "verdict", "text", None, lambda r: (r.get("epsilon") or {}).get("verdict")),
    ]
    for key, label in (("prompt_strict", "prompt, strict"), ("prompt_loose", "prompt, loose"),
                       ("instruction_strict", "instruction, strict"), ("instruction_loose", "instruction, loose")):
        specs.append(MetricSpec("Utility", f"adherence ({label})", "rate", HIGHER,
                                lambda r, k=key: _utility(r, "adherence", "adapter", k)))
    specs += [
        MetricSpec("Utility", "perplexity, held-out", "ppl", LOWER, lambda r: _utility(r, "perplexity", "heldout")),
        MetricSpec("Utility", "perplexity, members", "ppl", LOWER, lambda r: _utility(r, "perplexity", "member")),
        MetricSpec("Utility", "perplexity gap (held-out ÷ members)", "ppl", LOWER, lambda r: _utility(r, "perplexity", "gap")),
    ]
    specs += [MetricSpec("Exposure", f"canary exposure, {k}× in training (bits)", "bits", LOWER,
                         lambda r, k=k: ((r.get("exposure") or {}).get("per_repeat") or {}).get(k)) for k in repeats]
    return specs


def compare_reports(reports: Sequence[Mapping[str, Any]], labels: Sequence[str] | None = None, *,
                    strict: bool = False) -> Comparison:
    """Side-by-side rows of every metric any report holds (rows nobody measured are left out).

    Reports built on different data are compared with a warning in :attr:`Comparison.warnings`;
    ``strict`` turns that warning into an :class:`InputError`.
    """
    if len(reports) < 2:
        raise InputError(f"compare needs at least two reports, got {len(reports)}")
    labels = list(labels) if labels is not None else unique_labels([fmt.adapter_label(r) for r in reports])
    if len(labels) != len(reports):
        raise InputError(f"got {len(labels)} labels for {len(reports)} reports")
    warnings = data_mismatches(reports, labels)
    if strict and warnings:
        raise InputError(f"{warnings[0]} (--strict)")
    rows = []
    for spec in metric_specs(reports):
        values = tuple(spec.read(r) for r in reports)
        if all(v is None for v in values):
            continue
        kind = KINDS[spec.kind]
        rows.append(MetricRow(
            section=spec.section,
            name=spec.name,
            better=spec.better,
            values=values,
            shown=tuple(kind.show(v) for v in values),
            deltas=tuple("" if i == 0 else _delta(values[0], v, kind) for i, v in enumerate(values)),
            best=_best(values, labels, spec.better),
        ))
    return Comparison(labels=tuple(labels), reports=tuple(reports), rows=tuple(rows), warnings=tuple(warnings))


def unique_labels(labels: Sequence[str]) -> list[str]:
    """``["lora", "lora"] -> ["lora", "lora-2"]``: the columns must be told apart."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label}-{seen[label]}")
    return out


def _ranked(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _delta(first: Any, value: Any, kind: Kind) -> str:
    if not (_ranked(first) and _ranked(value)):
        return ""
    difference = value - first
    return "" if math.isnan(difference) else kind.delta(difference)


def _best(values: Sequence[Any], labels: Sequence[str], better: str | None) -> str:
    ranked = [(v, label) for v, label in zip(values, labels) if _ranked(v)]
    if better is None or len(ranked) < 2:
        return ""
    target = min(v for v, _ in ranked) if better == LOWER else max(v for v, _ in ranked)
    winners = [label for v, label in ranked if v == target]
    return winners[0] if len(winners) == 1 else "tie"


def _repeat_order(key: str) -> tuple[float, str]:
    try:
        return float(key), key
    except ValueError:
        return math.inf, key


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


# --------------------------------------------------------------------------- rendering


def point_label(report: Mapping[str, Any], label: str) -> str:
    """``"dp (dp-lora, ε=8.00)"`` for the scatter."""
    return f"{label} ({fmt.method(report) or '?'}, ε={fmt.epsilon_text(fmt.theory_epsilon(report)).replace(' (not DP)', '')})"


def comparison_figures(comparison: Comparison) -> dict[str, Any]:
    """The overlaid log-log ROC of each report's worst-case attack and the privacy-utility scatter."""
    curves = {
        f"{label} ({report.get('worst_case_attack')})": _worst(report).get("roc") or {}
        for label, report in zip(comparison.labels, comparison.reports)
    }
    has_adherence = any(_utility(r, "adherence", "adapter", "prompt_strict") is not None for r in comparison.reports)
    if has_adherence:
        utility_label, read = "adherence (prompt, strict)", lambda r: _utility(r, "adherence", "adapter", "prompt_strict")
    else:
        utility_label, read = "held-out perplexity (lower is better)", lambda r: _utility(r, "perplexity", "heldout")
    points = [
        plots.TradeoffPoint(point_label(report, label), fmt.highest_auc(report)[1].get("auc"), read(report))
        for label, report in zip(comparison.labels, comparison.reports)
    ]
    return {
        "roc": plots.roc_loglog_figure(curves),
        "tradeoff": plots.privacy_utility_figure(points, utility_label=utility_label, rate=has_adherence),
        "tradeoff_axis": utility_label,
    }


def render_compare_markdown(comparison: Comparison) -> str:
    """A Markdown table: metric, each report, its difference from the first, and the better one."""
    first = comparison.labels[0]
    header = ["Metric", *comparison.labels, *[f"Δ {label} − {first}" for label in comparison.labels[1:]], "Better"]
    body = []
    for row in comparison.rows:
        direction = {LOWER: " ↓", HIGHER: " ↑"}.get(row.better or "", "")
        best = f"**{row.best}**" if row.best and row.best != "tie" else row.best
        body.append([f"{row.name}{direction}", *row.shown, *row.deltas[1:], best])
    numeric = range(1, len(header) - 1)
    title = " vs ".join(comparison.labels)
    warnings = [f"> ⚠️ **Warning:** {w}" for w in comparison.warnings]
    return "\n".join([f"## dpaudit compare: {title}", "", *warnings, *([""] if warnings else []),
                      table(header, body, right=numeric), "",
                      "_↓ lower is better, ↑ higher is better. Δ: difference from the first column (pp = percentage points). "
                      "Full comparison with the overlaid ROC and the privacy-utility plot: compare.html._", ""])


def render_compare_html(comparison: Comparison) -> str:
    """compare.html: the side-by-side table and both figures, in one self-contained page."""
    sections: dict[str, list[MetricRow]] = {}
    for row in comparison.rows:
        sections.setdefault(row.section, []).append(row)
    return environment().get_template("compare.html").render(
        comparison=comparison,
        sections=sections,
        figures=comparison_figures(comparison),
        summaries=[fmt.headline(r) | {"label": label} for label, r in zip(comparison.labels, comparison.reports)],
    )


def write_comparison(comparison: Comparison, out_dir: str | Path) -> Path:
    """Write compare.html, compare.md and compare.json into ``out_dir``.

    Everything is rendered before anything is written, and each file is replaced atomically. The
    directory itself is not replaced: it often holds the compared report directories too
    (``reports/demo/{lora,dp-lora}``).
    """
    out_dir = Path(out_dir)
    outputs = {
        COMPARE_HTML: render_compare_html(comparison),
        COMPARE_MARKDOWN: render_compare_markdown(comparison),
        COMPARE_JSON: json.dumps(comparison.to_json(), indent=2, sort_keys=True, allow_nan=False) + "\n",
    }
    for name, text in outputs.items():
        write_text_atomic(out_dir / name, text)
    return out_dir
