"""`dpaudit judge`: score a file of responses against their verifiable instructions (issue #5).

No model is involved: the deterministic checkers of :mod:`dpaudit.evaluators.adherence` decide.
Exit codes: 0 scored; 2 missing or malformed file (the message names file:line and field), or a
file with no constrained prompt to judge (rates would be undefined).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dpaudit.cli.common import JsonOpt, SeedOpt, console, print_json
from dpaudit.evaluators.adherence import JudgeReport, judge_file
from dpaudit.evaluators.adherence.scoring import DEFAULT_BOOTSTRAP
from dpaudit.errors import InputError


def judge(
    responses: Annotated[
        Path,
        typer.Option(
            "--responses",
            help='JSONL, one {"prompt", "constraints", "response"} object per line (optional "id", "reference").',
            show_default=False,
        ),
    ],
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the 95% CIs (0: no CIs).")
    ] = DEFAULT_BOOTSTRAP,
    verdicts: Annotated[
        bool, typer.Option("--verdicts", help="With --json, also print every instruction's strict/loose verdict.")
    ] = False,
    json_out: JsonOpt = False,
    seed: SeedOpt = 0,
) -> None:
    """Score responses for instruction adherence (strict and loose, prompt and instruction level)."""
    with warnings.catch_warnings():  # nothing to judge is an input error below, not a numpy warning
        warnings.simplefilter("ignore", RuntimeWarning)
        report = judge_file(responses, seed=seed, n_bootstrap=bootstrap)
    if not report.adherence.n_prompts:
        skipped = report.adherence.n_unconstrained
        raise InputError(
            f"none of the {skipped} responses has constraints to judge" if skipped else "no responses to judge (empty file)",
            path=responses,
        )
    if json_out:
        print_json(report.to_json(include_verdicts=verdicts))
        return
    for table in _tables(report):
        console.print(table)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _tables(report: JudgeReport) -> list[Table]:
    data = report.adherence.to_json()
    summary = Table(
        title=f"dpaudit judge: {report.source} ({data['n_prompts']} prompts, {data['n_instructions']} instructions"
        + (f", {data['n_unconstrained']} without constraints skipped" if data["n_unconstrained"] else "")
        + ")",
        title_justify="left",
    )
    for column in ("Level", "Strict", "95% CI", "Loose", "95% CI "):
        summary.add_column(column, justify="left" if column == "Level" else "right")
    ci = data["ci95"] or {}
    for level in ("prompt", "instruction"):
        row = [level]
        for mode in ("strict", "loose"):
            key = f"{level}_{mode}"
            lo, hi = ci.get(key, (None, None))
            row += [_pct(data[key]), "" if lo is None else f"[{_pct(lo)}, {_pct(hi)}]"]
        summary.add_row(*row)

    per_type = Table(title="Per instruction type", title_justify="left")
    for column in ("Type", "N", "Strict", "Loose"):
        per_type.add_column(column, justify="left" if column == "Type" else "right")
    for type_id, acc in data["per_type_detail"].items():
        per_type.add_row(type_id, str(acc["n"]), _pct(acc["strict"]), _pct(acc["loose"]))

    side = report.side.to_json()
    side_table = Table(title="Side metrics", title_justify="left")
    side_table.add_column("Metric")
    side_table.add_column("Value", justify="right")
    side_table.add_row("empty responses", _pct(side["empty_rate"]))
    side_table.add_row("distinct-2", "n/a" if side["distinct_2"] is None else f"{side['distinct_2']:.3f}")
    side_table.add_row("length ÷ reference", "n/a" if side["length_ratio"] is None else f"{side['length_ratio']:.2f}")
    side_table.add_row("ROUGE-L F1", "n/a" if side["rouge_l_f1"] is None else f"{side['rouge_l_f1']:.3f}")
    return [summary, per_type, side_table]
