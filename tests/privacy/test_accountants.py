"""Accountants: values against dp_accounting, calibration, validation, and a contract for each one."""

from __future__ import annotations

import math

import pytest

from dpaudit.errors import ConfigError
from dpaudit.privacy.accountants import (
    ACCOUNTANTS,
    RDP_EXTRA_ORDERS,
    calibrate_noise_multiplier,
    compute_epsilon,
    compute_epsilons,
    no_amplification_epsilon,
)
from dpaudit.privacy.events import (
    Composed,
    NonPrivate,
    NoOp,
    PoissonSampledGaussian,
    PrivacyLedger,
)

# (σ, q, T, δ): small enough to run in seconds, spread over DP-SGD's usual regimes.
GRID = [
    (1.0, 0.01, 1000, 1e-5),
    (1.1, 0.05, 200, 1e-5),
    (2.0, 0.02, 100, 1e-3),
    (10.0, 1.0, 10, 1e-5),
    (1.5, 0.004, 2500, 1e-6),
]


def _dp_event(sigma, q, steps):
    dp_accounting = pytest.importorskip("dp_accounting")
    return dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps
    )


@pytest.mark.parametrize(("sigma", "q", "steps", "delta"), GRID)
def test_prv_matches_dp_accounting_pld_within_1_percent(sigma, q, steps, delta):
    pld = pytest.importorskip("dp_accounting.pld.pld_privacy_accountant")
    reference = pld.PLDAccountant()
    reference.compose(_dp_event(sigma, q, steps))
    expected = reference.get_epsilon(delta)
    got = compute_epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta, accountant="prv")
    assert got == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize(("sigma", "q", "steps", "delta"), GRID)
def test_rdp_matches_dp_accounting_rdp_within_0_1_percent(sigma, q, steps, delta):
    rdp = pytest.importorskip("dp_accounting.rdp.rdp_privacy_accountant")
    from opacus.accountants import RDPAccountant

    # the orders our RDP accountant uses: opacus's defaults, plus larger ones when the best is the largest default
    reference = rdp.RdpAccountant(orders=RDPAccountant.DEFAULT_ALPHAS + list(RDP_EXTRA_ORDERS))
    reference.compose(_dp_event(sigma, q, steps))
    expected = reference.get_epsilon(delta)
    got = compute_epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta, accountant="rdp")
    assert got == pytest.approx(expected, rel=0.001)


def test_pinned_value():
    # σ = 1, q = 0.01, T = 1000, δ = 1e-5: the textbook DP-SGD setting (PLD reference 1.828).
    assert compute_epsilon(noise_multiplier=1.0, sample_rate=0.01, steps=1000, delta=1e-5) == pytest.approx(
        1.83, abs=0.02
    )


@pytest.mark.parametrize("accountant", ["prv", "rdp"])
@pytest.mark.parametrize("target", [1.0, 8.0])
def test_calibration_lands_within_5_percent_below_target(accountant, target):
    kwargs = {"sample_rate": 0.02, "steps": 300, "delta": 1e-5, "accountant": accountant}
    sigma = calibrate_noise_multiplier(target_epsilon=target, **kwargs)
    landed = compute_epsilon(noise_multiplier=sigma, **kwargs)
    assert 0.95 * target <= landed <= target


def test_unreachable_target_is_a_config_error():
    # T = 1 keeps each of opacus's evaluations (σ doubling up to 10⁶) fast.
    with pytest.raises(ConfigError, match=r"`target_epsilon` 1e-09 is unreachable"):
        calibrate_noise_multiplier(target_epsilon=1e-9, sample_rate=1.0, steps=1, delta=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"sample_rate": 0.0}, "`sample_rate` must be in (0, 1], got 0.0"),
        ({"sample_rate": 1.01}, "`sample_rate` must be in (0, 1], got 1.01"),
        ({"noise_multiplier": 0.0}, "`noise_multiplier` must be a finite number > 0, got 0.0"),
        ({"noise_multiplier": -2.0}, "got -2.0"),
        ({"delta": 0.0}, "`delta` must be in (0, 1), got 0.0"),
        ({"delta": 1.0}, "`delta` must be in (0, 1), got 1.0"),
        ({"steps": 0}, "`steps` must be an integer >= 1, got 0"),
        ({"accountant": "moments"}, "unknown accountant 'moments'; registered: prv, rdp"),
    ],
)
def test_invalid_inputs_name_the_parameter_and_value(kwargs, needle):
    args = {"noise_multiplier": 1.0, "sample_rate": 0.01, "steps": 10, "delta": 1e-5, **kwargs}
    with pytest.raises(ConfigError) as info:
        compute_epsilon(**args)
    assert needle in str(info.value)


