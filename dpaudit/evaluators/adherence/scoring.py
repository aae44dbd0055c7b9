"""Aggregate verdicts: prompt/instruction level × strict/loose, per-type accuracy, bootstrap CIs, McNemar.

- **Prompt level**: the fraction of prompts whose instructions were *all* followed.
- **Instruction level**: the fraction of instructions followed, pooled over prompts.
- **CIs**: percentile bootstrap (95%) over *prompts* — instructions of one prompt share a response,
  so they are resampled together; the instruction-level rate of a resample is pooled over it.
- **McNemar**: exact two-sided test for paired pass/fail arrays (base vs adapter on the same prompts),
  from the binomial distribution of the discordant pairs; no normal approximation.

Prompts with no constraints carry no adherence information: they are counted (``n_unconstrained``)
and left out of every rate. With no constrained prompt at all the rates are NaN (``null`` in JSON)
and a warning says why.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dpaudit.evaluators.adherence.judge import ResponseVerdict, judge_response

DEFAULT_BOOTSTRAP = 1000
LEVELS = ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose")


@dataclass(frozen=True)
class TypeAccuracy:
    """Instructions of one type: how many, and the fraction followed strictly and loosely."""

    n: int
    strict: float
    loose: float


@dataclass(frozen=True)
class AdherenceResult:
    """Adherence rates with 95% bootstrap CIs; ``verdicts`` keeps the per-prompt detail (constrained prompts only)."""

    n_prompts: int
    n_instructions: int
    n_unconstrained: int
    prompt_strict: float
    prompt_loose: float
    instruction_strict: float
    instruction_loose: float
    ci95: Mapping[str, tuple[float, float]]
    per_type: Mapping[str, TypeAccuracy]
    verdicts: tuple[ResponseVerdict, ...] = field(repr=False)
    seed: int = 0
    n_bootstrap: int = DEFAULT_BOOTSTRAP

    def prompt_pass(self, *, loose: bool = False) -> np.ndarray:
        """Shape (n_prompts,) bool: whether each prompt had all its instructions followed (for :func:`mcnemar`)."""
        return np.array([v.loose if loose else v.strict for v in self.verdicts], dtype=bool)

    def to_json(self, *, include_verdicts: bool = False) -> dict[str, Any]:
        """Plain JSON (NaN → null); the keys follow the report schema's ``rateWithCi``."""
        out: dict[str, Any] = {level: _num(getattr(self, level)) for level in LEVELS}
        out["ci95"] = {level: [_num(lo), _num(hi)] for level, (lo, hi) in self.ci95.items()} or None
        out["per_type"] = {t: _num(a.strict) for t, a in sorted(self.per_type.items())}
        out["per_type_detail"] = {
            t: {"n": a.n, "strict": _num(a.strict), "loose": _num(a.loose)} for t, a in sorted(self.per_type.items())
        }
        out.update(
            n_prompts=self.n_prompts,
            n_instructions=self.n_instructions,
            n_unconstrained=self.n_unconstrained,
            n_bootstrap=self.n_bootstrap,
            seed=self.seed,
        )
        if include_verdicts:
            out["verdicts"] = [v.to_json() for v in self.verdicts]
        return out


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def _item_fields(item: Any) -> dict[str, Any]:
    if isinstance(item, Mapping):
        return {k: item.get(k) for k in ("prompt", "constraints", "response", "id")} | {"path": None, "line": None}
    return {
        "prompt": item.prompt,
        "constraints": item.constraints,
        "response": item.response,
        "id": getattr(item, "id", None),
        "path": getattr(item, "path", None),
        "line": getattr(item, "line", None),
    }


def score_responses(
    items: Iterable[Any], *, seed: int = 0, n_bootstrap: int = DEFAULT_BOOTSTRAP
) -> AdherenceResult:
    """Judge every item and aggregate.

    ``items``: mappings or objects with ``prompt``, ``constraints``, ``response`` (and optionally ``id``),
    e.g. :class:`dpaudit.evaluators.adherence.items.AdherenceItem`, or already judged
    :class:`ResponseVerdict` objects. ``seed`` fixes the bootstrap; ``n_bootstrap=0`` skips the CIs.
    """
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 0:
        raise ValueError(f"`n_bootstrap` must be an integer >= 0, got {n_bootstrap!r}")
    verdicts: list[ResponseVerdict] = []
    n_unconstrained = 0
    for item in items:
        if isinstance(item, ResponseVerdict):
            verdict = item
        else:
            f = _item_fields(item)
            verdict = judge_response(
                prompt=f["prompt"] or "", constraints=f["constraints"] or [], response=f["response"] or "",
                id=f["id"], path=f["path"], line=f["line"],
            )
        if verdict.results:
            verdicts.append(verdict)
        else:
            n_unconstrained += 1
    return aggregate(verdicts, n_unconstrained=n_unconstrained, seed=seed, n_bootstrap=n_bootstrap)


