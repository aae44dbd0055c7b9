"""`dpaudit audit`: one command that audits any adapter and writes report.json/html/md (issue #7)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dpaudit.cli.common import (
    BaseOpt, DeviceOpt, DtypeOpt, JsonOpt, OverwriteOpt, QuantizeOpt, QuickOpt, RayAddressOpt, SeedOpt, ShadowsOpt, UnitOpt,
    WorkersOpt, YesOpt, console, log_step, print_json, use_placement,
)
from dpaudit.limits import SHADOW_MODELS
from dpaudit.scale.device import Placement
from dpaudit.scale.tasks import FanOut


def audit(
    adapter: Annotated[Path, typer.Option("--adapter", help="Adapter directory (dpaudit train or plain peft).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="Report directory, e.g. reports/NAME (written atomically).", show_default=False)],
    base: BaseOpt = None,
    members: Annotated[Path | None, typer.Option("--members", help="Member records (default: the training card's).")] = None,
    nonmembers: Annotated[Path | None, typer.Option("--nonmembers", help="Non-member records (default: the training card's).")] = None,
    attacks: Annotated[str | None, typer.Option("--attacks", help="Comma list (default: loss,ref,zlib,mink,minkpp,lira); also rmia, rmia_online, pii (PII extraction).")] = None,
    shadows: ShadowsOpt = 8,
    quick: QuickOpt = False,
    delta: Annotated[float | None, typer.Option("--delta", help="δ for the ε numbers (default: the card's, else 1e-5).")] = None,
    confidence: Annotated[float, typer.Option("--confidence", help="Confidence of the empirical ε lower bounds.")] = 0.95,
    show_records: Annotated[
        bool, typer.Option("--show-records", help="Put training-record text in the report (redacted by default: ids only).")
    ] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute attack scores even if cached.")] = False,
    show_pii: Annotated[
        bool, typer.Option("--show-pii", help="Show the PII values the adapter reproduced in report.html (masked by default).")
    ] = False,
    unit: UnitOpt = "record",
    overwrite: OverwriteOpt = False,
    yes: YesOpt = False,
    workers: WorkersOpt = FanOut.workers,
    ray_address: RayAddressOpt = FanOut.ray_address,
    device: DeviceOpt = Placement.device,
    dtype: DtypeOpt = Placement.dtype,
    quantize: QuantizeOpt = Placement.quantize,
    json_out: JsonOpt = False,
    seed: SeedOpt = 0,
) -> None:
    """Attacks, utility, exposure and the ε comparator for one adapter, as one report.

    Example: dpaudit audit --adapter runs/lora --out reports/lora --quick
    """
    from dpaudit.report.audit import DEFAULT_ATTACKS, AuditConfig, audit_adapter

    SHADOW_MODELS.check(0 if quick else shadows, yes=yes)
    fanout = FanOut(workers=workers, ray_address=ray_address)
    use_placement(device, dtype, quantize)
    config = AuditConfig(
        attacks=tuple(a.strip() for a in attacks.split(",") if a.strip()) if attacks else DEFAULT_ATTACKS,
        shadows=shadows,
        quick=quick,
        seed=seed,
        delta=delta,
        confidence=confidence,
        show_records=show_records,
        use_cache=not no_cache,
        show_pii=show_pii,
        unit=unit,
    )
    report = audit_adapter(
        adapter=adapter, out=out, base=base, members=members, nonmembers=nonmembers, config=config,
        progress=not json_out, log=None if json_out else log_step, overwrite=overwrite, fanout=fanout,
    )
    if json_out:
        print_json(report)
        return
    console.print(summary_table(report))
    for line in federated_lines(report):
        console.print(line, highlight=False)
    console.print(f"wrote {out}/report.html, report.json, report.md", highlight=False)


def federated_lines(report: dict) -> list[str]:
    """For a federated adapter: its guarantee in words and the client-level attack's worst case."""
    fed = ((report.get("adapter") or {}).get("card") or {}).get("federated")
    client = report.get("client_level")
    if not fed or not client:
        return []
    guarantee = (
        f"no DP ({fed['mode']} mode): nothing is protected" if fed["mode"] == "none"
        else f"{fed['mode']} DP protects each {fed['unit']} against {fed['against']}"
    )
    worst = client["worst_case"]
    metrics = client["attacks"][worst]
    return [
        f"federated: {guarantee}",
        f"client-level attack: worst {worst}, AUC {metrics['auc']:.3f} over {metrics['n_members']} participating vs "
        f"{metrics['n_nonmembers']} held-out clients; ε compared at the {report['unit']} level",
    ]


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
        name = f"[bold red]{row['name']} ◀[/]" if row["worst"] else row["name"]
        table.add_row(name, f"{row['auc']} {row['auc_ci']}", *row["tprs"])
    table.caption = (
        f"◀ {facts['worst_label']} · highest AUC {facts['auc']} ({facts['auc_attack']}) · ε theory {facts['epsilon_theory']} · ε empirical ≥ {facts['epsilon_empirical']} (δ={facts['delta']}) · "
        f"verdict {facts['verdict']} · ppl held-out {facts['ppl_heldout']} (gap {facts['ppl_gap']}) · "
        f"adherence {facts['adherence']}"
    )
    return table
