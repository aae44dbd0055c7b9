"""Client-level accounting for federated training (DP-FedAvg and DP-FedLoRA), as privacy events.

Two mechanisms, both expressed with the same events and accountants as DP-SGD, so that
``dpaudit epsilon``, the comparator and the card read them unchanged:

- ``central`` (DP-FedAvg, McMahan et al. 2018): each round the server samples every client
  independently with probability q = M/K (Poisson), clips each client's update to C and adds
  N(0, σ²C²) to the sum. One round is a Poisson-sampled Gaussian step *over clients*; R rounds
  compose to ``Composed(PoissonSampledGaussian(σ, q), R)``. The unit is a client, and the
  guarantee holds for anyone who sees the released adapter (or every intermediate global model).
- ``local`` (DP-FedLoRA): each client clips its whole update to C and adds N(0, σ²C²) itself
  before sending. Against the server, one round the client takes part in is one Gaussian
  mechanism with sensitivity C (sample rate 1: the server knows who sent what), so a client that
  joined J rounds has ``Composed(PoissonSampledGaussian(σ, 1), J)``.

Both assume the add/remove relation on a client's data (its update versus no contribution, at
most C apart). σ is calibrated for the worst case: in ``local`` a client that joins every round.
"""

from __future__ import annotations

import math

from dpaudit.errors import ConfigError
from dpaudit.privacy.accountants import DEFAULT_ACCOUNTANT, calibrate_noise_multiplier, epsilon_of_events
from dpaudit.privacy.events import Composed, NoOp, PoissonSampledGaussian, PrivacyEvent, check_count, raise_problems
from dpaudit.privacy.gdp import mu_for_epsilon

#: The rate of a mechanism that sees every unit it accounts for (no amplification by sampling).
FULL_PARTICIPATION = 1.0
#: Local calibration: relative precision of σ, and how many doublings of the raise it may try.
CALIBRATION_STEP = 1e-3
MAX_BRACKETS = 40


def client_sample_rate(*, clients_per_round: float, clients: int) -> float:
    """q = M/K: each client's chance of joining a round under Poisson client sampling."""
    problems: list[str] = []
    check_count(clients, problems, "clients")
    if not 0 < clients_per_round <= clients:
        problems.append(f"`clients_per_round` must be in (0, clients={clients}], got {clients_per_round}")
    raise_problems(problems)
    return float(clients_per_round) / float(clients)


def central_events(*, noise_multiplier: float, sample_rate: float, rounds: int) -> list[PrivacyEvent]:
    """DP-FedAvg: R Poisson-sampled Gaussian rounds over clients (rate q = M/K, noise σC on the sum)."""
    return [Composed(PoissonSampledGaussian(noise_multiplier, sample_rate), rounds)]


def local_events(*, noise_multiplier: float, rounds_joined: int) -> list[PrivacyEvent]:
    """DP-FedLoRA: one Gaussian mechanism (rate 1) per round the client took part in; none: no event."""
    if rounds_joined == 0:
        return [NoOp()]
    return [Composed(PoissonSampledGaussian(noise_multiplier, FULL_PARTICIPATION), rounds_joined)]


def central_epsilon(
    *, noise_multiplier: float, sample_rate: float, rounds: int, delta: float, accountant: str = DEFAULT_ACCOUNTANT
) -> float:
    """ε(δ) per client of ``central`` mode after ``rounds`` rounds."""
    events = central_events(noise_multiplier=noise_multiplier, sample_rate=sample_rate, rounds=rounds)
    return epsilon_of_events(events, delta=delta, accountant=accountant)


def local_epsilon(
    *, noise_multiplier: float, rounds_joined: int, delta: float, accountant: str = DEFAULT_ACCOUNTANT
) -> float:
    """ε(δ) against the server of a client that sent ``rounds_joined`` noisy updates in ``local`` mode."""
    events = local_events(noise_multiplier=noise_multiplier, rounds_joined=rounds_joined)
    return epsilon_of_events(events, delta=delta, accountant=accountant)


def calibrate_central(
    *, target_epsilon: float, sample_rate: float, rounds: int, delta: float, accountant: str = DEFAULT_ACCOUNTANT
) -> float:
    """σ such that ``central`` mode reaches at most ``target_epsilon`` per client after ``rounds``."""
    return calibrate_noise_multiplier(
        target_epsilon=target_epsilon, sample_rate=sample_rate, steps=rounds, delta=delta, accountant=accountant
    )


def calibrate_local(
    *, target_epsilon: float, rounds: int, delta: float, accountant: str = DEFAULT_ACCOUNTANT
) -> float:
    """σ such that a client joining all ``rounds`` stays within ``target_epsilon`` against the server.

    R Gaussian mechanisms with noise σ (sensitivity 1) compose exactly to μ-GDP with μ = √R/σ
    (Dong, Roth & Su 2022), so σ₀ = √R / μ(ε, δ) is the least noise any accountant can accept.
    ``accountant`` gives an upper bound on ε, so σ is then raised (bracketed, then bisected to
    0.1%) until the ledger's ε by that accountant is within the target too: the card never
    promises less than asked.
    """
    problems: list[str] = []
    check_count(rounds, problems, "rounds")
    raise_problems(problems)

    def fits(sigma: float) -> bool:
        return local_epsilon(noise_multiplier=sigma, rounds_joined=rounds, delta=delta, accountant=accountant) <= target_epsilon

    lo = hi = math.sqrt(rounds) / mu_for_epsilon(epsilon=target_epsilon, delta=delta)
    step = CALIBRATION_STEP
    for _ in range(MAX_BRACKETS):
        if fits(hi):
            break
        lo, hi, step = hi, hi * (1 + step), step * 2
    else:
        raise ConfigError(f"calibration for `target_epsilon` {target_epsilon!r} did not land (σ = {hi:.4g})")
    while hi / lo > 1 + CALIBRATION_STEP:
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return hi
