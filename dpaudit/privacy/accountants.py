"""Theoretical ε: thin, validated wrappers over opacus's PRV and RDP accountants.

Nothing here re-implements accounting; each accountant hands opacus the ledger's
``(noise_multiplier, sample_rate, steps)`` history and returns its ε. The one formula written
out is :func:`no_amplification_epsilon`, a deliberately pessimistic reference point.

An accountant that cannot answer for some parameters (PRV's grid would not fit in memory, opacus
fails numerically) raises :class:`AccountantUnavailable`; callers show "n/a (reason)" and carry on
with the others, and :func:`answer_epsilon` falls back to RDP, an upper bound, so still a safe
promise. Calibration (:func:`calibrate`) brackets σ with RDP, which is cheap for every target, and
lets the slower PRV refine inside the bracket, so it finishes in seconds for any target.

>>> round(compute_epsilon(noise_multiplier=1.0, sample_rate=0.01, steps=1000, delta=1e-5), 1)
1.8
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from dpaudit.errors import ConfigError, DpauditError
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
#: Smallest σ calibration tries: a target that even this little noise meets gives no useful guarantee.
MIN_NOISE_MULTIPLIER = 0.01
#: Calibration lands in [(1 - CALIBRATION_TOLERANCE)·target, target].
CALIBRATION_TOLERANCE = 0.01
DEFAULT_ACCOUNTANT = "prv"
#: The accountant that answers when another declines: RDP is an upper bound and cheap for any input.
FALLBACK_ACCOUNTANT = "rdp"
#: Orders RDP adds to opacus's defaults (≤ 63): without them RDP cannot certify ε below ≈ 0.1 at
#: δ = 1e-5 however large σ is (the conversion's log(1/δ)/(α − 1) term). Integer orders stay exact.
RDP_EXTRA_ORDERS = (128, 256, 512, 1024, 2048, 4096)
#: PRV's memory per point of its discretisation grid, measured with tracemalloc (opacus 1.6).
PRV_BYTES_PER_GRID_POINT = 67
#: PRV declines (RDP answers) when its grid would need more than this (q = 1, T = 10⁴, σ = 0.3 asks for ≈ 250 GiB);
#: at ≈ 4·10⁶ points one PRV evaluation takes seconds, so calibration (a few evaluations) stays within a minute.
PRV_MEMORY_BUDGET_BYTES = 256 * 2**20

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
        try:
            with _quiet():
                epsilon = float(self._epsilon(history, float(delta)))
        except (ArithmeticError, MemoryError, RuntimeError, ValueError) as exc:  # opacus's numerics gave up
            raise AccountantUnavailable(f"{self.name} failed: {type(exc).__name__}: {exc}") from None
        if math.isnan(epsilon):
            raise AccountantUnavailable(f"{self.name} returned ε = NaN (numerical breakdown)")
        return max(epsilon, 0.0)  # a conversion may undershoot 0 when the true ε is ≈ 0: (0, δ)-DP holds then

    @abstractmethod
    def _epsilon(self, history: History, delta: float) -> float: ...


class AccountantUnavailable(DpauditError):
    """This accountant cannot answer for these parameters (the message says why); the others still can."""


ACCOUNTANTS: Registry[type[Accountant]] = Registry("accountant")


@ACCOUNTANTS.register("prv")
class PrvAccountant(Accountant):
    """Privacy-loss random variables (Gopi et al. 2021) via opacus: numerically tight.

    opacus returns an *upper* bound that may exceed the true ε by up to ``eps_error`` (absolute,
    0.01 by default); for small ε we recompute with an error of 0.4% of ε, but never below 5·10⁻⁴,
    so the value is within about 1% of an exact PLD accountant for ε ≥ 0.05 (the tests pin this on
    a grid of usual DP-SGD settings) and looser in relative terms below: :data:`PRV_ERROR_FLOOR`.
    The grid opacus would discretise is sized first; above :data:`PRV_MEMORY_BUDGET_BYTES` the
    accountant declines (:class:`AccountantUnavailable`) instead of running out of memory.
    """

    name = "prv"
    RELATIVE_ERROR: ClassVar[float] = 0.004
    MIN_EPS_ERROR: ClassVar[float] = 5e-4
    DEFAULT_EPS_ERROR: ClassVar[float] = 0.01

    def _eps_error(self, epsilon: float) -> float:
        return min(self.DEFAULT_EPS_ERROR, max(self.MIN_EPS_ERROR, self.RELATIVE_ERROR * epsilon))

    def _epsilon(self, history: History, delta: float) -> float:
        from opacus.accountants import PRVAccountant

        def run(eps_error: float) -> float:
            check_prv_memory(history, delta=delta, eps_error=eps_error)
            acc = PRVAccountant()
            acc.history = list(history)
            return float(acc.get_epsilon(delta=delta, eps_error=eps_error))

        first = run(self.DEFAULT_EPS_ERROR)
        if not math.isfinite(first):  # the privacy loss ran off opacus's truncated grid (ε in the thousands)
            raise AccountantUnavailable("PRV's ε overflowed its grid at this σ")
        finer = self._eps_error(first)
        if finer >= self.DEFAULT_EPS_ERROR:
            return first
        try:
            return min(first, run(finer))
        except AccountantUnavailable:  # the finer grid would not fit: the first answer is still an upper bound
            return first


#: Below this ε, PRV's smallest error (5·10⁻⁴) exceeds the calibration tolerance (1%): RDP calibrates there.
PRV_ERROR_FLOOR = PrvAccountant.MIN_EPS_ERROR / CALIBRATION_TOLERANCE


def prv_grid_bytes(history: History, *, delta: float, eps_error: float) -> float:
    """Estimated memory of opacus's PRV grid for ``history`` (its domain size and mesh, as opacus picks them)."""
    from opacus.accountants.analysis.prv import PoissonSubsampledGaussianPRV, compute_safe_domain_size

    delta_error = delta / 1000  # opacus's default
    prvs = [PoissonSubsampledGaussianPRV(q, sigma) for sigma, q, _ in history]
    counts = [steps for _, _, steps in history]
    half_width = compute_safe_domain_size(
        prvs=prvs, max_self_compositions=counts, eps_error=eps_error, delta_error=delta_error
    )
    mesh = eps_error / math.sqrt(sum(counts) * math.log(12 / delta_error) / 2)
    return 2 * half_width / mesh * PRV_BYTES_PER_GRID_POINT


