"""Group privacy: what (ε, δ)-DP promises for a record that occurs k times in the training data.

DP protects one record. A record present k times (exact duplicates, or a canary inserted k times)
differs between neighbouring datasets in k places, and the guarantee degrades to group level:
(kε, k·e^{(k−1)ε}·δ)-DP (Dwork & Roth 2014, Lemma 2.2 generalised to δ > 0). The δ term grows
exponentially in ε. A δ of at least 1/N allows releasing a whole record (the rule ``dpaudit
train`` applies to δ itself), so such a pair is no meaningful guarantee: already at k = 2,
ε = 8, δ = 10⁻⁴ the group δ is 0.6.

>>> g = group_privacy(epsilon=1.0, delta=1e-6, k=2, n=1000)
>>> round(g.epsilon, 3), round(g.delta, 9), g.meaningful
(2.0, 5.437e-06, True)
>>> group_privacy(epsilon=8.0, delta=1e-4, k=2, n=1000).meaningful
False
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dpaudit.privacy.events import check_count, check_delta, raise_problems


@dataclass(frozen=True)
class GroupGuarantee:
    """(ε_k, δ_k) for a group of ``k`` records; ``meaningful`` is False when δ_k ≥ 1/N (or ε is ∞)."""

    k: int
    epsilon: float
    delta: float
    meaningful: bool

    def describe(self) -> str:
        """One line for a warning or a report: the pair, or "no meaningful guarantee"."""
        if not self.meaningful:
            return f"a record repeated {self.k}× has no meaningful DP guarantee (δ_k = k·e^((k−1)ε)·δ ≥ 1/N)"
        return f"a record repeated {self.k}× is protected only at (ε, δ) = ({self.epsilon:.4g}, {self.delta:.3g})"

    def to_json(self) -> dict[str, Any]:
        finite = self.meaningful and math.isfinite(self.epsilon)
        return {
            "k": self.k,
            "epsilon": self.epsilon if finite else None,
            "delta": self.delta if finite else None,
            "meaningful": self.meaningful,
        }


def group_privacy(*, epsilon: float, delta: float, k: int, n: int | None = None) -> GroupGuarantee:
    """The guarantee (kε, k·e^{(k−1)ε}·δ) for a record occurring ``k`` ≥ 1 times (δ_k capped at 1).

    ``n``: training examples N; the pair is meaningful only while δ_k < 1/N (δ_k < 1 without N).
    """
    problems: list[str] = []
    check_count(k, problems, "k")
    check_delta(delta, problems)
    if not epsilon >= 0:
        problems.append(f"`epsilon` must be >= 0, got {epsilon!r}")
    raise_problems(problems)
    k = int(k)
    if math.isinf(epsilon):
        return GroupGuarantee(k=k, epsilon=math.inf, delta=1.0, meaningful=False)
    log_delta_k = math.log(k) + (k - 1) * epsilon + math.log(delta)
    delta_k = 1.0 if log_delta_k >= 0 else math.exp(log_delta_k)
    return GroupGuarantee(k=k, epsilon=k * epsilon, delta=delta_k, meaningful=delta_k < 1.0 / (n or 1))


__all__ = ["GroupGuarantee", "group_privacy"]