@pytest.mark.parametrize("target", [0.0, -1.0, math.inf])
def test_calibration_rejects_bad_targets(target):
    with pytest.raises(ConfigError, match="`target_epsilon`"):
        calibrate_noise_multiplier(target_epsilon=target, sample_rate=0.01, steps=10, delta=1e-5)


def test_no_amplification_epsilon_is_the_zcdp_formula():
    rho = 1000 / (2 * 4.0**2)
    expected = rho + 2 * math.sqrt(rho * math.log(1e5))
    assert no_amplification_epsilon(noise_multiplier=4.0, steps=1000, delta=1e-5) == pytest.approx(expected)
    # It is the paper's T/(2σ²) shortcut plus the spread term, so always above it ...
    assert no_amplification_epsilon(noise_multiplier=4.0, steps=1000, delta=1e-5) > 1000 / (2 * 4.0**2)
    # ... and far above what subsampling earns (q = 0.01).
    assert compute_epsilon(noise_multiplier=4.0, sample_rate=0.01, steps=1000, delta=1e-5) < 1.0
    with pytest.raises(ConfigError, match="`steps`"):
        no_amplification_epsilon(noise_multiplier=1.0, steps=0, delta=1e-5)


def test_ledger_epsilon_is_computed_from_its_events():
    ledger = PrivacyLedger()
    for _ in range(200):
        ledger.record(PoissonSampledGaussian(1.0, 0.05))
    direct = compute_epsilon(noise_multiplier=1.0, sample_rate=0.05, steps=200, delta=1e-5)
    assert ledger.epsilon(1e-5) == pytest.approx(direct)
    assert PrivacyLedger.from_json(ledger.to_json()).epsilon(1e-5, accountant="rdp") == pytest.approx(
        compute_epsilon(noise_multiplier=1.0, sample_rate=0.05, steps=200, delta=1e-5, accountant="rdp")
    )


def test_compute_epsilons_covers_every_registered_accountant():
    eps = compute_epsilons(noise_multiplier=1.0, sample_rate=0.05, steps=50, delta=1e-5)
    assert list(eps) == ACCOUNTANTS.names()
    assert eps["prv"] <= eps["rdp"]  # PRV is the tighter accountant


# ---- Contract every registered accountant must pass -------------------------------------------


@pytest.fixture(params=ACCOUNTANTS.names())
def accountant(request):
    return ACCOUNTANTS.get(request.param)()


def _eps(accountant, sigma, q, steps, delta=1e-5):
    return accountant.epsilon([Composed(PoissonSampledGaussian(sigma, q), steps)], delta=delta)


def test_contract_no_events_is_free(accountant):
    assert accountant.epsilon([], delta=1e-5) == 0.0
    assert accountant.epsilon([NoOp()], delta=1e-5) == 0.0


def test_contract_non_private_is_infinite(accountant):
    assert accountant.epsilon([PoissonSampledGaussian(1.0, 0.1), NonPrivate()], delta=1e-5) == math.inf


def test_contract_huge_noise_gives_almost_nothing(accountant):
    # RDP with opacus's orders (≤ 63) cannot go below ≈ ln(1/δ)/62 ≈ 0.1 however large σ is.
    assert _eps(accountant, 1000.0, 0.01, 10) < 0.15
    assert _eps(accountant, 1000.0, 0.01, 10) < _eps(accountant, 30.0, 0.01, 10) < _eps(accountant, 1.0, 0.01, 10)


def test_contract_more_steps_cost_more(accountant):
    assert _eps(accountant, 1.0, 0.05, 10) < _eps(accountant, 1.0, 0.05, 100) < _eps(accountant, 1.0, 0.05, 400)


def test_contract_monotone_in_sample_rate(accountant):
    assert _eps(accountant, 1.0, 0.01, 50) < _eps(accountant, 1.0, 0.1, 50) < _eps(accountant, 1.0, 1.0, 50)


def test_contract_heterogeneous_history_composes(accountant):
    a = _eps(accountant, 1.0, 0.05, 100)
    both = accountant.epsilon(
        [Composed(PoissonSampledGaussian(1.0, 0.05), 100), Composed(PoissonSampledGaussian(2.0, 0.05), 100)],
        delta=1e-5,
    )
    assert a < both < _eps(accountant, 1.0, 0.05, 200)
