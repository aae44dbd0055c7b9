"""The report.json contract: build a report dict, validate it, load one from disk.

The schema (``report.schema.json`` beside this file, JSON Schema draft 2020-12) is the single
description of a report; the renderers, ``compare`` and ``gate`` read only what it guarantees.
Undefined metrics (NaN, e.g. an attack on one class) are stored as ``null``: NaN is not JSON.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import math
import platform
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from dpaudit.errors import InputError, MissingFileError
from dpaudit.evaluators.mia_metrics import worst_case
from dpaudit.io import read_json_object

SCHEMA_VERSION = "1.0"
SCHEMA_PATH = Path(__file__).with_name("report.schema.json")
REPORT_FILE = "report.json"
ADAPTER_CONFIG = "adapter_config.json"
_VERSIONED_PACKAGES = ("dpaudit", "torch", "transformers", "peft", "opacus", "numpy", "scikit-learn")


@functools.cache
def load_schema() -> dict[str, Any]:
    """The shipped JSON Schema of report.json."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate_report(report: Mapping[str, Any], *, source: str | Path | None = None) -> None:
    """Raise :class:`InputError` naming the offending field (``$.attacks.loss.auc``) if invalid."""
    validator = Draft202012Validator(load_schema())
    error = best_match(validator.iter_errors(report))
    if error is not None:
        raise InputError(f"invalid report: {error.message}", path=source, field=error.json_path)


def to_jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays → Python, non-finite floats → None, tuples → lists."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def fingerprint_ids(ids: Iterable[str]) -> dict[str, Any]:
    """``{"n", "sha256"}`` of a record-id set: sha256 of the sorted ids joined by newlines.

    Two audits with the same fingerprint used the same members (order does not matter).
    """
    ordered = sorted(ids)
    return {"n": len(ordered), "sha256": hashlib.sha256("\n".join(ordered).encode("utf-8")).hexdigest()}


def collect_versions() -> dict[str, str | None]:
    """Versions of Python and of the packages that change the numbers (None if not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def build_report(
    *,
    adapter: Mapping[str, Any],
    data: Mapping[str, Any],
    attacks: Mapping[str, Mapping[str, Any]],
    base: Mapping[str, Any] | None = None,
    epsilon: Mapping[str, Any] | None = None,
    utility: Mapping[str, Any] | None = None,
    exposure: Mapping[str, Any] | None = None,
    most_exposed: Iterable[Mapping[str, Any]] | None = None,
    seeds: Mapping[str, int] | None = None,
    versions: Mapping[str, str | None] | None = None,
    wall_time_s: float | None = None,
    created: str | None = None,
    unit: str | None = None,
    client_level: Mapping[str, Any] | None = None,
    pii_extraction: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble a complete, validated report dict (sections not run stay None).

    ``attacks`` maps attack name → ``mia_metrics(...)`` output (plus an optional
    ``score_histogram``); the worst-case attack is chosen here with
    :func:`dpaudit.evaluators.mia_metrics.worst_case`. ``versions`` defaults to
    :func:`collect_versions`, ``created`` to now (UTC).
    """
    report = {
        "schema_version": SCHEMA_VERSION,
        "created": created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "adapter": dict(adapter),
        "base": dict(base) if base is not None else None,
        "data": dict(data),
        "attacks": {name: dict(metrics) for name, metrics in attacks.items()},
        "worst_case_attack": worst_case(attacks) if attacks else None,
        "epsilon": epsilon,
        "utility": utility,
        "exposure": exposure,
        "most_exposed": list(most_exposed) if most_exposed is not None else [],
        "seeds": dict(seeds) if seeds is not None else {},
        "versions": dict(versions) if versions is not None else collect_versions(),
        "wall_time_s": wall_time_s,
    }
    if unit is not None:  # federated adapters only (`--unit`, the client-level attack)
        report["unit"] = unit
        report["client_level"] = dict(client_level) if client_level is not None else None
    if pii_extraction is not None:  # only when the audit ran the PII-extraction attack
        report["pii_extraction"] = dict(pii_extraction)
    report = to_jsonable(report)
    validate_report(report)
    return report


def is_adapter_dir(path: str | Path) -> bool:
    """A peft adapter directory (has ``adapter_config.json``)."""
    return (Path(path) / ADAPTER_CONFIG).is_file()


def needs_audit(path: str | Path) -> bool:
    """An adapter directory with no report.json of its own: ``compare`` and ``gate`` audit it first."""
    return is_adapter_dir(path) and not (Path(path) / REPORT_FILE).is_file()


def report_file(path: str | Path) -> Path:
    """The report.json that ``path`` names: the file itself, or ``<dir>/report.json``.

    An adapter directory without a report is an :class:`InputError` that says to audit it first;
    anything else missing is a :class:`MissingFileError`.
    """
    path = Path(path)
    if path.is_dir():
        candidate = path / REPORT_FILE
        if candidate.is_file():
            return candidate
        if is_adapter_dir(path):
            raise InputError(
                f"{path} is an adapter directory; run `dpaudit audit --adapter {path} --out reports/{path.name}` first"
            )
        raise MissingFileError(f"No {REPORT_FILE} in {path}. Run `dpaudit audit --adapter ADAPTER --out {path}` first.")
    if not path.is_file():
        raise MissingFileError(f"No report at {path}. Run `dpaudit audit --adapter ADAPTER --out DIR` first.")
    return path


def load_report(path: str | Path) -> dict[str, Any]:
    """Read and validate a report (a report.json file or a report directory)."""
    file = report_file(path)
    report = read_json_object(file)
    version = report.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InputError(
            f"schema_version {version!r} is not supported (this dpaudit reads {SCHEMA_VERSION!r}); re-run `dpaudit audit`",
            path=file,
            field="schema_version",
        )
    validate_report(report, source=file)
    return report
