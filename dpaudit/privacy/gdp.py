"""A point *estimate* of ε: fit μ-Gaussian DP to the attack's ROC (Dong, Roth & Su 2019).

Under μ-GDP the best membership test has the ROC of N(0, 1) against N(μ, 1), whose AUC is
Φ(μ/√2); so μ̂ = √2 · Φ⁻¹(AUC). The (ε, δ) curve of μ-GDP is exact:

    δ(ε) = Φ(−ε/μ + μ/2) − e^ε · Φ(−ε/μ − μ/2),

solved here for ε. This says how private the model *looks* to this attack, assuming its ROC is
Gaussian-shaped; it carries no confidence statement and is not a bound. (DP-SGD itself is
close to μ-GDP, which is why the shape assumption is a reasonable first reading.)

>>> round(gdp_epsilon(mu=2.0, delta=1e-5), 2)
10.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy import optimize, special, stats

from dpaudit.errors import ConfigError
from dpaudit.privacy._arrays import (
    check_delta_confidence,
    check_scores_labels,
    finite_or_none,
)


def gdp_delta(*, epsilon: float, mu: float) -> float:
    """δ(ε) of μ-GDP (computed in log space so that large ε and μ do not overflow)."""
    if mu <= 0:
        return 0.0
    if math.isinf(mu):
        return 1.0
    first = special.log_ndtr(-epsilon / mu + mu / 2)
    second = epsilon + special.log_ndtr(-epsilon / mu - mu / 2)
    return float(max(0.0, math.exp(first) - math.exp(second)))


def gdp_epsilon(*, mu: float, delta: float) -> float:
    """The smallest ε with δ(ε) ≤ ``delta`` for μ-GDP (0 for μ ≤ 0, ∞ for μ = ∞)."""
    check_delta_confidence(delta)
    if mu <= 0 or gdp_delta(epsilon=0.0, mu=mu) <= delta:
        return 0.0
    if math.isinf(mu):
        return math.inf
    hi = 1.0
    while gdp_delta(epsilon=hi, mu=mu) > delta:
        hi *= 2.0
    return float(optimize.brentq(lambda e: gdp_delta(epsilon=e, mu=mu) - delta, 0.0, hi, xtol=1e-12))


def mu_for_epsilon(*, epsilon: float, delta: float) -> float:
    """The μ whose μ-GDP guarantee is exactly (ε, δ): handy to simulate a mechanism of known ε."""
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise ConfigError(f"`epsilon` must be a finite number > 0, got {epsilon!r}")
    hi = 1.0
    while gdp_epsilon(mu=hi, delta=delta) < epsilon:
        hi *= 2.0
    return float(optimize.brentq(lambda mu: gdp_epsilon(mu=mu, delta=delta) - epsilon, 1e-9, hi, xtol=1e-12))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC (Mann–Whitney; ties count one half). Shapes (n,), higher = member."""
    s, y = check_scores_labels(scores, labels)
    ranks = stats.rankdata(s)
    p = int(y.sum())
    n = y.size - p
    return float((ranks[y == 1].sum() - p * (p + 1) / 2.0) / (p * n))


@dataclass(frozen=True)
class GdpEstimate:
    """Result of :func:`gdp_estimate`: an estimate (``kind="estimate"``), with no confidence."""

    epsilon: float
    mu: float
    auc: float
    delta: float
    n_members: int
    n_nonmembers: int

    method: ClassVar[str] = "gdp"
    kind: ClassVar[str] = "estimate"
    confidence: ClassVar[None] = None

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "kind": self.kind,
            "epsilon": finite_or_none(self.epsilon),
            "mu": finite_or_none(self.mu),
            "auc": self.auc,
            "delta": self.delta,
            "n_members": self.n_members,
            "n_nonmembers": self.n_nonmembers,
        }


def gdp_estimate(scores: np.ndarray, labels: np.ndarray, *, delta: float) -> GdpEstimate:
    """Fit μ-GDP to the ROC through its AUC and convert to ε(δ). Not a bound.

    An AUC at or below 1/2 gives μ = 0 (ε = 0); perfect separation gives μ = ε = ∞.
    """
    s, y = check_scores_labels(scores, labels)
    delta, _ = check_delta_confidence(delta)
    area = auc(s, y)
    if area >= 1.0:
        mu = math.inf
    else:
        mu = max(0.0, math.sqrt(2.0) * float(stats.norm.ppf(area)))
    p = int(y.sum())
    return GdpEstimate(
        epsilon=gdp_epsilon(mu=mu, delta=delta), mu=mu, auc=area, delta=delta, n_members=p, n_nonmembers=int(y.size - p)
    )
