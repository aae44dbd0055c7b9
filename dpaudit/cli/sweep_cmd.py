"""`dpaudit sweep` (issue #13): the paper's experiments as declarative, cached, resumable grids.

``dpaudit sweep --preset table1 --quick --out sweeps/t1`` runs a shipped grid; ``--grid FILE`` runs
your own (start from ``--print-preset NAME``); ``presets`` lists the shipped ones and ``status DIR``
lists a sweep's cells. Exit code 1 when any cell failed (the others still ran and were written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dpaudit.cli.common import JsonOpt, RayAddressOpt, WorkersOpt, console, log_step, print_json
from dpaudit.cli.train_cmd import _int_list
from dpaudit.errors import ConfigError

app = typer.Typer(
    help="Run a grid of train-then-audit cells (the paper's Table 1 and studies as presets).",
    invoke_without_command=True,
    no_args_is_help=False,
)


def _seeds(text: str | None, seed: int | None) -> tuple[int, ...] | None:
    if text is not None and seed is not None:
        raise ConfigError("give --seeds or --seed, not both")
    if seed is not None:
        return (seed,)
    seeds = _int_list(text, "--seeds")
    if seeds is None:
        return None
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"`--seeds` repeats a seed: {text!r}")
    return seeds


@app.callback()
def sweep(
    ctx: typer.Context,
    preset: Annotated[str | None, typer.Option("--preset", help="A shipped grid: table1, epsilon, sampling, diversity, rank, clipping.")] = None,
    grid: Annotated[Path | None, typer.Option("--grid", help="Your own grid TOML file (see --print-preset).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="The grid's [quick] size: minutes on the tiny base.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Sweep directory (default sweeps/NAME); rerunning resumes it.")] = None,
    seeds: Annotated[str | None, typer.Option("--seeds", help="Comma list of seeds; every cell runs once per seed.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="One seed (same as --seeds N).")] = None,
    workers: WorkersOpt = 1,
    ray_address: RayAddressOpt = None,
    print_preset: Annotated[str | None, typer.Option("--print-preset", help="Print a preset's TOML (to edit and pass to --grid) and exit.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a sweep. Example: dpaudit sweep --preset table1 --quick --out sweeps/t1 --workers 2"""
    if ctx.invoked_subcommand is not None:
        return
    from dpaudit.sweep.grid import load_grid
    from dpaudit.sweep.presets import load_preset, preset_text

    if print_preset is not None:
        typer.echo(preset_text(print_preset), nl=False)
        return
    if (preset is None) == (grid is None):
        raise ConfigError("give exactly one of --preset NAME and --grid FILE (`dpaudit sweep presets` lists the presets)")
    from dpaudit.scale.tasks import FanOut
    from dpaudit.sweep.runner import run_sweep

    loaded = load_preset(preset, quick=quick) if preset is not None else load_grid(grid, quick=quick)
    fanout = FanOut(workers=workers, ray_address=ray_address)  # validated before any work
    target = out or Path("sweeps") / (loaded.name + ("-quick" if quick else ""))
    outcome = run_sweep(loaded, target, seeds=_seeds(seeds, seed), fanout=fanout, progress=not json_out,
                        log=None if json_out else log_step)
    if json_out:
        print_json({"out": outcome.out, "cells": outcome.planned, "reused": outcome.reused, "ran": outcome.ran,
                    "failed": [{"cell": c, "error": e} for c, e in outcome.failed], "rows": outcome.rows})
    else:
        _print_summary(outcome.out)
        console.print(f"[dim]{outcome.planned} cells: {outcome.reused} reused, {outcome.ran} run, "
                      f"{len(outcome.failed)} failed · {outcome.out}/sweep.md, sweep.html, sweep.csv[/]", highlight=False)
        for cell, error in outcome.failed:
            console.print(f"[red]failed[/] {cell}: {error}", highlight=False)
    if outcome.failed:
        raise typer.Exit(1)


def _print_summary(out: Path) -> None:
    """The sweep.md table, as a rich table on the terminal."""
    lines = [line for line in (out / "sweep.md").read_text(encoding="utf-8").splitlines() if line.startswith("|")]
    if len(lines) < 2:
        return
    cells = [[c.strip().replace("\\|", "|") for c in line.strip("|").split(" | ")] for line in lines]
    table = Table(show_lines=False)
    for header in cells[0]:
        table.add_column(header, overflow="fold")
    for row in cells[2:]:
        table.add_row(*row)
    console.print(table)


@app.command("presets")
def presets(json_out: JsonOpt = False) -> None:
    """List the shipped presets with their cell counts (full and --quick)."""
    from dpaudit.sweep.presets import load_preset, preset_names

    rows = []
    for name in preset_names():
        full, quick = load_preset(name), load_preset(name, quick=True)
        rows.append({"name": name, "cells": len(full.cells()) * len(full.seeds),
                     "quick_cells": len(quick.cells()) * len(quick.seeds), "description": full.description})
    if json_out:
        print_json(rows)
        return
    table = Table("preset", "cells", "--quick", "what it reproduces")
    for row in rows:
        table.add_row(row["name"], str(row["cells"]), str(row["quick_cells"]), row["description"])
    console.print(table)


@app.command("status")
def status(
    sweep_dir: Annotated[Path, typer.Argument(help="A sweep directory (its --out).")],
    json_out: JsonOpt = False,
) -> None:
    """Cells done, pending and failed (with their errors). Exit 1 if any failed."""
    from dpaudit.sweep.runner import sweep_status

    rows = sweep_status(sweep_dir)
    if json_out:
        print_json(rows)
    else:
        table = Table("cell", "seed", "labels", "status", "error")
        for row in rows:
            style = {"done": "green", "failed": "red"}.get(row["status"], "yellow")
            table.add_row(row["cell"], str(row["seed"]), ", ".join(f"{k}={v}" for k, v in row["labels"].items()),
                          f"[{style}]{row['status']}[/]", row["error"] or "")
        console.print(table)
        counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "pending", "failed")}
        console.print(f"{counts['done']} done, {counts['pending']} pending, {counts['failed']} failed", highlight=False)
    if any(r["status"] == "failed" for r in rows):
        raise typer.Exit(1)
