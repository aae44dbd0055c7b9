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

from dpaudit.cli.common import (
    BaseOpt, DeviceOpt, DtypeOpt, JsonOpt, OverwriteOpt, QuantizeOpt, RayAddressOpt, SeedOpt, UnitOpt, WorkersOpt, YesOpt, console,
    err_console, print_json, use_placement,
)
from dpaudit.limits import SHADOW_MODELS
from dpaudit.evaluators.defaults import PII_SAMPLES
from dpaudit.evaluators.mia_metrics import DEFAULT_FPRS, fpr_key
from dpaudit.outputs import prepare_output_dir
from dpaudit.scale.device import Placement
from dpaudit.scale.tasks import FanOut


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
            help="Comma list: loss, ref, zlib, mink, minkpp, shadow, lira, lira_offline, rmia, rmia_online, and pii "
            "(PII extraction by generation; only when named) (default: all but pii).",
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
    population: Annotated[
        Path | None,
        typer.Option("--population", help="RMIA's population: known non-members, not candidates. Default: public.jsonl "
                     "beside the card's data file, else its records that are neither members nor non-members."),
    ] = None,
    population_size: Annotated[
        int | None,
        typer.Option("--population-size", min=1, help="Population records RMIA compares with, a seeded subset (default 256).",
                     show_default=False),
    ] = None,
    pii_samples: Annotated[
        int, typer.Option("--pii-samples", min=0, help="n of best-of-n sampling for PII extraction (0: greedy only).")
    ] = PII_SAMPLES,
    lira_fixed_variance: Annotated[
        float | None,
        typer.Option("--lira-fixed-variance", help="σ² of LiRA's signal for every record, instead of one fitted "
                     "from the shadows (needed with fewer than 4 shadows)."),
    ] = None,
    overwrite: OverwriteOpt = False,
    yes: YesOpt = False,
    unit: UnitOpt = "record",
    workers: WorkersOpt = FanOut.workers,
    ray_address: RayAddressOpt = FanOut.ray_address,
    device: DeviceOpt = Placement.device,
    dtype: DtypeOpt = Placement.dtype,
    quantize: QuantizeOpt = Placement.quantize,
    json_out: JsonOpt = False,
    seed: SeedOpt = 0,
) -> None:
    """Membership-inference attacks on an adapter: AUC and TPR at low FPR per attack.

    Example: dpaudit attack --adapter runs/lora --shadows 8 --save-scores runs/lora/scores
    """
    from dpaudit.attacks.client_level import client_level_for
    from dpaudit.attacks.pii import run_pii_extraction, split_pii
    from dpaudit.attacks.shadows import DEFAULT_SHADOWS
    from dpaudit.attacks.suite import DEFAULT_POPULATION, run_attacks
    from dpaudit.io import write_json_atomic
    from dpaudit.models.adapters import read_card
    from dpaudit.models.scoring import DEFAULT_BATCH_SIZE
    from dpaudit.privacy.scores_io import SCORES_MARKER

    SHADOW_MODELS.check(DEFAULT_SHADOWS if shadows is None else shadows, yes=yes)
    fanout = FanOut(workers=workers, ray_address=ray_address)
    use_placement(device, dtype, quantize)
    if save_scores is not None:
        save_scores = prepare_output_dir(save_scores, marker=SCORES_MARKER, overwrite=overwrite, option="--save-scores",
                                         inputs=[p for p in (adapter, members, nonmembers) if isinstance(p, Path)])
    names, want_pii = split_pii(attacks.split(",") if attacks is not None else None)
    pii = None
    if want_pii:
        from dpaudit.evaluators.extraction import ExtractionConfig

        config = ExtractionConfig(samples=pii_samples, seed=seed, batch_size=batch_size or ExtractionConfig.batch_size)
        pii = run_pii_extraction(adapter_dir=adapter, base=base, members=members, nonmembers=nonmembers, config=config)
        if not names:  # `--attacks pii` alone: no membership scores
            if out is not None:
                write_json_atomic(out, {"adapter": str(adapter), "pii_extraction": pii})
            (err_console if json_out else console).print(pii_table(pii))
            if json_out:
                print_json({"adapter": str(adapter), "pii_extraction": pii})
            return
    suite = run_attacks(
        adapter_dir=adapter,
        base=base,
        members=members,
        nonmembers=nonmembers,
        attacks=names,
        population=population,
        population_size=population_size or DEFAULT_POPULATION,
        shadows=DEFAULT_SHADOWS if shadows is None else shadows,
        reference=reference,
        seed=seed,
        save_scores=save_scores,
        attack_options={name: {"fixed_variance": lira_fixed_variance} for name in ("lira", "lira_offline")}
        if lira_fixed_variance is not None else None,
        progress=True,
        batch_size=batch_size or DEFAULT_BATCH_SIZE,
        fanout=fanout,
    )
    result = suite.to_json()
    client_level = client_level_for(ids=suite.ids, scores=suite.scores, card=read_card(adapter), unit=unit, seed=seed)
    if client_level is not None:
        result.update(unit=unit, client_level=client_level)
    if pii is not None:
        result["pii_extraction"] = pii
    if out is not None:
        write_json_atomic(out, result)
    # With --json the table goes to stderr, so that stdout is pure JSON (`| jq` works).
    show = err_console if json_out else console
    show.print(table(result))
    if client_level is not None:
        show.print(table({"adapter": f"{result['adapter']} — client level", "n_members": client_level["labels"].count(1),
                          "n_nonmembers": client_level["labels"].count(0), **client_level}))
    _notes(result, show)
    if pii is not None:
        show.print(pii_table(pii))
    if json_out:
        print_json(result)


def pii_table(section: dict[str, Any]) -> Table:
    """PII extraction: rate [95% CI] for members and non-members, adapter and base, greedy and best-of-n."""
    samples = section["config"]["samples"]
    table = Table(
        title=f"PII extraction ({section['n_targets']['members']} member spans, "
        f"{section['n_targets']['nonmembers']} non-member spans)",
        title_justify="left",
        caption="share of spans whose continuation starts with the value verbatim; gap = members − non-members",
        caption_justify="left",
    )
    for column in ("Model", "Decoding", "Members", "Non-members", "Gap"):
        table.add_column(column, justify="left" if column in {"Model", "Decoding"} else "right")
    for model in ("adapter", "base"):
        for how, label in (("greedy", "greedy"), ("best_of_n", f"best of {samples}")):
            if how == "best_of_n" and not samples:
                continue
            cells = []
            for side in ("members", "nonmembers"):
                r = section[model][side]["overall"][how]
                cells.append("n/a" if r["rate"] is None else f"{r['rate']:.3f} [{r['ci95'][0]:.3f}–{r['ci95'][1]:.3f}]")
            table.add_row(model, label, *cells, _cell(section[model]["gap"][how], "{:+.3f}"))
    return table


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
