"""The sweep's outputs, all drawn from one tidy table (one row per cell × seed).

- ``sweep.csv`` and ``sweep.parquet``: every row, every resolved option as a column, every metric;
- ``sweep.md``: one line per cell, mean ± std over seeds, plus the paper's own numbers beside ours
  when the grid carries a ``[paper]`` table (clearly labelled as theirs);
- ``sweep.html``: the same table and the plots the grid's ``[[plot]]`` entries ask for, plus the
  privacy-utility frontier (see :mod:`dpaudit.sweep.plots`), in one self-contained page.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dpaudit.io import write_bytes_atomic, write_text_atomic
from dpaudit.report import display as fmt
from dpaudit.report.markdown import table as markdown_table
from dpaudit.sweep.grid import Grid

CSV_FILE, PARQUET_FILE, MARKDOWN_FILE, HTML_FILE = "sweep.csv", "sweep.parquet", "sweep.md", "sweep.html"
AXIS_PREFIX = "axis:"

# Summary columns: metric → (header, formatter). Arrows say which direction is better.
SUMMARY = {
    "ppl_heldout": ("perplexity, held-out ↓", lambda v: fmt.num(v, 2)),
    "worst_auc": (f"AUC of the {fmt.worst_case_label()} ↓", fmt.num),
    "tpr_at_1%": ("TPR @ 1% FPR ↓", fmt.pct),
    "adherence_strict": ("adherence, strict ↑", fmt.pct),
    "epsilon": ("ε (accountant)", lambda v: fmt.epsilon_text(v).replace(" (not DP)", "")),
    "epsilon_lb": ("ε lower bound (empirical)", lambda v: fmt.num(v, 2)),
    "exposure_bits": ("canary exposure (bits) ↓", lambda v: fmt.num(v, 1)),
    "bytes_sent": ("uploaded, all clients and rounds (MB)", lambda v: fmt.num(v / 1e6, 2)),
}


def write_tables(rows: Sequence[Mapping[str, Any]], *, grid: Grid, out: Path) -> None:
    """Write sweep.csv, sweep.parquet, sweep.md and sweep.html into ``out`` (each atomically)."""
    from dpaudit.sweep.plots import render_html

    write_text_atomic(out / CSV_FILE, to_csv(rows))
    write_bytes_atomic(out / PARQUET_FILE, to_parquet(rows))
    summary = summarise(rows, axes=[a.name for a in grid.axes])
    write_text_atomic(out / MARKDOWN_FILE, render_markdown(summary, grid=grid, n_rows=len(rows)))
    write_text_atomic(out / HTML_FILE, render_html(summary, rows=rows, grid=grid))


def columns_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every key of every row, in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns_of(rows), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def to_parquet(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """The rows as Parquet, one typed column each (bool, int64, float64 or string; None stays null)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays, names = [], columns_of(rows)
    for name in names:
        values = [row.get(name) for row in rows]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, bool) for v in present):
            arrays.append(pa.array(values, type=pa.bool_()))
        elif present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            arrays.append(pa.array(values, type=pa.int64()))
        elif present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
            arrays.append(pa.array([None if v is None else float(v) for v in values], type=pa.float64()))
        else:
            arrays.append(pa.array([None if v is None else str(v) for v in values], type=pa.string()))
    buffer = io.BytesIO()
    pq.write_table(pa.table(arrays, names=names), buffer)
    return buffer.getvalue()


def summarise(rows: Sequence[Mapping[str, Any]], *, axes: Sequence[str]) -> list[dict[str, Any]]:
    """One entry per cell (axis labels), seeds pooled: ``{"labels", "n", "done", "metrics": {m: (mean, std)}, ...}``."""
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(str(row[AXIS_PREFIX + a]) for a in axes), []).append(row)
    out = []
    for labels, members in groups.items():
        done = [r for r in members if r["status"] == "done"]
        metrics = {}
        for metric in (*SUMMARY, "ppl_members", "tpr_at_0.1%", "tpr_at_10%", "adherence_loose", "wall_time_s"):
            values = [float(r[metric]) for r in done if isinstance(r.get(metric), (int, float))]
            metrics[metric] = _mean_std(values)
        out.append({
            "labels": dict(zip(axes, labels)),
            "n": len(members),
            "done": len(done),
            "status": "done" if len(done) == len(members) else ",".join(sorted({r["status"] for r in members} - {"done"})),
            "metrics": metrics,
            "worst_attack": _most_common([r.get("worst_attack") for r in done]),
            "verdict": _most_common([r.get("verdict") for r in done]),
            "errors": sorted({str(r["error"]) for r in members if r.get("error")}),
        })
    return out