def aggregate(
    verdicts: list[ResponseVerdict], *, n_unconstrained: int = 0, seed: int = 0, n_bootstrap: int = DEFAULT_BOOTSTRAP
) -> AdherenceResult:
    """Rates, per-type accuracy and bootstrap CIs from verdicts that each have at least one instruction."""
    n = len(verdicts)
    prompt = {lv: np.array([getattr(v, lv) for v in verdicts], dtype=float) for lv in ("strict", "loose")}
    totals = np.array([len(v.results) for v in verdicts], dtype=float)
    passed = {lv: np.array([sum(getattr(r, lv) for r in v.results) for v in verdicts], dtype=float)
              for lv in ("strict", "loose")}
    if n == 0:
        warnings.warn("no prompt with constraints to judge; adherence rates are NaN", RuntimeWarning, stacklevel=2)
    rates = {
        f"prompt_{lv}": float(prompt[lv].mean()) if n else math.nan for lv in ("strict", "loose")
    } | {
        f"instruction_{lv}": float(passed[lv].sum() / totals.sum()) if n else math.nan for lv in ("strict", "loose")
    }
    ci95: dict[str, tuple[float, float]] = {}
    if n and n_bootstrap:
        idx = np.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n))
        draws = {f"prompt_{lv}": prompt[lv][idx].mean(axis=1) for lv in ("strict", "loose")} | {
            f"instruction_{lv}": passed[lv][idx].sum(axis=1) / totals[idx].sum(axis=1) for lv in ("strict", "loose")
        }
        for level in LEVELS:
            lo, hi = np.percentile(draws[level], [2.5, 97.5])
            ci95[level] = (float(lo), float(hi))
    by_type: dict[str, list[tuple[bool, bool]]] = {}
    for v in verdicts:
        for r in v.results:
            by_type.setdefault(r.type, []).append((r.strict, r.loose))
    per_type = {
        t: TypeAccuracy(n=len(rs), strict=sum(s for s, _ in rs) / len(rs), loose=sum(lo for _, lo in rs) / len(rs))
        for t, rs in sorted(by_type.items())
    }
    return AdherenceResult(
        n_prompts=n,
        n_instructions=int(totals.sum()),
        n_unconstrained=n_unconstrained,
        **rates,
        ci95=ci95,
        per_type=per_type,
        verdicts=tuple(verdicts),
        seed=seed,
        n_bootstrap=n_bootstrap,
    )


def mcnemar(a_pass: Any, b_pass: Any) -> tuple[float, float]:
    """Exact McNemar test on paired outcomes; returns ``(statistic, p_value)``.

    ``a_pass``, ``b_pass``: shape (n,) bool, the same n items under two systems. With ``b`` items that
    only A passes and ``c`` that only B passes, under H0 (no difference) ``b ~ Binomial(b + c, 1/2)``;
    the two-sided p-value is ``min(1, 2 * P(X <= min(b, c)))``. ``statistic`` is ``min(b, c)`` (as in
    statsmodels' exact test). No discordant pair gives ``(0.0, 1.0)``.

    >>> mcnemar([1, 1, 1, 0, 0], [0, 0, 0, 0, 1])  # b = 3, c = 1: p = 2 * (1 + 4) / 16
    (1.0, 0.625)
    """
    a = np.asarray(a_pass).astype(bool)
    b = np.asarray(b_pass).astype(bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a_pass and b_pass must be 1-D of the same length, got {a.shape} and {b.shape}")
    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(~a & b))
    n = only_a + only_b
    k = min(only_a, only_b)
    if n == 0:
        return 0.0, 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return float(k), min(1.0, 2 * tail / 2**n)
