"""Privacy events: what a training run did, as small immutable values (no maths here).

The trainer records one event per noisy step (or one :class:`Composed` event for many); the
:class:`PrivacyLedger` keeps them compactly and an accountant turns them into ε. This mirrors
``dp_accounting``'s ``DpEvent`` values: events describe, accountants compute.

>>> ledger = PrivacyLedger()
>>> for _ in range(3):
...     ledger.record(PoissonSampledGaussian(noise_multiplier=1.0, sample_rate=0.01))
>>> ledger.events
(Composed(event=PoissonSampledGaussian(noise_multiplier=1.0, sample_rate=0.01), count=3),)
>>> PrivacyLedger.from_json(ledger.to_json()) == ledger
True

JSON form (this is what goes into the training card's ``dp.events``)::

    [{"type": "composed", "count": 3,
      "event": {"type": "poisson_sampled_gaussian", "noise_multiplier": 1.0, "sample_rate": 0.01}}]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

from dpaudit.errors import ConfigError, InputError


class PrivacyEvent:
    """Base of every event; subclasses are frozen dataclasses."""

    type_name: str = ""

    def to_json(self) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError


def is_real(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def check_noise_multiplier(value: object, problems: list[str], name: str = "noise_multiplier") -> None:
    if not is_real(value) or not (math.isfinite(float(value)) and float(value) > 0):  # type: ignore[arg-type]
        problems.append(f"`{name}` must be a finite number > 0, got {value!r}")


def check_sample_rate(value: object, problems: list[str], name: str = "sample_rate") -> None:
    if not is_real(value) or not (0 < float(value) <= 1):  # type: ignore[arg-type]
        problems.append(f"`{name}` must be in (0, 1], got {value!r}")


def check_count(value: object, problems: list[str], name: str = "steps") -> None:
    integral = isinstance(value, Integral) and not isinstance(value, bool)
    if not integral or int(value) < 1:  # type: ignore[call-overload]
        problems.append(f"`{name}` must be an integer >= 1, got {value!r}")


def check_delta(value: object, problems: list[str], name: str = "delta") -> None:
    if not is_real(value) or not (0 < float(value) < 1):  # type: ignore[arg-type]
        problems.append(f"`{name}` must be in (0, 1), got {value!r}")


def raise_problems(problems: list[str]) -> None:
    """Raise one :class:`ConfigError` listing every problem found (validators collect, then raise once)."""
    if problems:
        raise ConfigError("; ".join(problems))


@dataclass(frozen=True)
class PoissonSampledGaussian(PrivacyEvent):
    """One DP-SGD step: each example joins the batch with probability ``sample_rate``; the clipped
    sum gets Gaussian noise of standard deviation ``noise_multiplier · C``."""

    noise_multiplier: float
    sample_rate: float
    type_name = "poisson_sampled_gaussian"

    def __post_init__(self) -> None:
        problems: list[str] = []
        check_noise_multiplier(self.noise_multiplier, problems)
        check_sample_rate(self.sample_rate, problems)
        raise_problems(problems)
        object.__setattr__(self, "noise_multiplier", float(self.noise_multiplier))
        object.__setattr__(self, "sample_rate", float(self.sample_rate))

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type_name, "noise_multiplier": self.noise_multiplier, "sample_rate": self.sample_rate}


@dataclass(frozen=True)
class Composed(PrivacyEvent):
    """``event`` repeated ``count`` times (adaptive composition)."""

    event: PrivacyEvent
    count: int
    type_name = "composed"

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not isinstance(self.event, PrivacyEvent):
            problems.append(f"`event` must be a PrivacyEvent, got {self.event!r}")
        check_count(self.count, problems, "count")
        raise_problems(problems)
        object.__setattr__(self, "count", int(self.count))

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type_name, "event": self.event.to_json(), "count": self.count}


@dataclass(frozen=True)
class NoOp(PrivacyEvent):
    """Touches no private data (ε = 0)."""

    type_name = "no_op"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type_name}


@dataclass(frozen=True)
class NonPrivate(PrivacyEvent):
    """Touches private data with no guarantee (ε = ∞): e.g. a non-DP fine-tuning run."""

    type_name = "non_private"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type_name}


def event_from_json(data: Mapping[str, Any], *, where: str = "event") -> PrivacyEvent:
    """Inverse of ``event.to_json()``; ``where`` locates a bad entry in the error message."""
    if not isinstance(data, Mapping) or "type" not in data:
        raise InputError(f"expected an object with a 'type', got {data!r}", field=where)
    kind = data["type"]
    try:
        if kind == PoissonSampledGaussian.type_name:
            return PoissonSampledGaussian(noise_multiplier=data["noise_multiplier"], sample_rate=data["sample_rate"])
        if kind == Composed.type_name:
            return Composed(event=event_from_json(data["event"], where=f"{where}.event"), count=data["count"])
        if kind == NoOp.type_name:
            return NoOp()
        if kind == NonPrivate.type_name:
            return NonPrivate()
    except KeyError as exc:
        raise InputError(f"missing key {exc.args[0]!r} in {kind} event", field=where) from None
    except ConfigError as exc:
        raise InputError(str(exc), field=where) from None
    known = ", ".join(e.type_name for e in (PoissonSampledGaussian, Composed, NoOp, NonPrivate))
    raise InputError(f"unknown event type {kind!r}; known: {known}", field=where)


def _unwrap(event: PrivacyEvent) -> tuple[PrivacyEvent, int]:
    """``Composed(Composed(e, a), b)`` -> ``(e, a*b)``; a plain event -> ``(event, 1)``."""
    count = 1
    while isinstance(event, Composed):
        count *= event.count
        event = event.event
    return event, count


def flatten(events: Iterable[PrivacyEvent]) -> Iterator[tuple[PrivacyEvent, int]]:
    """Yield ``(leaf event, repetitions)`` in order; what an accountant consumes."""
    for event in events:
        yield _unwrap(event)


class PrivacyLedger:
    """The record of every privacy event of a run; ε is computed from it, never from memory.

    Consecutive identical events are merged into one :class:`Composed` event, so that a run of
    10⁴ identical steps is one line of JSON.
    """

    def __init__(self, events: Iterable[PrivacyEvent] = ()) -> None:
        self._events: list[PrivacyEvent] = []
        for event in events:
            self.record(event)

    def record(self, event: PrivacyEvent) -> None:
        """Append ``event`` (merged with the previous one when it is the same mechanism)."""
        if not isinstance(event, PrivacyEvent):
            raise ConfigError(f"`event` must be a PrivacyEvent, got {event!r}")
        leaf, count = _unwrap(event)
        if isinstance(leaf, NoOp):
            return
        if self._events:
            last_leaf, last_count = _unwrap(self._events[-1])
            if last_leaf == leaf:
                self._events[-1] = Composed(leaf, last_count + count)
                return
        self._events.append(Composed(leaf, count) if count > 1 else leaf)

    @property
    def events(self) -> tuple[PrivacyEvent, ...]:
        return tuple(self._events)

    @property
    def steps(self) -> int:
        """Number of Poisson-sampled Gaussian steps recorded."""
        return sum(n for leaf, n in flatten(self._events) if isinstance(leaf, PoissonSampledGaussian))

    def epsilon(self, delta: float, *, accountant: str = "prv") -> float:
        """ε(δ) of everything recorded, by the named accountant (see ``accountants.ACCOUNTANTS``)."""
        from dpaudit.privacy.accountants import epsilon_of_events

        return epsilon_of_events(self._events, delta=delta, accountant=accountant)

    def to_json(self) -> list[dict[str, Any]]:
        return [event.to_json() for event in self._events]

    @classmethod
    def from_json(cls, data: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> PrivacyLedger:
        """Read ``to_json()``'s list (or an object holding it under ``"events"``)."""
        if isinstance(data, Mapping):
            if "events" not in data:
                raise InputError("expected a list of events or an object with 'events'", field="events")
            data = data["events"]
        if isinstance(data, (str, bytes)) or not isinstance(data, Sequence):
            raise InputError(f"expected a list of events, got {type(data).__name__}", field="events")
        return cls(event_from_json(item, where=f"events[{i}]") for i, item in enumerate(data))

    def __len__(self) -> int:
        return len(self._events)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrivacyLedger) and self._events == other._events

    def __repr__(self) -> str:
        return f"PrivacyLedger({self._events!r})"
