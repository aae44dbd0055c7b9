"""The promise against the evidence: theoretical ε from the training card beside empirical ε.

Verdicts:

- ``consistent``: every empirical lower bound is at or below the theoretical ε.
- ``VIOLATION``: some lower bound exceeds it. A lower bound is wrong with probability at most
  1 − confidence when its trials are independent (one-run canaries included independently with
  probability ½); for member/non-member scores of one training run (Clopper–Pearson on attack
  scores) that confidence is a heuristic, so read the verdict as "very likely a bug in training
  (e.g. noise too small, clipping skipped) or in accounting", not as a proof. The CLI exits 1.
- ``no-guarantee``: the adapter carries no DP guarantee (theoretical ε = ∞), with the reason: not
  trained with DP, or trained with ``insecure_reproducible_noise`` ("noise derived from a recorded
  seed": anyone with the data and the card can replay the run). The numbers still say how much
  leakage the attacks demonstrate.

An accountant that cannot answer for the card (see :class:`~dpaudit.privacy.accountants.AccountantUnavailable`)
is listed in ``Theory.unavailable`` with its reason; the others carry on. A card that records
repeated records (``duplicates``) gets their group-level guarantee in ``Theory.group``.

The theoretical ε is the smallest over the accountants (each is a valid upper bound, so the
smallest is the strongest promise). All bounds (attacks × bound methods) are tested together:
each is computed at confidence 1 − (1 − confidence)/K for K bounds (Bonferroni), so that a
VIOLATION verdict is a false alarm with probability at most 1 − confidence overall.
Tightness = ε_lb / ε_theory: how much of the promised leakage the audit could demonstrate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dpaudit.errors import InputError
from dpaudit.privacy._arrays import check_delta_confidence, finite_or_none
from dpaudit.privacy.accountants import ACCOUNTANTS, AccountantUnavailable, no_amplification_epsilon
from dpaudit.privacy.empirical import BOUND_METHODS, METHODS, EmpiricalResult
from dpaudit.privacy.events import Composed, PoissonSampledGaussian, PrivacyLedger
from dpaudit.privacy.group import GroupGuarantee, group_privacy
from dpaudit.privacy.one_run import INCLUSION_RATE_TOLERANCE
from dpaudit.privacy.scores_io import read_scores

CONSISTENT = "consistent"
VIOLATION = "VIOLATION"
NO_GUARANTEE = "no-guarantee"
#: Why an adapter carries no guarantee (the verdict's reason, in words).
NOT_DP = "not trained with DP"
SEEDED_NOISE = "noise derived from a recorded seed"
#: The card's ``dp.randomness``: secret CSPRNG seeds, or a run that opted into ``insecure_reproducible_noise``.
SECURE_RANDOMNESS = "secure"
INSECURE_RANDOMNESS = "insecure-reproducible"

Scores = Mapping[str, tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Theory:
    """What the training card promises: ε(δ) per accountant (all ∞ when not DP)."""

    dp: bool
    delta: float | None
    epsilons: dict[str, float]
    card_epsilon: float | None = None
    card_accountant: str | None = None
    no_amplification_epsilon: float | None = None
    ledger: PrivacyLedger | None = None
    no_guarantee_reason: str | None = None  # set when the adapter carries no guarantee (NOT_DP, SEEDED_NOISE)
    unavailable: dict[str, str] = field(default_factory=dict)  # accountant → why it could not answer
    group: GroupGuarantee | None = None  # the guarantee of the most repeated record (card's ``duplicates``)

    @property
    def guaranteed(self) -> bool:
        return self.dp and self.no_guarantee_reason is None and bool(self.epsilons)

    @property
    def epsilon(self) -> float:
        return min(self.epsilons.values()) if self.guaranteed else math.inf

    @property
    def accountant(self) -> str | None:
        if not self.guaranteed:
            return None
        return min(self.epsilons, key=self.epsilons.__getitem__)


def theory_from_card(
    card: Mapping[str, Any] | None, *, delta: float | None = None, accountants: Sequence[str] | None = None
) -> Theory:
    """Recompute the card's ε from its ``dp`` section (its ledger ``events`` when present).

    ``delta`` overrides the card's δ; a non-DP card (``dp`` null or no card) promises nothing.
    """
    dp = None if card is None else card.get("dp")
    if not dp:
        return Theory(dp=False, delta=delta, epsilons={}, no_guarantee_reason=NOT_DP)
    if not isinstance(dp, Mapping):
        raise InputError(f"expected an object, got {type(dp).__name__}", field="dp")
    if delta is None:
        delta = dp.get("delta")
        if delta is None:
            raise InputError("the card has no `dp.delta`; pass --delta", field="dp.delta")
    delta, _ = check_delta_confidence(delta)
    if dp.get("events"):
        ledger = PrivacyLedger.from_json(dp["events"])
    else:
        missing = [k for k in ("noise_multiplier", "sample_rate", "steps") if dp.get(k) is None]
        if missing:
            raise InputError(
                f"the card's dp section lacks {', '.join(missing)} (and has no events)", field=f"dp.{missing[0]}"
            )
        try:
            ledger = PrivacyLedger(
                [Composed(PoissonSampledGaussian(dp["noise_multiplier"], dp["sample_rate"]), dp["steps"])]
            )
        except InputError as exc:
            raise InputError(str(exc), field="dp") from None
    names = list(accountants) if accountants is not None else ACCOUNTANTS.names()
    epsilons: dict[str, float] = {}
    unavailable: dict[str, str] = {}
    for name in names:
        try:
            epsilons[name] = ledger.epsilon(delta, accountant=name)
        except AccountantUnavailable as exc:
            unavailable[name] = str(exc)
    reason = SEEDED_NOISE if dp.get("randomness") == INSECURE_RANDOMNESS else None
    if not epsilons and reason is None:
        reason = "no accountant could answer: " + "; ".join(f"{k}: {v}" for k, v in unavailable.items())
    duplicates = card.get("duplicates") if card is not None else None
    group = None
    if epsilons and duplicates and int(duplicates.get("max_multiplicity") or 1) > 1:
        group = group_privacy(
            epsilon=min(epsilons.values()), delta=delta, k=int(duplicates["max_multiplicity"]), n=dp.get("n")
        )
    no_amp = None
    sigma, steps = dp.get("noise_multiplier"), dp.get("steps")
    if sigma is not None and steps is not None:
        no_amp = no_amplification_epsilon(noise_multiplier=sigma, steps=steps, delta=delta)
    card_eps = dp.get("epsilon")
    return Theory(
        dp=True,
        delta=delta,
        epsilons=epsilons,
        card_epsilon=None if card_eps is None else float(card_eps),
        card_accountant=dp.get("accountant"),
        no_amplification_epsilon=no_amp,
        ledger=ledger,
        no_guarantee_reason=reason,
        unavailable=unavailable,
        group=group,
    )


@dataclass(frozen=True)
class ComparisonRow:
    """One empirical number for one scores source (attack)."""

    source: str
    result: EmpiricalResult
    tightness: float | None
    violates: bool

    @property
    def method(self) -> str:
        return self.result.method

    @property
    def kind(self) -> str:
        return self.result.kind

    @property
    def epsilon(self) -> float:
        return float(self.result.epsilon)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "method": self.method,
            "kind": self.kind,
            "epsilon": finite_or_none(self.epsilon),
            "confidence": self.result.confidence,
            "tightness": finite_or_none(self.tightness),
            "violates": self.violates,
            "details": self.result.to_json(),
        }


@dataclass(frozen=True)
class EpsilonComparison:
    """Result of :func:`compare_epsilon`; ``epsilon_theory`` is ∞ for a non-DP run."""

    theory: Theory
    rows: tuple[ComparisonRow, ...]
    confidence: float
    per_bound_confidence: float
    verdict: str
    delta: float
    notes: tuple[str, ...] = field(default=())

    @property
    def epsilon_theory(self) -> float:
        return self.theory.epsilon

    @property
    def best_bound(self) -> ComparisonRow | None:
        bounds = [r for r in self.rows if r.kind == "bound"]
        return max(bounds, key=lambda r: r.epsilon) if bounds else None

    @property
    def tightness(self) -> float | None:
        best = self.best_bound
        return None if best is None else best.tightness

    def to_json(self) -> dict[str, Any]:
        best = self.best_bound
        return {
            "verdict": self.verdict,
            "dp": self.theory.dp,
            "no_guarantee_reason": self.theory.no_guarantee_reason,
            "accountants_unavailable": dict(self.theory.unavailable),
            "group_privacy": None if self.theory.group is None else self.theory.group.to_json(),
            "delta": self.delta,
            "confidence": self.confidence,
            "per_bound_confidence": self.per_bound_confidence,
            "epsilon_theory": finite_or_none(self.epsilon_theory),
            "epsilon_theory_accountant": self.theory.accountant,
            "epsilons_theory": {k: finite_or_none(v) for k, v in self.theory.epsilons.items()},
            "card_epsilon": self.theory.card_epsilon,
            "card_accountant": self.theory.card_accountant,
            "no_amplification_epsilon": finite_or_none(self.theory.no_amplification_epsilon),
            "events": None if self.theory.ledger is None else self.theory.ledger.to_json(),
            "epsilon_lb": None if best is None else best.epsilon,
            "epsilon_lb_source": None if best is None else f"{best.source}/{best.method}",
            "tightness": finite_or_none(self.tightness),
            "rows": [r.to_json() for r in self.rows],
            "notes": list(self.notes),
        }


def compare_epsilon(
    *,
    card: Mapping[str, Any] | None,
    scores: Scores | str | Path,
    delta: float | None = None,
    confidence: float = 0.95,
    methods: Sequence[str] | None = None,
    seed: int = 0,
) -> EpsilonComparison:
    """Theoretical ε (from ``card``) against empirical ε (from ``scores``) and a verdict.

    Args:
        card: the training card (``<adapter>/dpaudit.json`` as a dict), or None for "not DP".
        scores: ``{source: (scores (n,), labels (n,))}``, or a scores CSV / a directory of them.
        delta: δ for every number; defaults to the card's ``dp.delta``.
        confidence: family-wise confidence of all the lower bounds together.
        methods: empirical methods (default: all registered).
    """
    _, confidence_f = check_delta_confidence(0.5, confidence)
    assert confidence_f is not None
    theory = theory_from_card(card, delta=delta)
    delta = theory.delta if theory.delta is not None else delta
    if delta is None:
        raise InputError("no δ: the run is not DP, so pass --delta for the empirical numbers", field="delta")
    data = read_scores(scores) if isinstance(scores, (str, Path)) else dict(scores)
    if not data:
        raise InputError("no scores to compare", field="scores")
    names = list(methods) if methods is not None else METHODS.names()
    funcs = {name: METHODS.get(name) for name in names}
    n_bounds = len(data) * sum(name in BOUND_METHODS for name in names)
    per_bound = 1.0 - (1.0 - confidence_f) / max(1, n_bounds)

    eps_theory = theory.epsilon
    guaranteed = theory.guaranteed
    rows: list[ComparisonRow] = []
    for source, (s, y) in data.items():
        for func in funcs.values():
            result = func(s, y, delta=delta, confidence=per_bound, seed=seed)
            eps = float(result.epsilon)
            tight = eps / eps_theory if guaranteed and eps_theory > 0 and math.isfinite(eps_theory) else None
            violates = guaranteed and result.kind == "bound" and eps > eps_theory
            rows.append(ComparisonRow(source=source, result=result, tightness=tight, violates=violates))

    if not guaranteed:
        verdict = NO_GUARANTEE
    elif any(r.violates for r in rows):
        verdict = VIOLATION
    else:
        verdict = CONSISTENT
    notes = []
    if theory.no_guarantee_reason is not None:
        notes.append(f"no DP guarantee: {theory.no_guarantee_reason}")
    notes += [f"{name} n/a ({why})" for name, why in theory.unavailable.items()]
    if theory.group is not None:
        notes.append(f"group privacy: {theory.group.describe()}")
    if n_bounds > 1:
        notes.append(
            f"{n_bounds} lower bounds, each at confidence {per_bound:.4g} (Bonferroni) so that all hold "
            f"together with confidence {confidence_f:g}"
        )
    if any(r.method == "one-run" and abs(r.result.member_fraction - 0.5) >= INCLUSION_RATE_TOLERANCE for r in rows):  # type: ignore[union-attr]
        notes.append(
            "one-run assumes each record was included independently with probability 1/2; "
            "some sources are far from half members"
        )
    if guaranteed and any(r.kind == "estimate" and r.epsilon > eps_theory for r in rows):
        notes.append(
            "a GDP estimate is above the theoretical ε: not a violation (estimates carry no confidence), "
            "but worth a look"
        )
    return EpsilonComparison(
        theory=theory,
        rows=tuple(rows),
        confidence=confidence_f,
        per_bound_confidence=per_bound,
        verdict=verdict,
        delta=float(delta),
        notes=tuple(notes),
    )