def check_prv_memory(history: History, *, delta: float, eps_error: float) -> None:
    """Raise :class:`AccountantUnavailable` when PRV's grid would exceed :data:`PRV_MEMORY_BUDGET_BYTES`."""
    needed = prv_grid_bytes(history, delta=delta, eps_error=eps_error)
    if not needed <= PRV_MEMORY_BUDGET_BYTES:
        raise AccountantUnavailable(
            f"PRV's grid would need ≈ {needed / 2**30:.3g} GiB, above its {PRV_MEMORY_BUDGET_BYTES / 2**30:g} GiB budget"
        )


@ACCOUNTANTS.register("rdp")
class RdpAccountant(Accountant):
    """Rényi DP (Mironov 2017; sampled Gaussian of Mironov et al. 2019) via opacus, with opacus's
    default orders plus :data:`RDP_EXTRA_ORDERS` and the Balle et al. 2020 RDP-to-(ε, δ)
    conversion. Looser than PRV, but cheap for every input: the fallback when PRV declines."""

    name = "rdp"

    def _epsilon(self, history: History, delta: float) -> float:
        from opacus.accountants import RDPAccountant

        acc = RDPAccountant()
        acc.history = list(history)
        epsilon, best_order = acc.get_privacy_spent(delta=delta)
        if best_order < max(acc.DEFAULT_ALPHAS):
            return float(epsilon)
        # The best order is the largest default one: larger orders may certify less (slow for large q).
        return float(min(epsilon, acc.get_privacy_spent(delta=delta, alphas=list(RDP_EXTRA_ORDERS))[0]))


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


