"""`dpaudit data`: generate the synthetic sensitive dataset, describe a data file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dpaudit.cli.common import (
    BASE_SPECS, DeviceOpt, DtypeOpt, JsonOpt, OutDirOpt, OverwriteOpt, QuantizeOpt, SeedOpt, YesOpt, console, print_json,
    use_placement,
)
from dpaudit.errors import ConfigError
from dpaudit.limits import SYNTH_RECORDS
from dpaudit.outputs import prepare_output_dir
from dpaudit.progress import progress_bar
from dpaudit.scale.device import Placement

app = typer.Typer(help="Generate and inspect instruction data.", no_args_is_help=True)

FormatOpt = Annotated[
    str | None,
    typer.Option("--format", help="Force the schema: chat, alpaca or pair (default: detected from the first row)."),
]


def _split_list(text: str | None, option: str) -> list[str] | None:
    if text is None:
        return None
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise ConfigError(f"`{option}` has an empty item: {text!r}")
    return items


def _weights(text: str | None) -> tuple[float, ...] | None:
    items = _split_list(text, "--mix")
    if items is None:
        return None
    try:
        return tuple(float(item) for item in items)
    except ValueError:
        raise ConfigError(f"`--mix` must be comma-separated numbers, got {text!r}") from None


@app.command("synth")
def synth(
    out: OutDirOpt,
    n: Annotated[int, typer.Option("--n", help="Private records (the member/non-member pool).")] = 2000,
    seed: SeedOpt = 0,
    categories: Annotated[
        str | None,
        typer.Option("--categories", help="Comma list of categories (default: all ten No Robots categories)."),
    ] = None,
    mix: Annotated[
        str | None,
        typer.Option("--mix", help="Comma weights, one per category (default: No Robots' shares)."),
    ] = None,
    canaries: Annotated[int, typer.Option("--canaries", help="Random-secret canary records to write.")] = 0,
    public_fraction: Annotated[
        float,
        typer.Option("--public-fraction", help="Public share of public + private records (0.5: as many public as private)."),
    ] = 0.5,
    canary_format: Annotated[
        str, typer.Option("--canary-format", help="Secret pattern: d digit, x hex, a a-z, A A-Z, others literal.")
    ] = "dddd-dddd",
    overwrite: OverwriteOpt = False,
    yes: YesOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Write a synthetic sensitive instruction dataset (public, private, canaries, manifest)."""
    from dpaudit.data.synth import CATEGORIES, FILES, SynthConfig, generate, manifest, write_dataset

    SYNTH_RECORDS.check(n, yes=yes)
    out = prepare_output_dir(out, marker=FILES[-1], overwrite=overwrite)

    config = SynthConfig(
        n=n,
        seed=seed,
        categories=tuple(_split_list(categories, "--categories") or CATEGORIES),
        mix=_weights(mix),
        canaries=canaries,
        public_fraction=public_fraction,
        canary_format=canary_format,
    )
    with progress_bar("generating records", config.total, enabled=not json_out) as advance:
        dataset = generate(config, progress=advance)
    path = write_dataset(dataset, out)
    info = manifest(dataset)
    info["out"] = str(path)
    if json_out:
        print_json(info)
        return
    table = Table(title=f"synthetic dataset (seed {seed}) -> {path}")
    table.add_column("category")
    table.add_column("private", justify="right")
    table.add_column("public", justify="right")
    counts = info["categories"]
    for category in config.categories:
        table.add_row(category, str(counts["private"].get(category, 0)), str(counts["public"].get(category, 0)))
    table.add_row("[bold]total", f"[bold]{len(dataset.private)}", f"[bold]{len(dataset.public)}")
    console.print(table)
    console.print(
        f"with constraints: {info['constrained']['private']} private, {info['constrained']['public']} public; "
        f"canaries: {len(dataset.canaries)} ({config.canary_format})"
    )


@app.command("stats")
def stats(
    file: Annotated[Path, typer.Argument(help="A JSONL, JSON, Parquet or CSV file.")],
    format: FormatOpt = None,
    base: Annotated[
        str | None, typer.Option("--base", help=f"Also report token lengths under this base's tokenizer: {BASE_SPECS}.")
    ] = None,
    device: DeviceOpt = Placement.device,
    dtype: DtypeOpt = Placement.dtype,
    quantize: QuantizeOpt = Placement.quantize,
    seed: SeedOpt = 0,
    json_out: JsonOpt = False,
) -> None:
    """Record count, category mix, duplicates, constraints and (with --base) token lengths."""
    from dpaudit.data.stats import file_stats

    use_placement(device, dtype, quantize)

    result = file_stats(file, format=format, base=base, seed=seed)
    if json_out:
        print_json(result)
        return
    table = Table(title=str(file), show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("records", str(result["records"]))
    table.add_row("duplicates (same text)", str(result["duplicates"]))
    table.add_row("duplicate ids", str(result["duplicate_ids"]))
    table.add_row("multi-turn", str(result["multi_turn"]))
    table.add_row("with system prompt", str(result["with_system_prompt"]))
    table.add_row("with constraints", str(result["constraints"]["records_with"]), end_section=True)
    table.add_row("categories", "")
    for category, count in result["categories"].items():
        share = 100.0 * count / result["records"]
        table.add_row(f"  {category}", f"{count} ({share:.1f}%)")
    table.add_section()
    table.add_row("constraints", str(result["constraints"]["total"]))
    for kind, count in result["constraints"].get("by_type", {}).items():
        table.add_row(f"  {kind}", str(count))
    if result.get("token_lengths"):
        table.add_section()
    for key, value in result.get("token_lengths", {}).items():
        table.add_row(f"tokens {key}", f"{value:g}")
    console.print(table)
