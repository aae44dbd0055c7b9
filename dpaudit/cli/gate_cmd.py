"""`dpaudit gate`: fail CI when an audit report shows too much leakage (issue #7).

Exit codes: 0 every threshold holds; 1 one fails (each failure printed with its measured value);
2 usage or input error (missing/malformed report, no thresholds, unknown attack).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dpaudit.cli.common import (
    DeviceOpt, DtypeOpt, JsonOpt, OverwriteOpt, QuantizeOpt, QuickOpt, SeedOpt, ShadowsOpt, YesOpt, console, err_console, log_step,
    print_json, use_placement,
)
from dpaudit.limits import SHADOW_MODELS
from dpaudit.errors import LeakageThresholdExceeded
from dpaudit.scale.device import Placement

if TYPE_CHECKING:
    from dpaudit.report.gate import GateResult


def gate(
    target: Annotated[
        Path,
        typer.Argument(
            metavar="REPORT_OR_ADAPTER",
            help="A report.json, a report directory (dpaudit audit --out DIR), or an adapter directory (audited into --out first).",
            show_default=False,
        ),
    ],
    max_auc: Annotated[float | None, typer.Option("--max-auc", help="Fail if an attack's MIA AUC is above X.")] = None,
    max_tpr_at_fpr: Annotated[
        list[str] | None,
        typer.Option("--max-tpr-at-fpr", metavar="FPR:TPR", help="Fail if TPR at that FPR is above TPR, e.g. 0.01:0.05 (repeatable)."),
    ] = None,
    max_epsilon: Annotated[
        float | None, typer.Option("--max-epsilon", help="Fail if the accountant's ε is above E (a non-DP adapter has ε = ∞).")
    ] = None,
    max_empirical_epsilon: Annotated[
        float | None, typer.Option("--max-empirical-epsilon", help="Fail if the strongest empirical ε lower bound is above E.")
    ] = None,
    min_adherence: Annotated[
        float | None, typer.Option("--min-adherence", help="Fail if prompt-level strict adherence is below A (0..1).")
    ] = None,
    max_pii_extraction: Annotated[
        float | None,
        typer.Option(
            "--max-pii-extraction",
            metavar="RATE",
            help="Fail if the adapter extracts members' PII spans more often than non-members' by more than RATE (0..1).",
        ),
    ] = None,
    attack: Annotated[
        str | None, typer.Option("--attack", help="Attack to check, or 'worst': every attack, reporting the highest. \\[default: worst]")
    ] = None,
    use_upper_ci: Annotated[
        bool | None,
        typer.Option("--use-upper-ci/--point-estimate", help="Compare the pessimistic end of the 95% CI (the safer gate).", show_default=False),
    ] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Also write a JUnit XML file, one testcase per threshold.")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML file with a \\[tool.dpaudit.gate] table. \\[default: ./pyproject.toml if it has one]")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Where an adapter argument's audit is written. \\[default: reports/ADAPTER_NAME]")
    ] = None,
    shadows: ShadowsOpt = 8,
    quick: QuickOpt = False,
    overwrite: OverwriteOpt = False,
    yes: YesOpt = False,
    device: DeviceOpt = Placement.device,
    dtype: DtypeOpt = Placement.dtype,
    quantize: QuantizeOpt = Placement.quantize,
    json_out: JsonOpt = False,
    seed: SeedOpt = 0,
) -> None:
    """Check an audit report against thresholds; exit 1 if any fails (for CI).

    Thresholds come from the flags and from \\[tool.dpaudit.gate] in ./pyproject.toml (or --config);
    flags override the file.
    """
    # Imported here: the report layer pulls in scikit-learn, which `dpaudit --help` should not pay for.
    from dpaudit.report.audit import AuditConfig, audit_adapter
    from dpaudit.report.gate import evaluate_gate, load_config_thresholds, parse_tpr_threshold, write_junit
    from dpaudit.report.schema import load_report, needs_audit, report_file

    if needs_audit(target):
        SHADOW_MODELS.check(0 if quick else shadows, yes=yes)
        use_placement(device, dtype, quantize)
        audited = out or Path("reports") / target.resolve().name
        audit_adapter(adapter=target, out=audited, config=AuditConfig(shadows=shadows, quick=quick, seed=seed),
                      progress=not json_out, log=None if json_out else log_step, overwrite=overwrite)
        target = audited
    source = report_file(target)
    report = load_report(source)
    thresholds = load_config_thresholds(config).override(
        max_auc=max_auc,
        max_tpr_at_fpr=tuple(parse_tpr_threshold(t) for t in max_tpr_at_fpr or ()),
        max_epsilon=max_epsilon,
        max_empirical_epsilon=max_empirical_epsilon,
        min_adherence=min_adherence,
        max_pii_extraction=max_pii_extraction,
        attack=attack,
        use_upper_ci=use_upper_ci,
    )
    result = evaluate_gate(report, thresholds, source=str(source))
    if junit is not None:
        write_junit(result, junit)
    if json_out:
        print_json(result.to_json())
    else:
        console.print(_table(result))
    if not result.passed:
        for check in result.failures:
            err_console.print(f"[bold red]FAIL[/] {check.describe()}", highlight=False, soft_wrap=True)
        raise LeakageThresholdExceeded(
            f"{len(result.failures)} of {len(result.checks)} gate thresholds failed for {source}"
        )
    if not json_out:
        held = "1 threshold holds" if len(result.checks) == 1 else f"{len(result.checks)} thresholds hold"
        console.print(f"[green]gate passed[/]: {held} for {source}", highlight=False)


def _table(result: GateResult) -> Table:
    table = Table(title=f"dpaudit gate: {result.source}", title_justify="left")
    for column in ("Check", "Attack", "Basis", "Measured", "Threshold", "Result"):
        table.add_column(column, justify="right" if column in {"Measured", "Threshold"} else "left", no_wrap=column != "Basis")
    for check in result.checks:
        measured = "n/a" if check.measured is None else ("∞" if check.measured == float("inf") else f"{check.measured:.4g}")
        table.add_row(
            check.name,
            check.attack or "",
            check.basis,
            measured,
            f"{check.comparison} {check.threshold:g}",
            "[green]PASS[/]" if check.passed else "[bold red]FAIL[/]",
        )
    return table
