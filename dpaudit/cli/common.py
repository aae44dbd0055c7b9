"""Options and output helpers shared by every command (declared once, used everywhere)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

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
OutDirOpt = Annotated[Path, typer.Option("--out", help="Output directory (written atomically).")]


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
