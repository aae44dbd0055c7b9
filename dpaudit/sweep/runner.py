"""Run a grid: prepare the data once, run every unfinished cell (here or on Ray), write the tables.

The driver only plans, schedules and collects (Ray Tune's model): the cells are
:func:`dpaudit.sweep.cell.run_cell` tasks given to :func:`dpaudit.scale.tasks.run_tasks`, each
writing its adapter and report to ``SWEEP_DIR/cells/<hash>/``. A finished cell is never
recomputed, so re-running a sweep costs seconds, an interrupted one continues where it stopped, and
changing one axis value runs only the cells whose resolved config changed.

``SWEEP_DIR`` layout::

    sweep.json            the marker: the grid text, its name, seeds, quick, dpaudit version
    plan.json             every cell × seed of this grid: hash, axis labels, options
    data/<hash>/          synthetic data made for the cells (one directory per data setting)
    cells/<hash>/         adapter/, report/, result.json (finished) or error.json (failed)
    sweep.csv, sweep.parquet, sweep.md, sweep.html
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpaudit import __version__
from dpaudit.errors import InputError
from dpaudit.io import sha256_file, write_json_atomic
from dpaudit.sweep.cell import CONFIG_FILE, cell_dir, cell_hash, read_error, read_result, run_cell
from dpaudit.sweep.grid import FED_PREFIX, Grid, ResolvedCell, identity_json, resolve, resolved_json

MARKER = "sweep.json"
PLAN_FILE = "plan.json"
DATA_DIR = "data"

Log = Callable[[str], None]


@dataclass(frozen=True)
class PlannedCell:
    """One cell × seed: its identity and where it lives."""

    key: str
    seed: int
    labels: dict[str, str]
    options: dict[str, Any]
    payload: dict[str, Any]


@dataclass(frozen=True)
class SweepOutcome:
    out: Path
    planned: int
    reused: int
    ran: int
    failed: list[tuple[str, str]]  # (cell hash, error)
    rows: list[dict[str, Any]]


def claim_sweep_dir(out: str | Path, *, inputs: Sequence[str | Path] = ()) -> Path:
    """A new/empty directory, or one this sweep runner wrote before (resumed); anything else is refused."""
    from dpaudit.outputs import is_dpaudit_output, prepare_output_dir

    if is_dpaudit_output(out, marker=MARKER):
        return Path(out).resolve()
    return prepare_output_dir(out, marker=MARKER, overwrite=False, inputs=inputs)


def plan_sweep(grid: Grid, out: str | Path, *, seeds: Sequence[int] | None = None, log: Log | None = None) -> list[PlannedCell]:
    """Resolve every cell × seed, make its data (once per data setting), and hash it."""
    say = log or (lambda message: None)
    out = Path(out)
    planned = []
    data_files: dict[str, tuple[Path, Path | None, str]] = {}
    for cell in grid.cells():
        for seed in seeds or grid.seeds:
            resolved = resolve(cell.options, seed=seed)
            config = resolved_json(resolved)
            data_key = json.dumps(config["data"], sort_keys=True)
            if data_key not in data_files:
                data_files[data_key] = _prepare_data(resolved, out, say)
            data_file, canaries_file, data_sha = data_files[data_key]
            key = cell_hash(identity_json(config), data_sha256=data_sha)
            payload = {
                "key": key,
                "dir": str(cell_dir(out, key)),
                "base": resolved.base,
                "data_file": str(data_file),
                "canaries_file": str(canaries_file) if canaries_file else None,
                "train": config["train"],
                "audit": {**config["audit"], "attacks": list(config["audit"]["attacks"])},
                "fed": config.get("fed"),
            }
            planned.append(PlannedCell(key=key, seed=seed, labels=dict(cell.labels), options=dict(cell.options),
                                       payload=payload))
    return planned


def run_sweep(
    grid: Grid,
    out: str | Path,
    *,
    seeds: Sequence[int] | None = None,
    fanout: Any = None,
    progress: bool = True,
    log: Log | None = None,
) -> SweepOutcome:
    """Run ``grid`` into ``out`` (resuming it) and write sweep.csv/.parquet/.md/.html.

    ``fanout``: a :class:`dpaudit.scale.tasks.FanOut` (default: one worker, in this process).
    """
    from dpaudit.scale.tasks import FanOut, run_tasks
    from dpaudit.sweep.table import write_tables

    say = log or (lambda message: None)
    fanout = fanout or FanOut()
    data_inputs = [c.options["data"] for c in grid.cells() if "data" in c.options]
    out = claim_sweep_dir(out, inputs=data_inputs)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / MARKER, {"name": grid.name, "source": grid.source, "quick": grid.quick,
                                     "seeds": list(seeds or grid.seeds), "grid": grid.text,
                                     "dpaudit_version": __version__})
    planned = plan_sweep(grid, out, seeds=seeds, log=say)
    write_json_atomic(out / PLAN_FILE, [_plan_entry(p) for p in planned])
    unique = {p.key: p for p in planned}
    pending = [p for p in unique.values() if read_result(Path(p.payload["dir"])) is None]
    reused = len(unique) - len(pending)
    say(f"{len(unique)} cells ({len(planned)} cell × seed rows): {reused} finished before, {len(pending)} to run")
    if pending:
        for base in sorted({p.payload["base"] for p in pending}):
            _ensure_base(base, say)  # build or convert a base once, before tasks race to do it
        for p in pending:
            Path(p.payload["dir"]).mkdir(parents=True, exist_ok=True)
            write_json_atomic(Path(p.payload["dir"]) / CONFIG_FILE, _plan_entry(p))
        run_tasks(run_cell, [p.payload for p in pending], fanout=fanout,
                  label=f"sweep {grid.name}: {len(pending)} cells", progress=progress)
    rows = collect_rows(out, planned)
    failed = [(r["cell"], r["error"]) for r in rows if r["status"] == "failed"]
    write_tables(rows, grid=grid, out=out)
    return SweepOutcome(out=out, planned=len(unique), reused=reused, ran=len(pending),
                        failed=sorted(set(failed)), rows=rows)


def collect_rows(out: Path, planned: Sequence[PlannedCell]) -> list[dict[str, Any]]:
    """One tidy row per cell × seed: axis labels, every resolved option, the metrics, the status."""
    from dpaudit.sweep.cell import METRICS

    rows = []
    for p in planned:
        directory = cell_dir(out, p.key)
        result = read_result(directory)
        error = None if result is not None else read_error(directory)
        status = "done" if result is not None else "failed" if error is not None else "pending"
        metrics = (result or {}).get("metrics") or {}
        row = {"cell": p.key, "seed": p.seed, **{f"axis:{k}": v for k, v in p.labels.items()}}
        row.update(_option_columns(p.payload))
        row.update({m: metrics.get(m) for m in METRICS})
        row.update({"status": status, "error": error})
        rows.append(row)
    return rows


def sweep_status(out: str | Path) -> list[dict[str, Any]]:
    """Every cell of the sweep in ``out``: hash, labels, seed, status (done/pending/failed), error."""
    out = Path(out)
    if not (out / MARKER).is_file() or not (out / PLAN_FILE).is_file():
        raise InputError(f"no sweep here (no {MARKER} and {PLAN_FILE}); run `dpaudit sweep --out {out}` first", path=out)
    plan = json.loads((out / PLAN_FILE).read_text(encoding="utf-8"))
    rows = []
    for entry in plan:
        directory = cell_dir(out, entry["key"])
        done = read_result(directory) is not None
        error = None if done else read_error(directory)
        rows.append({"cell": entry["key"], "seed": entry["seed"], "labels": entry["labels"],
                     "status": "done" if done else "failed" if error else "pending", "error": error})
    return rows


def _plan_entry(p: PlannedCell) -> dict[str, Any]:
    return {"key": p.key, "seed": p.seed, "labels": p.labels, "options": p.options,
            "train": p.payload["train"], "audit": p.payload["audit"], "fed": p.payload["fed"],
            "base": p.payload["base"], "data_file": p.payload["data_file"]}


def _option_columns(payload: dict[str, Any]) -> dict[str, Any]:
    """Every resolved option as a flat column (``dp`` true/false, DP fields only when DP is on)."""
    train = dict(payload["train"])
    dp = train.pop("dp", None)
    columns: dict[str, Any] = {"base": payload["base"], "data_file": payload["data_file"]}
    columns.update({k: _cell_value(v) for k, v in train.items()})
    columns["dp"] = dp is not None
    columns.update({f"dp_{k}": _cell_value(v) for k, v in (dp or {}).items()})
    columns.update({f"audit_{k}": _cell_value(v) for k, v in payload["audit"].items() if k != "seed"})
    columns.update({f"{FED_PREFIX}{k}": _cell_value(v) for k, v in (payload.get("fed") or {}).items()})
    return columns


def _cell_value(value: Any) -> Any:
    """Lists become comma text so that every column holds scalars (csv and parquet alike)."""
    return ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else value


def _prepare_data(resolved: ResolvedCell, out: Path, say: Log) -> tuple[Path, Path | None, str]:
    """(data file, canaries file or None, sha256 of the data file); synthetic data is made once."""
    if resolved.data.file is not None:
        path = Path(resolved.data.file)
        if not path.is_file():
            raise InputError("no such data file", path=path, field="data")
        return path, None, sha256_file(path)
    from dpaudit.data.synth import SynthConfig, generate, write_dataset

    synth = dict(resolved.data.synth or {})
    key = hashlib.sha256(json.dumps(synth, sort_keys=True).encode()).hexdigest()[:12]
    directory = out / DATA_DIR / key
    private = directory / "private.jsonl"
    if not private.is_file():
        say(f"synthesizing {synth['n']} records ({len(synth['categories'])} categories) -> {directory}")
        config = SynthConfig(n=synth["n"], seed=synth["seed"], categories=tuple(synth["categories"]),
                             mix=tuple(synth["mix"]) if synth["mix"] is not None else None, canaries=synth["canaries"])
        write_dataset(generate(config), directory)
    canaries = directory / "canaries.jsonl" if synth.get("canaries") else None
    return private, canaries, sha256_file(private)


def _ensure_base(spec: str, say: Log) -> None:
    from dpaudit.models.base import load_base

    say(f"base model {spec}")
    load_base(spec, show_progress=False)

