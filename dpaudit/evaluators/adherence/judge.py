"""Judge one response against its constraints, strictly and loosely.

*Strict*: the checker sees the response as given. *Loose*: the instruction also counts as followed
if the checker accepts any of the response with its first line, its last line, or both removed,
each with and without ``*`` markup removed (8 variants including the original). Loose forgives a
chatty "Sure, here you go:" opener or a trailing sign-off, and markdown emphasis.

A response that is empty (or whitespace only) fails every instruction, strictly and loosely, as do
the loose variants that are empty: silence is not adherence, and DP-trained models that collapse to
empty outputs must not score well on *no commas* or *all lowercase*.

>>> v = judge_response(prompt="Say hi.", constraints=[{"type": "punctuation:no_comma", "kwargs": {}}],
...                    response="Sure, here:\\nhi there")
>>> v.results[0].strict, v.results[0].loose
(False, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dpaudit.data.constraints import request_text, validate_constraints
from dpaudit.evaluators.adherence.checkers import CHECKERS, CheckContext


@dataclass(frozen=True)
class ConstraintVerdict:
    """Whether one instruction was followed (``strict``) and followed up to loose variants (``loose``)."""

    type: str
    kwargs: Mapping[str, Any]
    strict: bool
    loose: bool

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "kwargs": dict(self.kwargs), "strict": self.strict, "loose": self.loose}


@dataclass(frozen=True)
class ResponseVerdict:
    """All instructions of one prompt; the prompt-level verdicts need every instruction followed."""

    results: tuple[ConstraintVerdict, ...]
    id: str | None = None

    @property
    def strict(self) -> bool:
        return all(r.strict for r in self.results)

    @property
    def loose(self) -> bool:
        return all(r.loose for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "strict": self.strict,
            "loose": self.loose,
            "results": [r.to_json() for r in self.results],
        }


def loose_variants(response: str) -> list[str]:
    """The response, without its first line, without its last, without both; each also without ``*``."""
    lines = response.split("\n")
    cut = [response, "\n".join(lines[1:]), "\n".join(lines[:-1]), "\n".join(lines[1:-1])]
    return cut + [v.replace("*", "") for v in cut]


def judge_response(
    *,
    prompt: str,
    constraints: Sequence[Mapping[str, Any]],
    response: str,
    id: str | None = None,
    path: str | None = None,
    line: int | None = None,
) -> ResponseVerdict:
    """Judge ``response`` to ``prompt`` against each of ``constraints`` (``{"type", "kwargs"}`` dicts).

    Unknown types or malformed kwargs raise :class:`~dpaudit.errors.InputError` naming the field
    (and ``path``/``line`` when given, for items read from a file).
    """
    checked = validate_constraints(list(constraints), path=path, line=line)
    ctx = CheckContext(prompt=prompt, request=request_text(prompt, checked))
    empty = not response.strip()
    variants = [] if empty else [v for v in loose_variants(response)[1:] if v.strip()]
    results = []
    for c in checked:
        check = CHECKERS.get(c["type"])
        strict = not empty and check(response, c["kwargs"], ctx)
        loose = strict or any(check(v, c["kwargs"], ctx) for v in variants)
        results.append(ConstraintVerdict(type=c["type"], kwargs=c["kwargs"], strict=strict, loose=loose))
    return ResponseVerdict(results=tuple(results), id=id)
