"""Responses files for ``dpaudit judge``: read, judge, score.

A responses file is JSONL, one object per line::

    {"prompt": "...", "constraints": [{"type": "case:lowercase", "kwargs": {}}], "response": "...",
     "id": "optional", "reference": "optional reference answer (enables ROUGE-L and the length ratio)"}

``constraints`` is the structured form the synthetic generator writes (:mod:`dpaudit.data.constraints`).
Blank lines are skipped. Any problem raises :class:`~dpaudit.errors.InputError` with the file, the
line number and the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpaudit.data.constraints import validate_constraints
from dpaudit.errors import InputError, MissingFileError
from dpaudit.evaluators.adherence.scoring import DEFAULT_BOOTSTRAP, AdherenceResult, score_responses
from dpaudit.evaluators.adherence.side_metrics import SideMetrics, side_metrics


@dataclass(frozen=True)
class AdherenceItem:
    """One response to judge. ``path``/``line`` locate it in its file (for error messages)."""

    prompt: str
    constraints: tuple[Mapping[str, Any], ...]
    response: str
    id: str | None = None
    reference: str | None = None
    path: str | None = field(default=None, compare=False)
    line: int | None = field(default=None, compare=False)


def _string(obj: Mapping[str, Any], key: str, *, path: str, line: int, required: bool) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise InputError("missing", path=path, line=line, field=key)
        return None
    if not isinstance(value, str):
        raise InputError(f"must be a string, got {type(value).__name__}", path=path, line=line, field=key)
    return value


def load_items(path: str | Path) -> list[AdherenceItem]:
    """Read a responses file (see the module docstring); constraints are validated here."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"No responses file at {path}. Write one JSONL line per response: "
                               '{"prompt", "constraints", "response"}.')
    where = str(path)
    items = []
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise InputError(f"not valid JSON ({exc.msg} at column {exc.colno})", path=where, line=number) from None
            if not isinstance(obj, Mapping):
                raise InputError(f"must be a JSON object, got {type(obj).__name__}", path=where, line=number)
            if "constraints" not in obj:
                raise InputError("missing", path=where, line=number, field="constraints")
            item_id = obj.get("id")
            items.append(
                AdherenceItem(
                    prompt=_string(obj, "prompt", path=where, line=number, required=True) or "",
                    constraints=tuple(validate_constraints(obj["constraints"], path=where, line=number)),
                    response=_string(obj, "response", path=where, line=number, required=True) or "",
                    id=None if item_id is None else str(item_id),
                    reference=_string(obj, "reference", path=where, line=number, required=False),
                    path=where,
                    line=number,
                )
            )
    return items


@dataclass(frozen=True)
class JudgeReport:
    """What ``dpaudit judge`` prints: adherence and the side metrics of the same responses."""

    source: str
    adherence: AdherenceResult
    side: SideMetrics

    def to_json(self, *, include_verdicts: bool = False) -> dict[str, Any]:
        return {
            "source": self.source,
            "adherence": self.adherence.to_json(include_verdicts=include_verdicts),
            "side_metrics": self.side.to_json(),
        }


def judge_file(path: str | Path, *, seed: int = 0, n_bootstrap: int = DEFAULT_BOOTSTRAP) -> JudgeReport:
    """Read, judge and score a responses file."""
    items = load_items(path)
    return JudgeReport(
        source=str(path),
        adherence=score_responses(items, seed=seed, n_bootstrap=n_bootstrap),
        side=side_metrics(
            responses=[i.response for i in items],
            references=[i.reference for i in items] if any(i.reference is not None for i in items) else None,
        ),
    )
