"""`dpaudit models`: build the tiny base, list presets and what the cache holds."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from dpaudit.cli.common import JsonOpt, console, print_json

app = typer.Typer(help="Base models: build the tiny base, list presets and the model cache.", no_args_is_help=True)


@app.command("build")
def build(
    spec: Annotated[str, typer.Argument(help="What to build: 'tiny' (pretrained here) or 'smollm2-135m' (converted from its GGUF).")] = "tiny",
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if the cache already holds it.")] = False,
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            help="Pretraining seed of the tiny base. 0 is the `tiny` preset that every command uses; other seeds build "
            "variants for base-variance studies (Python API: load_base('tiny', tiny_config=TinyBuildConfig(seed=k))).",
        ),
    ] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Build a base model into the cache (otherwise it is built on first use)."""
    import time

    from dpaudit.errors import InputError
    from dpaudit.models import base as base_mod

    t0 = time.perf_counter()
    if spec == base_mod.DEFAULT_SPEC:
        from dataclasses import replace

        config = replace(base_mod.TinyBuildConfig(), seed=seed)
        was_built = base_mod.is_built(base_mod.tiny_cache_path(config))
        path = base_mod.ensure_tiny(config, force=force)
    elif spec == base_mod.SMOLLM2_SPEC:
        gguf = base_mod.smollm2_gguf_path()
        was_built = base_mod.is_built(base_mod.gguf_cache_path(gguf, name=spec))
        path = base_mod.ensure_gguf(gguf, name=spec, force=force)
    else:
        raise InputError(f"can build 'tiny' or 'smollm2-135m', got {spec!r} (other bases are loaded as they are)", field="spec")
    manifest = base_mod.read_manifest(path)
    rebuilt = force or not was_built
    result = {
        "spec": spec,
        "path": str(path),
        "built": rebuilt,
        "cached": not rebuilt,
        "size_bytes": base_mod.dir_size(path),
        "wall_time_s": round(time.perf_counter() - t0, 2),
        "manifest": manifest,
    }
    if json_out:
        print_json(result)
        return
    verb = "built" if rebuilt else "already cached"
    console.print(f"[bold green]{spec}[/] {verb}: {path} ({_size(result['size_bytes'])}, {result['wall_time_s']:.1f} s)")
    if manifest.get("eval_loss") is not None:
        console.print(
            f"held-out loss {manifest['eval_loss']:.3f} nats/token (assistant tokens {manifest['eval_loss_assistant']:.3f}; "
            f"uniform {manifest['uniform_loss']:.3f}), {manifest['parameters']:,} parameters, "
            f"build {manifest['wall_time_s']:.0f} s on {manifest.get('threads', '?')} threads"
        )


@app.command("list")
def list_models(json_out: JsonOpt = False) -> None:
    """Show the presets, whether each is built, and every entry of the model cache."""
    from dpaudit.models import base as base_mod
    from dpaudit.paths import cache_dir

    presets = base_mod.preset_status()
    entries = base_mod.cache_entries()
    root = str(cache_dir("models"))
    if json_out:
        print_json({"cache_dir": root, "presets": presets, "cache": entries})
        return
    table = Table(title="Base model presets", title_justify="left")
    table.add_column("preset", no_wrap=True)
    table.add_column("built", no_wrap=True)
    table.add_column("size", no_wrap=True, justify="right")
    table.add_column("path (or what is missing)", overflow="fold")
    for row in presets:
        built = "[green]yes[/]" if row["built"] else "[yellow]no[/]"
        table.add_row(row["preset"], built, _size(row["size_bytes"]) if row["built"] else "-", row["path"] or row["source"])
    console.print(table)
    for row in presets:
        console.print(f"  [bold]{row['preset']}[/]: {row['description']}", highlight=False)
    if entries:
        cache = Table(title=f"Model cache ({root})", title_justify="left")
        preset_of = {row["path"]: row["preset"] for row in presets if row["path"]}
        for column in ("name", "kind", "size", "built at", "preset"):
            cache.add_column(column, no_wrap=column != "name", overflow="fold", justify="right" if column == "size" else "left")
        for entry in entries:
            cache.add_row(entry["name"], entry["kind"] or "?", _size(entry["size_bytes"]), entry["built_at"] or "-", preset_of.get(entry["path"], ""))
        console.print(cache)
    else:
        console.print(f"model cache {root} is empty; `dpaudit models build tiny` builds the default base")
    console.print("Other bases: a local Hugging Face model directory, a .gguf file or a hub id (--base).")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
