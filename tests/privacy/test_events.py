"""Privacy events and the ledger: immutable values, compact merging, exact JSON round trip."""

from __future__ import annotations

import json

import pytest

from dpaudit.errors import ConfigError, InputError
from dpaudit.privacy.events import (
    Composed,
    NonPrivate,
    NoOp,
    PoissonSampledGaussian,
    PrivacyLedger,
)


def test_events_are_immutable_values():
    a = PoissonSampledGaussian(noise_multiplier=1.0, sample_rate=0.01)
    assert a == PoissonSampledGaussian(1, 0.01)
    assert hash(a) == hash(PoissonSampledGaussian(1.0, 0.01))
    with pytest.raises(AttributeError):
        a.noise_multiplier = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"noise_multiplier": 0.0, "sample_rate": 0.1}, "`noise_multiplier` must be a finite number > 0, got 0.0"),
        ({"noise_multiplier": -1, "sample_rate": 0.1}, "`noise_multiplier`"),
        ({"noise_multiplier": 1.0, "sample_rate": 0.0}, "`sample_rate` must be in (0, 1], got 0.0"),
        ({"noise_multiplier": 1.0, "sample_rate": 1.5}, "got 1.5"),
        ({"noise_multiplier": float("nan"), "sample_rate": 0.1}, "got nan"),
    ],
)
def test_event_validation_names_parameter_and_value(kwargs, needle):
    with pytest.raises(ConfigError, match=None) as info:
        PoissonSampledGaussian(**kwargs)
    assert needle in str(info.value)


def test_validation_collects_every_problem():
    with pytest.raises(ConfigError) as info:
        PoissonSampledGaussian(noise_multiplier=0, sample_rate=2)
    assert "noise_multiplier" in str(info.value) and "sample_rate" in str(info.value)


@pytest.mark.parametrize("count", [0, -3, 1.5, True])
def test_composed_count_must_be_a_positive_integer(count):
    with pytest.raises(ConfigError, match="`count`"):
        Composed(PoissonSampledGaussian(1.0, 0.1), count)


def test_ledger_merges_consecutive_identical_events():
    step = PoissonSampledGaussian(1.1, 0.02)
    ledger = PrivacyLedger()
    for _ in range(500):
        ledger.record(step)
    ledger.record(Composed(step, 100))
    ledger.record(NoOp())
    ledger.record(PoissonSampledGaussian(2.0, 0.02))
    assert ledger.events == (Composed(step, 600), PoissonSampledGaussian(2.0, 0.02))
    assert ledger.steps == 601
    assert len(ledger) == 2


def test_nested_composition_is_flattened():
    step = PoissonSampledGaussian(1.0, 0.5)
    ledger = PrivacyLedger([Composed(Composed(step, 3), 4)])
    assert ledger.events == (Composed(step, 12),)


def test_ledger_json_round_trip():
    ledger = PrivacyLedger(
        [Composed(PoissonSampledGaussian(0.9, 0.01), 250), PoissonSampledGaussian(1.3, 0.05), NonPrivate()]
    )
    data = json.loads(json.dumps(ledger.to_json()))
    assert data[0] == {
        "type": "composed",
        "count": 250,
        "event": {"type": "poisson_sampled_gaussian", "noise_multiplier": 0.9, "sample_rate": 0.01},
    }
    assert PrivacyLedger.from_json(data) == ledger
    assert PrivacyLedger.from_json({"events": data}) == ledger


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ([{"type": "laplace"}], "unknown event type 'laplace'"),
        ([{"type": "poisson_sampled_gaussian", "noise_multiplier": 1.0}], "missing key 'sample_rate'"),
        (
            [
                {
                    "type": "composed",
                    "count": 2,
                    "event": {"type": "poisson_sampled_gaussian", "noise_multiplier": 0, "sample_rate": 0.1},
                }
            ],
            "events[0].event",
        ),
        ("nope", "expected a list of events"),
        ({"steps": 3}, "expected a list of events"),
    ],
)
def test_ledger_from_json_errors_say_where(data, needle):
    with pytest.raises(InputError) as info:
        PrivacyLedger.from_json(data)
    assert needle in str(info.value)
