"""`dpaudit eval`: utility and canary exposure of one adapter (issue #5).

Perplexity always; instruction adherence with ``--adherence`` (``--augment`` and ``--judge-model``
imply it); canary exposure with ``--exposure``. One library call
(:func:`dpaudit.evaluators.suite.evaluate`), then tables or ``--json``.
Exit codes: 0 evaluated; 2 bad input (one line naming the file or option).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from dpaudit.cli.common import (
    BaseOpt, DeviceOpt, DtypeOpt, JsonOpt, QuantizeOpt, SeedOpt, console, err_console, print_json, use_placement,
)
from dpaudit.evaluators import defaults
from dpaudit.scale.device import Placement


def evaluate(
    adapter: Annotated[
        Path, typer.Option("--adapter", help="Adapter directory (peft save_pretrained output).", show_default=False)
    ],
    base: BaseOpt = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Held-out records (any schema dpaudit reads). Default: the adapter's non-members."),
    ] = None,
    adherence: Annotated[
        bool, typer.Option("--adherence", help="Generate with the adapter and the bare base; judge instruction adherence.")
    ] = False,
    augment: Annotated[
        bool,
        typer.Option("--augment", help="Add sampled verifiable instructions to prompts that have none (implies --adherence)."),
    ] = False,
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", help="Greedy decoding stops at end-of-turn or after this many tokens.")
    ] = defaults.MAX_NEW_TOKENS,
    limit: Annotated[
        int, typer.Option("--limit", help="Prompts to generate for (a seeded subset).")
    ] = defaults.ADHERENCE_LIMIT,
    judge_model: Annotated[
        str | None,
        typer.Option(
            "--judge-model",
            help="Also judge with a model answering YES/NO checklist questions (any --base spec; implies --adherence).",
        ),
    ] = None,
    exposure: Annotated[
        bool, typer.Option("--exposure", help="Canary exposure (Secret Sharer), per number of insertions.")
    ] = False,
    canaries: Annotated[
        Path | None, typer.Option("--canaries", help="canaries.jsonl (default: the file named by the training card).")
    ] = None,
    exposure_samples: Annotated[
        int, typer.Option("--exposure-samples", help="Random candidates per canary when |R| is too large to enumerate.")
    ] = defaults.EXPOSURE_SAMPLES,
    enumerate_limit: Annotated[
        int, typer.Option("--enumerate-limit", help="Score every candidate when |R| is at most this.")
    ] = defaults.EXPOSURE_ENUMERATE_LIMIT,
    max_length: Annotated[
        int | None, typer.Option("--max-length", help="Tokens per record (default: the training max_length).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Records per forward pass (default: the scoring default).")
    ] = None,
    device: DeviceOpt = Placement.device,
    dtype: DtypeOpt = Placement.dtype,
    quantize: QuantizeOpt = Placement.quantize,
    json_out: JsonOpt = False,
    seed: SeedOpt = 0,
) -> None:
    """Perplexity, instruction adherence and canary exposure of an adapter (vs its bare base)."""
    from dpaudit.evaluators.suite import evaluate as run_evaluation

    use_placement(device, dtype, quantize)

    with _status(enabled=not json_out) as log:
        result = run_evaluation(
            adapter,
            base=base,
            data=data,
            adherence=adherence,
            augment=augment,
            max_new_tokens=max_new_tokens,
            limit=limit,
            judge_model=judge_model,
            exposure=exposure,
            canaries=canaries,
            exposure_samples=exposure_samples,
            enumerate_limit=enumerate_limit,
            max_length=max_length,
            batch_size=batch_size,
            seed=seed,
            log=log,
        )
    if json_out:
        print_json(result)
        return
    for table in tables(result):
        console.print(table)


@contextlib.contextmanager
def _status(*, enabled: bool):
    """A transient spinner on stderr whose text follows the evaluation's stages."""
    if not enabled:
        yield None
        return
    with err_console.status("evaluating") as status:
        yield lambda message: status.update(message)


# --------------------------------------------------------------------------- rendering