@dataclass(frozen=True)
class EpsilonAnswer:
    """ε and the accountant that gave it; ``note`` says why it is not the one asked for."""

    epsilon: float
    accountant: str
    note: str | None = None


def answer_epsilon(
    events: Iterable[PrivacyEvent], *, delta: float, accountant: str = DEFAULT_ACCOUNTANT
) -> EpsilonAnswer:
    """ε by ``accountant``, or by :data:`FALLBACK_ACCOUNTANT` when it declines (an upper bound, so still safe)."""
    events = list(events)
    try:
        return EpsilonAnswer(epsilon_of_events(events, delta=delta, accountant=accountant), accountant)
    except AccountantUnavailable as exc:
        if accountant == FALLBACK_ACCOUNTANT:
            raise
        epsilon = epsilon_of_events(events, delta=delta, accountant=FALLBACK_ACCOUNTANT)
        return EpsilonAnswer(epsilon, FALLBACK_ACCOUNTANT, f"{accountant} n/a ({exc}); {FALLBACK_ACCOUNTANT} answered")


@dataclass(frozen=True)
class Calibration:
    """The σ found for a target ε; ``accountant`` is the one whose ε it was calibrated to."""

    noise_multiplier: float
    epsilon: float
    accountant: str
    note: str | None = None


def calibrate(
    *, target_epsilon: float, sample_rate: float, steps: int, delta: float, accountant: str = DEFAULT_ACCOUNTANT
) -> Calibration:
    """The σ whose ε(δ) lands in [(1 − 1%)·target, target], in seconds for every target.

    RDP brackets σ first: it is cheap for any input and an upper bound, so its σ is always safe.
    PRV (tighter, so it needs less noise) then refines below that σ. RDP answers alone, and
    says why, when the target is below PRV's error floor (:data:`PRV_ERROR_FLOOR`) or PRV
    declines (grid over its memory budget). Raises :class:`ConfigError` when no σ ≤ 10⁶
    reaches the target, or when even σ = :data:`MIN_NOISE_MULTIPLIER` meets it (no useful noise
    level corresponds to such a target).
    """
    _validate(target_epsilon=target_epsilon, sample_rate=sample_rate, steps=steps, delta=delta, accountant=accountant)
    target = float(target_epsilon)

    def epsilon_by(name: str) -> Callable[[float], float]:
        def epsilon(sigma: float) -> float:
            return compute_epsilon(
                noise_multiplier=sigma, sample_rate=sample_rate, steps=steps, delta=delta, accountant=name
            )

        return epsilon

    rdp = epsilon_by(FALLBACK_ACCOUNTANT)
    lo, hi = _bracket(rdp, target)
    sigma_rdp, eps_rdp = _solve(rdp, target, lo=lo, hi=hi)
    if accountant == FALLBACK_ACCOUNTANT:
        return Calibration(sigma_rdp, eps_rdp, FALLBACK_ACCOUNTANT)
    if target < PRV_ERROR_FLOOR:
        note = f"target below {accountant}'s error floor (ε < {PRV_ERROR_FLOOR:g}); {FALLBACK_ACCOUNTANT} answered"
        return Calibration(sigma_rdp, eps_rdp, FALLBACK_ACCOUNTANT, note)
    tight = epsilon_by(accountant)
    try:
        if tight(sigma_rdp) > target:  # not tighter here (PRV's own error at huge ε): RDP's σ stands
            return Calibration(sigma_rdp, eps_rdp, FALLBACK_ACCOUNTANT, f"{accountant} is above {FALLBACK_ACCOUNTANT} here")
        lo = sigma_rdp
        for factor in (0.85, 0.7, 0.5, 0.25, 0.1, 0.01):  # the tighter accountant needs less noise: bracket it
            lo = max(sigma_rdp * factor, MIN_NOISE_MULTIPLIER)
            if lo == MIN_NOISE_MULTIPLIER or _safe(tight, lo) > target:
                break
        sigma, eps = _solve(tight, target, lo=lo, hi=sigma_rdp)
    except AccountantUnavailable as exc:
        return Calibration(sigma_rdp, eps_rdp, FALLBACK_ACCOUNTANT, f"{accountant} n/a ({exc}); {FALLBACK_ACCOUNTANT} answered")
    return Calibration(sigma, eps, accountant)


