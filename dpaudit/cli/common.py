"""Options and output helpers shared by every command (declared once, used everywhere)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console


console = Console()
err_console = Console(stderr=True)

SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same numbers.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout instead of tables.")]
BASE_SPECS = "'tiny' (built locally), 'smollm2-135m', a local HF directory, a .gguf file or a hub id"
BaseOpt = Annotated[
    str | None,
    typer.Option("--base", help=f"Base model: {BASE_SPECS}. Defaults to the adapter's base_model_name_or_path, or 'tiny'."),
]
ShadowsOpt = Annotated[int, typer.Option("--shadows", min=0, help="Shadow adapters for LiRA/shadow (0 skips them).")]
QuickOpt = Annotated[bool, typer.Option("--quick", help="Skip the shadow attacks (no shadow training).")]
UnitOpt = Annotated[
    str,
    typer.Option("--unit", help="record or client (federated adapters): what the worst case and the ε comparison are about."),
]
OutDirOpt = Annotated[Path, typer.Option("--out", help="Output directory (written atomically).")]


def insecure_noise_option(panel: str) -> Any:
    """``--insecure-reproducible-noise`` for every command that trains with DP (each in its own help panel)."""
    return typer.Option(
        "--insecure-reproducible-noise",
        help="Tests/studies only: derive the DP noise and sampling from --seed (bit-identical reruns). "
        "The adapter then carries NO DP guarantee: anyone with the data and the card can replay it.",
        rich_help_panel=panel,
    )
WorkersOpt = Annotated[
    int,
    typer.Option("--workers", min=1, help="Parallel workers: 1 runs in this process; N > 1 fans tasks out on a local Ray runtime (pip install 'dpaudit\\[scale]')."),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option("--ray-address", help="Join an existing Ray cluster ('auto' or ray://host:10001) instead of starting a local one."),
]
DeviceOpt = Annotated[
    str,
    typer.Option("--device", help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N: where the base model runs."),
]
DtypeOpt = Annotated[
    str,
    typer.Option("--dtype", help="auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16 or float16: the base model's weights."),
]
QuantizeOpt = Annotated[
    str | None,
    typer.Option("--quantize", help="Load the base quantized: 4bit or 8bit (bitsandbytes, CUDA only: pip install 'dpaudit\\[gpu]'). LoRA weights stay float32."),
]
YesOpt = Annotated[
    bool, typer.Option("--yes", help="Run sizes above dpaudit's sanity limits (see README, Conventions) without refusing."),
]
OverwriteOpt = Annotated[
    bool,
    typer.Option("--overwrite", help="Replace an earlier dpaudit output in the target directory (never other files)."),
]


def use_placement(device: str, dtype: str, quantize: str | None) -> None:
    """Load every base model of the running command where ``--device/--dtype/--quantize`` say.

    The placement scope is entered on click's context, so it ends when the command returns and
    the layers in between need no extra argument (see :func:`dpaudit.scale.device.placement_scope`).
    A request this machine cannot serve (``--device cuda`` without a GPU) fails here, in one line.
    """
    from dpaudit.scale.device import Placement, placement_scope

    click.get_current_context().with_resource(placement_scope(Placement(device=device, dtype=dtype, quantize=quantize)))


def log_step(message: str) -> None:
    """One dim progress line between progress bars (audit stages, on-the-fly audits)."""
    console.print(f"[dim]·[/] {message}", highlight=False)


def print_json(obj: Any) -> None:
    """JSON on stdout with no rich markup, so that `| jq` always works."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=_default) + "\n")
    sys.stdout.flush()


def _default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