def shown(metric: str, stat: tuple[float, float] | None) -> str:
    """``"0.712 ± 0.013"`` (± only with several seeds), ``"—"`` when not measured."""
    show = SUMMARY[metric][1] if metric in SUMMARY else fmt.num
    if stat is None:
        return fmt.MISSING
    mean, std = stat
    if math.isnan(std) or std == 0 or math.isinf(mean):
        return show(mean)
    return f"{show(mean)} ± {show(std)}"


def summary_table(summary: Sequence[Mapping[str, Any]], *, grid: Grid) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the Table-1-style summary, shared by sweep.md and sweep.html."""
    axes = [a.name for a in grid.axes]
    metrics = [m for m in SUMMARY if any(s["metrics"].get(m) is not None for s in summary)]
    header = [*axes, *(SUMMARY[m][0] for m in metrics), "worst attack", "verdict", "seeds"]
    paper = grid.paper or {}
    paper_columns = list(paper.get("columns") or [])
    if paper_columns:
        header += [f"paper (theirs): {c}" for c in paper_columns]
    body = []
    for entry in summary:
        row = [entry["labels"][a] for a in axes]
        if entry["done"]:
            row += [shown(m, entry["metrics"].get(m)) for m in metrics]
        else:
            row += [entry["status"]] * len(metrics)
        row += [entry["worst_attack"] or fmt.MISSING, entry["verdict"] or fmt.MISSING, f"{entry['done']}/{entry['n']}"]
        if paper_columns:
            theirs = (paper.get("rows") or {}).get(entry["labels"].get(paper.get("axis", "")), [])
            row += [str(v) for v in theirs] + [fmt.MISSING] * (len(paper_columns) - len(theirs))
        body.append(row)
    return header, body


def render_markdown(summary: Sequence[Mapping[str, Any]], *, grid: Grid, n_rows: int) -> str:
    header, body = summary_table(summary, grid=grid)
    n_axes = len(grid.axes)
    lines = [f"## dpaudit sweep: {grid.name}" + (" (quick)" if grid.quick else ""), ""]
    if grid.description:
        lines += [grid.description.strip(), ""]
    lines += [markdown_table(header, body, right=range(n_axes, len(header))), ""]
    notes = [f"_{n_rows} cell × seed rows; mean ± std over seeds where there are several. ↓ lower is better, "
             "↑ higher is better. Every row with every option: sweep.csv; plots: sweep.html._"]
    if grid.budget:
        from dpaudit.sweep.budget import budget_section

        budget = budget_section(summary, budget=grid.budget)
        lines += ["### ε needed for a fixed utility", "",
                  markdown_table(budget["header"], budget["body"], right=range(budget["n_axes"], len(budget["header"]))),
                  "", f"_{budget['note']}_", ""]
    if grid.paper and grid.paper.get("note"):
        notes.append(f"_Paper columns: {grid.paper['note'].strip()}_")
    failed = [e for s in summary for e in s["errors"]]
    if failed:
        notes.append(f"_{len(failed)} failed cell(s); `dpaudit sweep status DIR` lists their errors._")
    return "\n".join(lines + notes) + "\n"


def _mean_std(values: list[float]) -> tuple[float, float] | None:
    if not values:
        return None
    if any(math.isinf(v) for v in values):
        return (values[0], math.nan) if len(set(values)) == 1 else (math.nan, math.nan)
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def _most_common(values: list[Any]) -> str | None:
    present = [str(v) for v in values if v is not None]
    return max(sorted(set(present)), key=present.count) if present else None
