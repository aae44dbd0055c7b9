"""`dpaudit demo`: synthesize, build the tiny base, train LoRA and DP-LoRA, audit, compare (issue #7)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dpaudit.cli.common import JsonOpt, SeedOpt, console, print_json
from dpaudit.demo import DemoConfig


def demo(
    out: Annotated[Path, typer.Option("--out", help="Reports: OUT/lora, OUT/dp-lora, OUT/compare.html.")] = Path("reports/demo"),
    runs: Annotated[Path, typer.Option("--runs", help="Synthetic data and adapters.")] = Path("runs/demo"),
    n: Annotated[int, typer.Option("--n", help="Private records (half become training members).")] = DemoConfig.n_private,
    epsilon: Annotated[float, typer.Option("--epsilon", help="Target ε of the DP-LoRA adapter.")] = DemoConfig.target_epsilon,
    shadows: Annotated[
        int, typer.Option("--shadows", min=0, help="Shadow adapters for LiRA (0: quick audit, no shadows).")
    ] = DemoConfig.shadows,
    json_out: JsonOpt = False,
    seed: SeedOpt = 0,
) -> None:
    """The main job on the embedded defaults: LoRA vs DP-LoRA, audited and compared.

    Example: dpaudit demo --out reports/demo
    """
    from dpaudit.cli.audit_cmd import summary_table
    from dpaudit.cli.compare_cmd import comparison_table
    from dpaudit.demo import run_demo
    from dpaudit.report.compare import compare_reports

    config = DemoConfig(n_private=n, target_epsilon=epsilon, shadows=shadows, seed=seed)
    result = run_demo(
        out=out, runs=runs, config=config, progress=not json_out,
        log=None if json_out else (lambda m: console.print(f"[bold cyan]›[/] {m}", highlight=False)),
    )
    if json_out:
        print_json({"reports": result.reports, "compare_html": str(result.compare_html)})
        return
    for report in result.reports.values():
        console.print(summary_table(report))
    console.print(comparison_table(compare_reports(list(result.reports.values()), list(result.reports))))
    console.print(f"[bold]open {result.compare_html}[/]", highlight=False)
