"""Client-level accounting: central against dp_accounting directly, local against the exact GDP composition."""

from __future__ import annotations

import math

import pytest

from dpaudit.privacy.federated import (
    calibrate_central,
    calibrate_local,
    central_epsilon,
    client_sample_rate,
    local_epsilon,
)
from dpaudit.privacy.gdp import gdp_epsilon


def test_central_matches_dp_accounting_with_q_m_over_k_and_t_r():
    dp_accounting = pytest.importorskip("dp_accounting")
    from dp_accounting.pld import PLDAccountant

    sigma, clients, per_round, rounds, delta = 1.1, 8, 2, 10, 1e-3
    q = client_sample_rate(clients_per_round=per_round, clients=clients)
    assert q == 0.25
    ours = central_epsilon(noise_multiplier=sigma, sample_rate=q, rounds=rounds, delta=delta)
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), rounds
    )
    reference = PLDAccountant(value_discretization_interval=1e-4).compose(event).get_epsilon(delta)
    assert ours == pytest.approx(reference, rel=0.02)


def test_central_calibration_lands_at_the_target():
    # rdp: seconds (the calibration itself is tested in tests/privacy; here: q = M/K and T = R reach it).
    sigma = calibrate_central(target_epsilon=8.0, sample_rate=0.5, rounds=10, delta=1e-3, accountant="rdp")
    eps = central_epsilon(noise_multiplier=sigma, sample_rate=0.5, rounds=10, delta=1e-3, accountant="rdp")
    assert 0.95 * 8.0 <= eps <= 8.0


@pytest.mark.parametrize("joined", [1, 3, 10])
def test_local_matches_gaussian_mechanism_composed_over_joined_rounds(joined):
    sigma, delta = 2.0, 1e-3
    exact = gdp_epsilon(mu=math.sqrt(joined) / sigma, delta=delta)  # J Gaussian mechanisms = √J/σ-GDP
    assert local_epsilon(noise_multiplier=sigma, rounds_joined=joined, delta=delta) == pytest.approx(exact, rel=0.015)


def test_local_without_rounds_costs_nothing_and_calibration_lands():
    assert local_epsilon(noise_multiplier=1.0, rounds_joined=0, delta=1e-3) == 0.0
    sigma = calibrate_local(target_epsilon=8.0, rounds=10, delta=1e-3)
    eps = local_epsilon(noise_multiplier=sigma, rounds_joined=10, delta=1e-3)
    assert 0.98 * 8.0 <= eps <= 8.0
    # A client that joined fewer rounds than the worst case spends less.
    assert local_epsilon(noise_multiplier=sigma, rounds_joined=4, delta=1e-3) < eps


def test_client_sample_rate_refuses_more_clients_per_round_than_clients():
    from dpaudit.errors import ConfigError

    with pytest.raises(ConfigError, match="clients_per_round"):
        client_sample_rate(clients_per_round=9, clients=8)
