"""`dpaudit compare`: audit reports side by side, in the terminal and as compare.html/compare.md (issue #7)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from dpaudit.cli.common import (
    DeviceOpt, DtypeOpt, JsonOpt, OverwriteOpt, QuantizeOpt, QuickOpt, SeedOpt, ShadowsOpt, YesOpt, console, err_console, log_step,
    print_json, use_placement,
)
from dpaudit.limits import SHADOW_MODELS
from dpaudit.errors import InputError
from dpaudit.outputs import prepare_output_dir
from dpaudit.scale.device import Placement

if TYPE_CHECKING:
    from dpaudit.report.audit import AuditConfig
    from dpaudit.report.compare import Comparison

def compare(
    targets: Annotated[
        list[Path],
        typer.Argument(metavar="A B [C ...]", help="Report directories (dpaudit audit --out DIR), report.json files, or adapter directories (audited into --out/LABEL).",
                       show_default=False),
    ],
    out: Annotated[Path | None, typer.Option("--out", help="Write compare.html, compare.md and compare.json here.")] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="Column label for each argument, in order (repeatable). \\[default: directory names]")
    ] = None,
    shadows: ShadowsOpt = 8,
    quick: QuickOpt = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Refuse (exit 2) instead of warning when the reports were built on different data.")
    ] = False,
    overwrite: OverwriteOpt = False,
    yes: YesOpt = False,
    device: DeviceOpt = Placement.device,
    dtype: DtypeOpt = Placement.dtype,
    quantize: QuantizeOpt = Placement.quantize,
    json_out: JsonOpt = False,
    seed: SeedOpt = 0,
) -> None:
    """Compare audit reports (or adapters, audited on the fly): every metric, the difference, and which is better.

    Example: dpaudit compare reports/lora reports/dp-lora --out reports/compare
    """
    # Imported here: the report layer pulls in matplotlib and scikit-learn, which `dpaudit --help` should not pay for.
    from dpaudit.report.audit import AuditConfig
    from dpaudit.report.compare import (
        COMPARE_HTML,
        COMPARE_FILES,
        COMPARE_JSON,
        compare_reports,
        unique_labels,
        write_comparison,
    )
    from dpaudit.report.write import REPORT_FILES

    SHADOW_MODELS.check(0 if quick else shadows, yes=yes)
    use_placement(device, dtype, quantize)  # for adapters audited on the fly
    if len(targets) < 2:
        raise InputError(f"compare needs at least two reports, got {len(targets)}")
    if label and len(label) != len(targets):
        raise InputError(f"got {len(label)} --label values for {len(targets)} reports")
    labels = list(label) if label else unique_labels([_default_label(t) for t in targets])
    if out is not None:  # its own files only; report directories (the compared ones, the audits) may sit beside them
        out = prepare_output_dir(out, marker=COMPARE_JSON, own_files=COMPARE_FILES, overwrite=overwrite,
                                 own_subdirs=REPORT_FILES)
    config = AuditConfig(shadows=shadows, quick=quick, seed=seed)
    reports = [_report_for(target, name=name, out=out, config=config, quiet=json_out, overwrite=overwrite)
               for target, name in zip(targets, labels)]
    comparison = compare_reports(reports, labels, strict=strict)
    for warning in comparison.warnings:
        err_console.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if out is not None:
        write_comparison(comparison, out)
    if json_out:
        print_json(comparison.to_json() | {"out": str(out) if out is not None else None})
        return
    console.print(comparison_table(comparison))
    if out is not None:
        console.print(f"wrote {out / COMPARE_HTML}", highlight=False)


def _default_label(target: Path) -> str:
    path = target.resolve()
    return path.parent.name if path.is_file() else path.name


def _report_for(target: Path, *, name: str, out: Path | None, config: AuditConfig, quiet: bool,
                overwrite: bool) -> dict[str, Any]:
    """Load a report; an adapter directory without one is audited on the fly into ``out/name``."""
    from dpaudit.report.audit import audit_adapter
    from dpaudit.report.schema import load_report, needs_audit

    if not needs_audit(target):
        return load_report(target)
    if out is None:
        raise InputError(f"{target} is an adapter directory: pass --out DIR so that its audit can be written to DIR/{name}")
    return audit_adapter(adapter=target, out=out / name, config=config, progress=not quiet, log=None if quiet else log_step,
                         overwrite=overwrite)


def comparison_table(comparison: Comparison) -> Table:
    first = comparison.labels[0]
    table = Table(title=f"dpaudit compare ({' vs '.join(comparison.labels)}); Δ = difference from {first}", title_justify="left")
    # Columns wrap rather than cut names short ("Bet…") in an 80-column terminal.
    table.add_column("Metric", min_width=22, overflow="fold")
    for label in comparison.labels:
        table.add_column(label, justify="right", overflow="fold")
    for label in comparison.labels[1:]:
        table.add_column(f"Δ {label}", justify="right", overflow="fold")
    table.add_column("Better", overflow="fold")
    section = None
    for row in comparison.rows:
        if row.section != section:
            section = row.section
            table.add_row(f"[bold]{section}[/]", end_section=False)
        arrow = {"lower": " ↓", "higher": " ↑"}.get(row.better or "", "")
        shown = [f"[green]{v}[/]" if row.best == lbl else v for v, lbl in zip(row.shown, comparison.labels)]
        table.add_row(f"  {row.name}{arrow}", *shown, *row.deltas[1:], f"[bold]{row.best}[/]" if row.best else "")
    table.caption = "↓ lower is better · ↑ higher is better"
    return table
