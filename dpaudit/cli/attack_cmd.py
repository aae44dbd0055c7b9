"""`dpaudit attack`: membership-inference attacks on one adapter (issue #4).

One library call (:func:`dpaudit.attacks.suite.run_attacks`), then a table or ``--json``.
Exit codes: 0 attacked; 2 bad input (one line naming the file or option).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dpaudit.cli.common import BaseOpt, JsonOpt, SeedOpt, console, err_console, print_json
from dpaudit.evaluators.mia_metrics import DEFAULT_FPRS, fpr_key


def attack(
    adapter: Annotated[
        Path, typer.Option("--adapter", help="Adapter directory (peft save_pretrained output).", show_default=False)
    ],
    base: BaseOpt = None,
    members: Annotated[
        Path | None,
        typer.Option("--members", help="Member records (any schema dpaudit reads). Default: the training card's members."),
    ] = None,
    nonmembers: Annotated[
        Path | None,
        typer.Option("--nonmembers", help="Non-member records. Default: the training card's non-members."),
    ] = None,
    attacks: Annotated[
        str | None,
        typer.Option(
            "--attacks",
            help="Comma list: loss, ref, zlib, mink, minkpp, shadow, lira, lira_offline (default: all).",
        ),
    ] = None,
    shadows: Annotated[
        int | None,
        typer.Option(
            "--shadows", min=0, help="Shadow adapters K for shadow and LiRA (default 8; 0 skips those attacks).", show_default=False
        ),
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="Reference model for `ref` (any --base spec). Default: the adapter's own base."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the JSON result to this file.")] = None,
    save_scores: Annotated[
        Path | None,
        typer.Option("--save-scores", help="Write <attack>.csv (id,member,score; higher = member) per attack here."),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Records per forward pass (default: the scoring default).")
    ] = None,
    json_out: JsonOpt = False,
    seed: SeedOpt = 0,
) -> None:
    """Membership-inference attacks on an adapter: AUC and TPR at low FPR per attack.

    Example: dpaudit attack --adapter runs/lora --shadows 8 --save-scores runs/lora/scores
    """
    from dpaudit.attacks.shadows import DEFAULT_SHADOWS
    from dpaudit.attacks.suite import run_attacks
    from dpaudit.io import write_json_atomic
    from dpaudit.models.scoring import DEFAULT_BATCH_SIZE

    result = run_attacks(
        adapter_dir=adapter,
        base=base,
        members=members,
        nonmembers=nonmembers,
        attacks=attacks.split(",") if attacks is not None else None,
        shadows=DEFAULT_SHADOWS if shadows is None else shadows,
        reference=reference,
        seed=seed,
        save_scores=save_scores,
        progress=True,
        batch_size=batch_size or DEFAULT_BATCH_SIZE,
    ).to_json()
    if out is not None:
        write_json_atomic(out, result)
    # With --json the table goes to stderr, so that stdout is pure JSON (`| jq` works).
    show = err_console if json_out else console
    show.print(table(result))
    _notes(result, show)
    if json_out:
        print_json(result)


def _cell(value: Any, fmt: str = "{:.3f}") -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


def table(result: dict[str, Any]) -> Table:
    """One row per attack: AUC, its 95% CI, TPR at each target FPR, balanced accuracy; worst case in bold red."""
    table = Table(
        title=f"dpaudit attack: {result['adapter']} ({result['n_members']} members, {result['n_nonmembers']} non-members)",
        title_justify="left",
        caption="TPR@x% = true-positive rate at x% false-positive rate; ◀ worst case (highest TPR@1%, ties by AUC)",
        caption_justify="left",
    )
    table.add_column("Attack", no_wrap=True)
    table.add_column("AUC", justify="right")
    table.add_column("95% CI", justify="right", no_wrap=True)
    for fpr in DEFAULT_FPRS:
        table.add_column(f"TPR@{100 * fpr:g}%", justify="right")
    table.add_column("Bal. acc.", justify="right")
    for name, metrics in result["attacks"].items():
        worst = name == result["worst_case"]
        lo, hi = metrics["auc_ci95"]
        table.add_row(
            name + (" ◀" if worst else ""),
            _cell(metrics["auc"]),
            f"{_cell(lo)}–{_cell(hi)}",
            *(_cell(metrics["tpr_at_fpr"].get(fpr_key(f))) for f in DEFAULT_FPRS),
            _cell(metrics["balanced_accuracy"]),
            style="bold red" if worst else None,
        )
    return table


def _notes(result: dict[str, Any], show: Console) -> None:
    for name, metrics in result["attacks"].items():
        if metrics.get("n_nonfinite"):
            show.print(
                f"[yellow]note:[/] {name}: {metrics['n_nonfinite']} record(s) got a non-finite score "
                "(kept, ranked as least likely members)"
            )
    if result["shadows"]:
        cached = result["shadows"] - result["shadows_trained"]
        show.print(f"shadows: {result['shadows']} ({result['shadows_trained']} trained, {cached} from the cache)")
