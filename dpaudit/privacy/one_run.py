"""Empirical ε lower bound from one training run (Steinke, Nasr & Jagielski 2023).

Setting: m canaries, each included in training independently with probability 1/2 (``labels``);
after training the auditor scores every canary, guesses "in" for the k₊ highest scores and "out"
for the k₋ lowest, and abstains on the rest. With r = k₊ + k₋ guesses of which v are right and
q = e^ε / (1 + e^ε), an (ε, δ)-DP training run gives

    p(ε) = P[Bin(r, q) ≥ v] + 2mδ · max_{i=1..v} (1/i) · P[v − i ≤ Bin(r, q) < v]

as a p-value for "≥ v correct" (the δ term is never dropped), and ε_lb is the largest ε with
p(ε) ≤ 1 − confidence. The scores of all canaries come from the *same* run: unlike
:mod:`dpaudit.privacy.clopper_pearson`, no independence between canaries is assumed.

Trying several (k₊, k₋) costs confidence: each is tested at (1 − confidence)/#grid (Bonferroni),
which in an ideal audit (μ-GDP scores, m = 1000, δ = 10⁻⁵) gives mean ε_lb ≈ 0.6, 1.4, 2.6 at a
true ε of 2, 4, 8. Finite m caps every audit: even perfect guesses on all m canaries certify only
:func:`one_run_ceiling` (≈ 5.8 for m = 1000, δ = 10⁻⁵, 95%).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy import special

from dpaudit.errors import ConfigError
from dpaudit.privacy._arrays import check_delta_confidence, check_scores_labels
from dpaudit.privacy.lower_bound import LowerBound

#: Default guess counts, as fractions of m: k₊ = k₋ = round(f·m).
DEFAULT_K_FRACTIONS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.5)
#: The theorem assumes inclusion with probability ½; a label rate this far from ½ breaks it visibly.
INCLUSION_RATE_TOLERANCE = 0.05
_EPS_MAX = 64.0  # q = expit(64) is 1 to double precision: nothing beyond is certifiable
_XTOL = 1e-7


def one_run_p_value(*, m: int, guesses: int, correct: int, epsilon: float, delta: float) -> float:
    """Upper bound on P[≥ ``correct`` right out of ``guesses``] for an (ε, δ)-DP run with m canaries."""
    r, v = int(guesses), int(correct)
    if not 0 <= v <= r <= m:
        raise ConfigError(f"need 0 <= correct <= guesses <= m, got correct={v}, guesses={r}, m={m}")
    beta = _binom_sf(v, r, epsilon)  # P[Bin(r, q) >= v]
    if v == 0 or delta == 0:
        return min(1.0, beta)
    # P[v - i <= Bin < v] for i = 1..v is the running sum of pmf(v-1), pmf(v-2), ..., pmf(0).
    j = np.arange(v - 1, -1, -1, dtype=np.float64)
    log_pmf = (
        special.gammaln(r + 1.0)
        - special.gammaln(j + 1.0)
        - special.gammaln(r - j + 1.0)
        + j * special.log_expit(epsilon)
        + (r - j) * special.log_expit(-epsilon)
    )
    window = np.cumsum(np.exp(log_pmf))
    alpha = float(np.max(window / np.arange(1, v + 1)))
    return min(1.0, beta + 2.0 * m * delta * alpha)


def _binom_sf(v: int, r: int, epsilon: float) -> float:
    """P[Bin(r, q) ≥ v] with q = e^ε/(1 + e^ε) (scipy.special directly: this sits in a tight loop)."""
    if v <= 0:
        return 1.0
    return float(special.bdtrc(v - 1, r, float(special.expit(epsilon))))


def _rejects(*, m: int, guesses: int, correct: int, epsilon: float, delta: float, alpha: float) -> bool:
    """``one_run_p_value(...) <= alpha``, skipping the δ term when the first term already exceeds alpha."""
    if _binom_sf(correct, guesses, epsilon) > alpha:
        return False
    return one_run_p_value(m=m, guesses=guesses, correct=correct, epsilon=epsilon, delta=delta) <= alpha


def one_run_epsilon(*, m: int, guesses: int, correct: int, delta: float, alpha: float) -> float:
    """Largest ε (to a relative 10⁻⁷) with p-value ≤ ``alpha``; 0 when even ε = 0 is not rejected.

    Any ε with p(ε) ≤ alpha is a valid bound, so the bisection keeps ``lo`` on that side.
    """

    def rejected(eps: float) -> bool:
        return _rejects(m=m, guesses=guesses, correct=correct, epsilon=eps, delta=delta, alpha=alpha)

    if not rejected(0.0):
        return 0.0
    lo, hi = 0.0, 1.0
    while rejected(hi):
        lo, hi = hi, 2.0 * hi
        if hi > _EPS_MAX:
            return lo
    while hi - lo > _XTOL * max(1.0, lo):
        mid = 0.5 * (lo + hi)
        if rejected(mid):
            lo = mid
        else:
            hi = mid
    return lo


def one_run_ceiling(*, m: int, delta: float, confidence: float = 0.95, guesses: int | None = None) -> float:
    """The ε certified if all ``guesses`` (default: all m) guesses are right: the audit's resolution."""
    r = m if guesses is None else int(guesses)
    return one_run_epsilon(m=m, guesses=r, correct=r, delta=delta, alpha=1.0 - confidence)


