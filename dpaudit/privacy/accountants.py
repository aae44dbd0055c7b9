"""Theoretical ε: thin, validated wrappers over opacus's PRV and RDP accountants.

Nothing here re-implements accounting; each accountant hands opacus the ledger's
``(noise_multiplier, sample_rate, steps)`` history and returns its ε. The one formula written
out is :func:`no_amplification_epsilon`, a deliberately pessimistic reference point.

>>> round(compute_epsilon(noise_multiplier=1.0, sample_rate=0.01, steps=1000, delta=1e-5), 1)
1.8
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

from dpaudit.errors import ConfigError
from dpaudit.privacy.events import (
    Composed,
    NonPrivate,
    NoOp,
    PoissonSampledGaussian,
    PrivacyEvent,
    check_count,
    check_delta,
    check_noise_multiplier,
    check_sample_rate,
    flatten,
    is_real,
    raise_problems,
)
from dpaudit.registry import Registry

#: Largest σ that calibration will try before calling a target unreachable (opacus's limit).
MAX_NOISE_MULTIPLIER = 1e6
#: Calibration lands in [(1 - CALIBRATION_TOLERANCE)·target, target].
CALIBRATION_TOLERANCE = 0.01
DEFAULT_ACCOUNTANT = "prv"

History = list[tuple[float, float, int]]


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence opacus's "optimal order is the largest alpha" chatter: ε stays a valid upper bound."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Oo]ptimal order.*")
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        yield


class Accountant(ABC):
    """Turns privacy events into ε(δ). Subclasses are registered in :data:`ACCOUNTANTS`.

    Contract (tested for every registered accountant): no events give ε = 0, a
    :class:`NonPrivate` event gives ε = ∞, ε grows with steps and with the sample rate and
    vanishes as the noise grows.
    """

    name: ClassVar[str]
    #: opacus's accountant name, for ``opacus.accountants.utils.get_noise_multiplier``.
    opacus_mechanism: ClassVar[str]

    def epsilon(self, events: Iterable[PrivacyEvent], *, delta: float) -> float:
        problems: list[str] = []
        check_delta(delta, problems)
        raise_problems(problems)
        history: History = []
        for leaf, count in flatten(events):
            if isinstance(leaf, NonPrivate):
                return math.inf
            if isinstance(leaf, PoissonSampledGaussian):
                history.append((leaf.noise_multiplier, leaf.sample_rate, count))
            elif not isinstance(leaf, NoOp):
                raise ConfigError(f"accountant '{self.name}' does not support event {leaf!r}")
        if not history:
            return 0.0
        with _quiet():
            return float(self._epsilon(history, float(delta)))

    @abstractmethod
    def _epsilon(self, history: History, delta: float) -> float: ...

    def calibration_kwargs(self, target_epsilon: float) -> dict[str, Any]:
        """Extra ``get_epsilon`` arguments opacus should use while calibrating."""
        return {}


ACCOUNTANTS: Registry[type[Accountant]] = Registry("accountant")


@ACCOUNTANTS.register("prv")
class PrvAccountant(Accountant):
    """Privacy-loss random variables (Gopi et al. 2021) via opacus: numerically tight.

    opacus returns an *upper* bound that may exceed the true ε by up to ``eps_error`` (absolute,
    0.01 by default); for small ε we recompute with an error of 0.4% of ε (at least 5·10⁻⁴) so that
    the value is within 1% of an exact PLD accountant.
    """

    name = "prv"
    opacus_mechanism = "prv"
    RELATIVE_ERROR: ClassVar[float] = 0.004
    MIN_EPS_ERROR: ClassVar[float] = 5e-4
    DEFAULT_EPS_ERROR: ClassVar[float] = 0.01

    def _eps_error(self, epsilon: float) -> float:
        return min(self.DEFAULT_EPS_ERROR, max(self.MIN_EPS_ERROR, self.RELATIVE_ERROR * epsilon))

    def _epsilon(self, history: History, delta: float) -> float:
        from opacus.accountants import PRVAccountant

        def run(eps_error: float) -> float:
            acc = PRVAccountant()
            acc.history = list(history)
            return float(acc.get_epsilon(delta=delta, eps_error=eps_error))

        first = run(self.DEFAULT_EPS_ERROR)
        finer = self._eps_error(first)
        return first if finer >= self.DEFAULT_EPS_ERROR else min(first, run(finer))

    def calibration_kwargs(self, target_epsilon: float) -> dict[str, Any]:
        return {"eps_error": self._eps_error(target_epsilon)}


@ACCOUNTANTS.register("rdp")
class RdpAccountant(Accountant):
    """Rényi DP (Mironov 2017; sampled Gaussian of Mironov et al. 2019) via opacus, with opacus's
    default orders and the Balle et al. 2020 RDP-to-(ε, δ) conversion. Looser than PRV."""

    name = "rdp"
    opacus_mechanism = "rdp"

    def _epsilon(self, history: History, delta: float) -> float:
        from opacus.accountants import RDPAccountant

        acc = RDPAccountant()
        acc.history = list(history)
        return float(acc.get_epsilon(delta=delta))


def _validate(
    *,
    noise_multiplier: Any = None,
    sample_rate: Any = None,
    steps: Any = None,
    delta: Any = None,
    target_epsilon: Any = None,
    accountant: str | None = None,
) -> None:
    problems: list[str] = []
    if noise_multiplier is not None:
        check_noise_multiplier(noise_multiplier, problems)
    if target_epsilon is not None:
        if not is_real(target_epsilon) or not (math.isfinite(float(target_epsilon)) and float(target_epsilon) > 0):
            problems.append(f"`target_epsilon` must be a finite number > 0, got {target_epsilon!r}")
    if sample_rate is not None:
        check_sample_rate(sample_rate, problems)
    if steps is not None:
        check_count(steps, problems, "steps")
    if delta is not None:
        check_delta(delta, problems)
    raise_problems(problems)
    if accountant is not None:
        ACCOUNTANTS.get(accountant)  # unknown names list the registered ones


def epsilon_of_events(events: Iterable[PrivacyEvent], *, delta: float, accountant: str = DEFAULT_ACCOUNTANT) -> float:
    """ε(δ) of a sequence of events (what :meth:`PrivacyLedger.epsilon` calls)."""
    return ACCOUNTANTS.get(accountant)().epsilon(events, delta=delta)


def compute_epsilon(
    *, noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str = DEFAULT_ACCOUNTANT
) -> float:
    """ε(δ) of DP-SGD: ``steps`` Poisson-sampled Gaussian steps (rate ``sample_rate``, noise σ).

    Raises :class:`ConfigError` naming the parameter for q ∉ (0, 1], σ ≤ 0, δ ∉ (0, 1), T < 1.
    """
    _validate(
        noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps, delta=delta, accountant=accountant
    )
    event = Composed(PoissonSampledGaussian(noise_multiplier, sample_rate), int(steps))
    return epsilon_of_events([event], delta=delta, accountant=accountant)


def compute_epsilons(
    *, noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountants: Sequence[str] | None = None
) -> dict[str, float]:
    """ε(δ) by each accountant (all registered ones by default)."""
    names = list(accountants) if accountants is not None else ACCOUNTANTS.names()
    return {
        name: compute_epsilon(
            noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps, delta=delta, accountant=name
        )
        for name in names
    }


def calibrate_noise_multiplier(
    *, target_epsilon: float, sample_rate: float, steps: int, delta: float, accountant: str = DEFAULT_ACCOUNTANT
) -> float:
    """The σ whose ε(δ) lands in [(1 − 1%)·target, target] (opacus's ``get_noise_multiplier``).

    The landed ε is re-checked with :func:`compute_epsilon`, so a σ returned here never promises
    less privacy than asked. Raises :class:`ConfigError` when no σ ≤ 10⁶ reaches the target.
    """
    _validate(target_epsilon=target_epsilon, sample_rate=sample_rate, steps=steps, delta=delta, accountant=accountant)
    from opacus.accountants.utils import get_noise_multiplier

    acc = ACCOUNTANTS.get(accountant)()
    target = float(target_epsilon)

    def landed(sigma: float) -> float:
        return compute_epsilon(
            noise_multiplier=sigma, sample_rate=sample_rate, steps=steps, delta=delta, accountant=accountant
        )

    try:
        with _quiet():
            sigma = float(
                get_noise_multiplier(
                    target_epsilon=target,
                    target_delta=float(delta),
                    sample_rate=float(sample_rate),
                    steps=int(steps),
                    accountant=acc.opacus_mechanism,
                    epsilon_tolerance=CALIBRATION_TOLERANCE * target,
                    **acc.calibration_kwargs(target),
                )
            )
    except ValueError as exc:
        if "too low" not in str(exc):
            raise
        raise ConfigError(
            f"`target_epsilon` {target!r} is unreachable: even noise_multiplier={MAX_NOISE_MULTIPLIER:g} gives more "
            f"(sample_rate={sample_rate}, steps={steps}, delta={delta}); raise the target or lower steps/sample rate"
        ) from None
    # Re-check with our own (possibly finer) evaluation; nudge σ up if it lands a hair above.
    eps = landed(sigma)
    for _ in range(60):
        if eps <= target:
            break
        sigma *= 1.001
        eps = landed(sigma)
    if eps > target or eps < (1 - 5 * CALIBRATION_TOLERANCE) * target:
        raise ConfigError(f"calibration for `target_epsilon` {target!r} landed at ε={eps:.4g} (σ={sigma:.4g})")
    return sigma


def no_amplification_epsilon(*, noise_multiplier: float, steps: int, delta: float) -> float:
    """ε(δ) of T full-batch Gaussian steps with no credit for subsampling (a pessimistic reference).

    Each step is a Gaussian mechanism with sensitivity C and noise σC, i.e. ρ-zCDP with ρ = 1/(2σ²);
    T steps compose to ρ = T/(2σ²), and ρ-zCDP implies (ρ + 2√(ρ ln(1/δ)), δ)-DP (Bun & Steinke 2016).
    This is the honest form of the popular shortcut ε ≈ T·C²/(2σ²), which is only the ρ term (the
    privacy loss's mean) and forgets its spread. Poisson subsampling at rate q is what makes the
    accountants' ε much smaller: each example is touched in only ≈ qT steps, and even then hides
    among the others in the batch.
    """
    _validate(noise_multiplier=noise_multiplier, steps=steps, delta=delta)
    rho = int(steps) / (2.0 * float(noise_multiplier) ** 2)
    return rho + 2.0 * math.sqrt(rho * math.log(1.0 / float(delta)))