def calibrate_noise_multiplier(
    *, target_epsilon: float, sample_rate: float, steps: int, delta: float, accountant: str = DEFAULT_ACCOUNTANT
) -> float:
    """:func:`calibrate`'s σ alone (the σ never promises less privacy than asked)."""
    return calibrate(
        target_epsilon=target_epsilon, sample_rate=sample_rate, steps=steps, delta=delta, accountant=accountant
    ).noise_multiplier


def _safe(epsilon: Callable[[float], float], sigma: float) -> float:
    """ε(σ), with an accountant's numerical breakdown at tiny σ read as ∞ (no guarantee)."""
    try:
        return epsilon(sigma)
    except AccountantUnavailable:
        return math.inf


def _bracket(epsilon: Callable[[float], float], target: float) -> tuple[float, float]:
    """(lo, hi) with ε(lo) > target ≥ ε(hi), stepping σ by 4× from 1 (cheap evaluations first)."""
    sigma, step = 1.0, 4.0
    if _safe(epsilon, sigma) > target:
        while _safe(epsilon, sigma * step) > target:
            sigma *= step
            if sigma * step > MAX_NOISE_MULTIPLIER:
                raise ConfigError(
                    f"`target_epsilon` {target!r} is unreachable: even noise_multiplier={MAX_NOISE_MULTIPLIER:g} gives "
                    "more; raise the target or lower steps/sample rate"
                )
        return sigma, sigma * step
    while _safe(epsilon, sigma / step) <= target:
        sigma /= step
        if sigma / step < MIN_NOISE_MULTIPLIER:
            raise ConfigError(
                f"`target_epsilon` {target!r} is above what any useful noise gives: noise_multiplier="
                f"{MIN_NOISE_MULTIPLIER:g} already reaches it; such a run has no meaningful guarantee"
            )
    return sigma / step, sigma


def _solve(epsilon: Callable[[float], float], target: float, *, lo: float, hi: float) -> tuple[float, float]:
    """σ in [lo, hi] with ε(σ) in [(1 − tol)·target, target], given ε(lo) > target ≥ ε(hi).

    Brent's method on log ε against log σ (nearly a straight line, so a few evaluations suffice),
    aimed at the middle of the tolerance band; σ is then nudged up until ε ≤ target.
    """
    from scipy.optimize import brentq

    aim = math.log(target * (1 - CALIBRATION_TOLERANCE / 2))

    def gap(log_sigma: float) -> float:
        eps = _safe(epsilon, math.exp(log_sigma))
        return (math.log(eps) if 0 < eps < math.inf else (700.0 if eps > 0 else -700.0)) - aim

    sigma = math.exp(
        brentq(gap, math.log(lo), math.log(hi), xtol=CALIBRATION_TOLERANCE / 8, rtol=1e-12, maxiter=100)
    )
    eps = epsilon(sigma)
    for _ in range(100):
        if eps <= target:
            break
        sigma *= 1 + CALIBRATION_TOLERANCE / 4
        eps = epsilon(sigma)
    if not (1 - CALIBRATION_TOLERANCE) * target <= eps <= target:
        raise ConfigError(f"calibration for `target_epsilon` {target!r} landed at ε={eps:.4g} (σ={sigma:.4g})")
    return sigma, eps


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
