"""`dpaudit audit`: one command that audits any adapter and writes report.json/html/md (issue #7)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dpaudit.cli.common import BaseOpt, JsonOpt, QuickOpt, SeedOpt, ShadowsOpt, console, log_step, print_json


def audit(
    adapter: Annotated[Path, typer.Option("--adapter", help="Adapter directory (dpaudit train or plain peft).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="Report directory, e.g. reports/NAME (written atomically).", show_default=False)],
    base: BaseOpt = None,
    members: Annotated[Path | None, typer.Option("--members", help="Member records (default: the training card's).")] = None,
    nonmembers: Annotated[Path | None, typer.Option("--nonmembers", help="Non-member records (default: the training card's).")] = None,
    attacks: Annotated[str | None, typer.Option("--attacks", help="Comma list (default: loss,ref,zlib,mink,minkpp,lira).")] = None,
    shadows: ShadowsOpt = 8,
    quick: QuickOpt = False,
    delta: Annotated[float | None, typer.Option("--delta", help="δ for the ε numbers (default: the card's, else 1e-5).")] = None,
    confidence: Annotated[float, typer.Option("--confidence", help="Confidence of the empirical ε lower bounds.")] = 0.95,
    redact: Annotated[bool, typer.Option("--redact", help="Mask record text in report.html.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute attack scores even if cached.")] = False,
    json_out: JsonOpt = False,
    seed: SeedOpt = 0,
) -> None:
    """Attacks, utility, exposure and the ε comparator for one adapter, as one report.

    Example: dpaudit audit --adapter runs/lora --out reports/lora --quick
    """
    from dpaudit.report.audit import DEFAULT_ATTACKS, AuditConfig, audit_adapter

    config = AuditConfig(
        attacks=tuple(a.strip() for a in attacks.split(",") if a.strip()) if attacks else DEFAULT_ATTACKS,
        shadows=shadows,
        quick=quick,
        seed=seed,
        delta=delta,
        confidence=confidence,
        redact=redact,
        use_cache=not no_cache,
    )
    report = audit_adapter(
        adapter=adapter, out=out, base=base, members=members, nonmembers=nonmembers, config=config,
        progress=not json_out, log=None if json_out else log_step,
    )
    if json_out:
        print_json(report)
        return
    console.print(summary_table(report))
    console.print(f"wrote {out}/report.html, report.json, report.md", highlight=False)


def summary_table(report: dict) -> Table:
    """Attack rows plus the headline facts (ε, verdict, utility) of one report."""
    from dpaudit.report.display import attack_rows, headline

    facts = headline(report)
    fpr_labels, rows = attack_rows(report)
    table = Table(title=f"dpaudit audit: {facts['adapter']} ({facts['method']})", title_justify="left")
    table.add_column("attack")
    table.add_column("AUC [95% CI]", justify="right")
    for label in fpr_labels:
        table.add_column(f"TPR@{label}", justify="right")
    for row in rows:
        name = f"[bold red]{row['name']} (worst)[/]" if row["worst"] else row["name"]
        table.add_row(name, f"{row['auc']} {row['auc_ci']}", *row["tprs"])
    table.caption = (
        f"ε theory {facts['epsilon_theory']} · ε empirical ≥ {facts['epsilon_empirical']} (δ={facts['delta']}) · "
        f"verdict {facts['verdict']} · ppl held-out {facts['ppl_heldout']} (gap {facts['ppl_gap']}) · "
        f"adherence {facts['adherence']}"
    )
    return table
