"""Empirical ε from attack scores: two lower bounds and one estimate, behind one registry.

Every method takes ``scores`` (n,) (higher = more likely a member) and ``labels`` (n,) in {0, 1}:

- ``clopper-pearson``: :func:`clopper_pearson_bound` (Jagielski et al. 2020), a bound;
- ``one-run``: :func:`one_run_bound` (Steinke, Nasr & Jagielski 2023), a bound valid for one run;
- ``gdp``: :func:`gdp_estimate`, a μ-GDP fit to the ROC, an estimate (no confidence).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> labels = rng.integers(0, 2, 2000)
>>> scores = rng.normal(size=2000) + 2.0 * labels
>>> results = empirical_epsilons(scores, labels, delta=1e-5)
>>> sorted(results)
['clopper-pearson', 'gdp', 'one-run']
>>> all(results[m].epsilon < 10.0 for m in BOUND_METHODS)   # the true ε of 2-GDP at δ = 1e-5 is 10.0
True
>>> round(results["gdp"].mu, 1)   # the estimate recovers μ, not a bound
2.1
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Union

import numpy as np

from dpaudit.privacy.clopper_pearson import (
    ClopperPearsonBound,
    clopper_pearson_bound,
    clopper_pearson_upper,
)
from dpaudit.privacy.gdp import (
    GdpEstimate,
    auc,
    gdp_delta,
    gdp_epsilon,
    gdp_estimate,
    mu_for_epsilon,
)
from dpaudit.privacy.one_run import (
    OneRunBound,
    default_k_grid,
    one_run_bound,
    one_run_ceiling,
    one_run_p_value,
)
from dpaudit.registry import Registry

EmpiricalResult = Union[ClopperPearsonBound, OneRunBound, GdpEstimate]
#: ``method(scores, labels, *, delta, confidence, seed) -> EmpiricalResult``
Method = Callable[..., EmpiricalResult]

METHODS: Registry[Method] = Registry("empirical method")


@METHODS.register("clopper-pearson")
def _clopper_pearson(
    scores: np.ndarray, labels: np.ndarray, *, delta: float, confidence: float, seed: int
) -> ClopperPearsonBound:
    return clopper_pearson_bound(scores, labels, delta=delta, confidence=confidence, seed=seed)


@METHODS.register("one-run")
def _one_run(scores: np.ndarray, labels: np.ndarray, *, delta: float, confidence: float, seed: int) -> OneRunBound:
    return one_run_bound(scores, labels, delta=delta, confidence=confidence, seed=seed)


@METHODS.register("gdp")
def _gdp(scores: np.ndarray, labels: np.ndarray, *, delta: float, confidence: float, seed: int) -> GdpEstimate:
    return gdp_estimate(scores, labels, delta=delta)


#: Methods whose number is a lower bound with a confidence (may flag a VIOLATION).
BOUND_METHODS = ("clopper-pearson", "one-run")


def empirical_epsilons(
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    delta: float,
    confidence: float = 0.95,
    methods: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, EmpiricalResult]:
    """Run each named method (all registered by default) on the same scores."""
    names = list(methods) if methods is not None else METHODS.names()
    funcs = {name: METHODS.get(name) for name in names}  # unknown names fail before any work
    return {name: f(scores, labels, delta=delta, confidence=confidence, seed=seed) for name, f in funcs.items()}


__all__ = [
    "BOUND_METHODS",
    "METHODS",
    "ClopperPearsonBound",
    "EmpiricalResult",
    "GdpEstimate",
    "OneRunBound",
    "auc",
    "clopper_pearson_bound",
    "clopper_pearson_upper",
    "default_k_grid",
    "empirical_epsilons",
    "gdp_delta",
    "gdp_epsilon",
    "gdp_estimate",
    "mu_for_epsilon",
    "one_run_bound",
    "one_run_ceiling",
    "one_run_p_value",
]