def default_k_grid(m: int) -> tuple[tuple[int, int], ...]:
    """Symmetric (k₊, k₋) pairs at :data:`DEFAULT_K_FRACTIONS` of m, 1 ≤ k ≤ m // 2."""
    ks: list[int] = []
    for f in DEFAULT_K_FRACTIONS:
        k = min(m // 2, max(1, round(f * m)))
        if k >= 1 and k not in ks:
            ks.append(k)
    return tuple((k, k) for k in ks)


def _normalise_grid(k_grid: Sequence[int | tuple[int, int]] | None, m: int) -> tuple[tuple[int, int], ...]:
    if k_grid is None:
        grid = default_k_grid(m)
    else:
        grid = tuple((int(k), int(k)) if np.isscalar(k) else (int(k[0]), int(k[1])) for k in k_grid)  # type: ignore[index]
    problems = [f"(k_plus={kp}, k_minus={km})" for kp, km in grid if kp < 0 or km < 0 or kp + km < 1 or kp + km > m]
    if not grid or problems:
        raise ConfigError(
            f"`k_grid` entries need k_plus, k_minus >= 0 and 1 <= k_plus + k_minus <= m={m}; "
            f"bad: {', '.join(problems) or 'empty grid'}"
        )
    return tuple(dict.fromkeys(grid))


@dataclass(frozen=True)
class OneRunBound(LowerBound):
    """Result of :func:`one_run_bound` (``k_plus``/``k_minus``/``guesses``/``correct``: the winning test)."""

    m: int
    k_plus: int
    k_minus: int
    guesses: int
    correct: int
    ceiling: float
    ceiling_with_search: float
    grid: tuple[tuple[int, int], ...]
    member_fraction: float

    method: ClassVar[str] = "one-run"

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "grid": [list(g) for g in self.grid], "correction": "bonferroni"}


def one_run_bound(
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    delta: float,
    confidence: float = 0.95,
    k_grid: Sequence[int | tuple[int, int]] | None = None,
    seed: int = 0,
) -> OneRunBound:
    """ε lower bound from one run's canary scores, valid with probability ≥ ``confidence``.

    Args:
        scores: (m,) canary scores, higher = more likely included.
        labels: (m,) inclusion bits, each drawn independently with probability 1/2 before training
            (the theorem's assumption). A rate of 1s at least 0.05 away from ½ warns, and then a
            grid with k₊ ≠ k₋ is refused: with 80% members, guessing "in" for the top k is right
            80% of the time by chance alone, so a one-sided grid certifies ε > 0 with no signal.
        k_grid: (k₊, k₋) pairs to try, or ints k meaning (k, k); default :func:`default_k_grid`.
        seed: breaks ties between equal scores at random (never by position, which might follow
            the labels).
    """
    s, y = check_scores_labels(scores, labels)
    delta, confidence = check_delta_confidence(delta, confidence)
    assert confidence is not None
    m = int(s.size)
    grid = _normalise_grid(k_grid, m)
    rate = float(y.mean())
    if abs(rate - 0.5) >= INCLUSION_RATE_TOLERANCE:
        lopsided = [g for g in grid if g[0] != g[1]]
        if lopsided:
            raise ConfigError(
                f"one-run bounds assume each canary was included with probability 1/2, but {rate:.0%} of the labels "
                f"are 1; a grid with k_plus != k_minus ({lopsided[0]}) would certify leakage from that imbalance "
                "alone: use symmetric (k, k) guesses or canaries included with probability 1/2"
            )
        warnings.warn(
            f"one-run bounds assume inclusion with probability 1/2; {rate:.0%} of the labels are 1", stacklevel=2
        )
    alpha = (1.0 - confidence) / len(grid)

    perm = np.random.default_rng(seed).permutation(m)
    order = perm[np.argsort(s[perm], kind="stable")]  # ascending score, random among ties
    y_sorted = y[order].astype(np.int64)
    # correct "in" guesses among the top k, correct "out" guesses among the bottom k
    top_hits = np.r_[0, np.cumsum(y_sorted[::-1])]
    bottom_hits = np.r_[0, np.cumsum(1 - y_sorted)]

    best = (-1.0, grid[0], 0, 0)
    for kp, km in grid:
        r = kp + km
        v = int(top_hits[kp] + bottom_hits[km])
        if best[0] > 0 and not _rejects(m=m, guesses=r, correct=v, epsilon=best[0], delta=delta, alpha=alpha):
            continue  # cannot beat the best so far
        eps = one_run_epsilon(m=m, guesses=r, correct=v, delta=delta, alpha=alpha)
        if eps > best[0]:
            best = (eps, (kp, km), r, v)
    eps, (kp, km), r, v = best
    max_r = max(a + b for a, b in grid)
    return OneRunBound(
        epsilon_lb=eps,
        confidence=confidence,
        delta=delta,
        m=m,
        k_plus=kp,
        k_minus=km,
        guesses=r,
        correct=v,
        ceiling=one_run_ceiling(m=m, delta=delta, confidence=confidence),
        ceiling_with_search=one_run_epsilon(m=m, guesses=max_r, correct=max_r, delta=delta, alpha=alpha),
        grid=grid,
        member_fraction=rate,
    )


__all__ = [
    "OneRunBound",
    "default_k_grid",
    "one_run_bound",
    "one_run_ceiling",
    "one_run_epsilon",
    "one_run_p_value",
]