def _num(x: Any, fmt: str = "{:.3f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def tables(result: dict[str, Any]) -> list[Table]:
    """Rich tables for a result of :func:`dpaudit.evaluators.suite.evaluate`."""
    out = [_perplexity_table(result)]
    adherence = result["utility"]["adherence"]
    if adherence is not None:
        out.append(_adherence_table(adherence))
        out.append(_side_table(result["utility"]["side_metrics"]))
        if adherence.get("model_judge"):
            out.append(_judge_table(adherence["model_judge"]))
    if result["exposure"] is not None:
        out.append(_exposure_table(result["exposure"]))
    return out


def _perplexity_table(result: dict[str, Any]) -> Table:
    ppl = result["utility"]["perplexity"]
    details = ppl["details"]
    adapter = result["adapter"]
    table = Table(title=f"dpaudit eval: {adapter['path']} on {adapter['base']}", title_justify="left")
    for column in ("Perplexity", "Records", "Tokens", "Value"):
        table.add_column(column, justify="left" if column == "Perplexity" else "right")
    rows = (
        ("adapter, held-out", "heldout"),
        ("adapter, members", "member"),
        ("base, held-out", "base_heldout"),
    )
    for label, key in rows:
        if details.get(key) is None:
            continue
        table.add_row(label, str(details[key]["n_records"]), str(details[key]["n_tokens"]), _num(ppl[key], "{:.2f}"))
    if ppl["gap"] is not None:
        table.add_row("gap (held-out ÷ members)", "", "", _num(ppl["gap"], "{:.3f}"))
    return table


def _adherence_table(adherence: dict[str, Any]) -> Table:
    n_aug = adherence["n_augmented"]
    title = f"Instruction adherence ({adherence['n_prompts']} prompts" + (f", {n_aug} augmented" if n_aug else "") + ")"
    table = Table(title=title, title_justify="left")
    columns = ["Level", "Adapter", "95% CI"] + (["Base", "95% CI "] if adherence["base"] else [])
    for column in columns:
        table.add_column(column, justify="left" if column == "Level" else "right")
    for level in ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose"):
        row = [level.replace("_", " ")]
        for side in ("adapter", "base"):
            rates = adherence[side]
            if rates is None:
                continue
            lo, hi = (rates.get("ci95") or {}).get(level) or (None, None)
            row += [_pct(rates[level]), "" if lo is None else f"[{_pct(lo)}, {_pct(hi)}]"]
        table.add_row(*row)
    test = adherence.get("mcnemar")
    if test:
        table.caption = (
            f"McNemar (prompt strict): adapter only {test['adapter_only']}, base only {test['base_only']}, "
            f"p = {test['p_value']:.3g}"
        )
    return table


def _side_table(side: dict[str, Any]) -> Table:
    table = Table(title="Side metrics (degenerate outputs)", title_justify="left")
    table.add_column("Metric")
    names = [name for name in ("adapter", "base") if side.get(name)]
    for name in names:
        table.add_column(name.capitalize(), justify="right")
    rows = (
        ("empty responses", "empty_rate", _pct),
        ("distinct-2", "distinct_2", _num),
        ("length ÷ reference", "length_ratio", lambda x: _num(x, "{:.2f}")),
        ("ROUGE-L F1", "rouge_l_f1", _num),
    )
    for label, key, fmt in rows:
        table.add_row(label, *(fmt(side[name][key]) for name in names))
    return table


def _judge_table(judge: dict[str, Any]) -> Table:
    agree = judge["agreement"]
    table = Table(
        title=f"Model judge {judge.get('model', '')}: agreement with the checkers on {agree['n']} items",
        title_justify="left",
    )
    table.add_column("Measure")
    table.add_column("Value", justify="right")
    table.add_row("accuracy", _pct(agree["accuracy"]))
    table.add_row("Cohen's kappa", _num(agree["kappa"]))
    for name, rates in judge["rates"].items():
        table.add_row(f"{name}: prompt pass (judge)", _pct(rates["prompt"]))
        table.add_row(f"{name}: instruction pass (judge)", _pct(rates["instruction"]))
    return table


def _exposure_table(exposure: dict[str, Any]) -> Table:
    table = Table(title=f"Canary exposure (max possible {exposure['max_exposure']:.1f} bits)", title_justify="left")
    for column in ("Inserted", "Canaries", "Mean exposure", "Min", "Max"):
        table.add_column(column, justify="left" if column == "Inserted" else "right")
    for row in exposure["by_repeats"]:
        label = "unknown" if row["repeats"] is None else f"{row['repeats']}×"
        table.add_row(
            label,
            str(row["n_canaries"]),
            _num(row["mean_exposure"], "{:.2f}"),
            _num(row["min_exposure"], "{:.2f}"),
            _num(row["max_exposure"], "{:.2f}"),
        )
    methods = sorted({c["method"] for c in exposure["canaries"]})
    table.caption = f"rank {'/'.join(methods)}; never inserted ≈ 1.4 bits"
    return table
