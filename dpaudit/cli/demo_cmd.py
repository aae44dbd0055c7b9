"""`dpaudit demo`: synthesize, build the tiny base, train LoRA and DP-LoRA, audit, compare (issue #7)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dpaudit.cli.common import DeviceOpt, DtypeOpt, JsonOpt, OverwriteOpt, QuantizeOpt, SeedOpt, YesOpt, console, print_json, use_placement
from dpaudit.limits import SHADOW_MODELS, SYNTH_RECORDS
from dpaudit.demo import DemoConfig
from dpaudit.interrupts import Interrupted
from dpaudit.scale.device import Placement


def demo(
    out: Annotated[Path, typer.Option("--out", help="Reports: OUT/lora, OUT/dp-lora, OUT/compare.html.")] = Path("reports/demo"),
    runs: Annotated[Path, typer.Option("--runs", help="Synthetic data and adapters.")] = Path("runs/demo"),
    base: Annotated[
        str, typer.Option("--base", help="Base model: tiny (minutes) or smollm2-135m (the real-model recipe, ~30 min on 2 cores).")
    ] = DemoConfig.base,
    n: Annotated[
        int | None,
        typer.Option("--n", help="Private records (half become training members). \\[default: the --base recipe's]",
                     show_default=False),
    ] = None,
    epsilon: Annotated[float, typer.Option("--epsilon", help="Target ε of the DP-LoRA adapter.")] = DemoConfig.target_epsilon,
    shadows: Annotated[
        int, typer.Option("--shadows", min=0, help="Shadow adapters for LiRA (0: quick audit, no shadows).")
    ] = DemoConfig.shadows,
    overwrite: OverwriteOpt = False,
    yes: YesOpt = False,
    device: DeviceOpt = Placement.device,
    dtype: DtypeOpt = Placement.dtype,
    quantize: QuantizeOpt = Placement.quantize,
    json_out: JsonOpt = False,
    seed: SeedOpt = 0,
) -> None:
    """The main job on the embedded defaults: LoRA vs DP-LoRA, audited and compared.

    Example: dpaudit demo --out reports/demo
    """
    from dpaudit.cli.audit_cmd import summary_table
    from dpaudit.cli.compare_cmd import comparison_table
    from dpaudit.demo import RECIPES, run_demo
    from dpaudit.report.compare import compare_reports

    SHADOW_MODELS.check(shadows, yes=yes)
    recipe = RECIPES.get(base, DemoConfig)
    n = recipe.n_private if n is None else n
    SYNTH_RECORDS.check(n, yes=yes)
    use_placement(device, dtype, quantize)
    config = recipe(base=base, n_private=n, target_epsilon=epsilon, shadows=shadows, seed=seed)
    try:
        result = run_demo(
            out=out, runs=runs, config=config, progress=not json_out, overwrite=overwrite,
            log=None if json_out else (lambda m: console.print(f"[bold cyan]›[/] {m}", highlight=False)),
        )
    except Interrupted as exc:
        exc.hint = "the steps already finished are kept; run the same command again to continue"
        raise
    if json_out:
        print_json({"reports": result.reports, "compare_html": str(result.compare_html)})
        return
    for report in result.reports.values():
        console.print(summary_table(report))
    console.print(comparison_table(compare_reports(list(result.reports.values()), list(result.reports))))
    console.print(f"[bold]open {result.compare_html}[/]", highlight=False)
