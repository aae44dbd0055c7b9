"""Sizes that would run for a very long time are refused up front unless the user confirms with ``--yes``.

A typo such as ``--n 1000000000`` or ``--shadows 100000`` must cost one line, not an afternoon. Each
limit is far above any sensible run; the message says what the size would cost and how to go on.

| option                | limit without ``--yes`` | why                                              |
|-----------------------|-------------------------|--------------------------------------------------|
| ``data synth --n``    | 100,000 records         | ~1 ms and ~2.6 kB per record (public split too)   |
| ``--shadows``         | 64 shadow adapters      | each one is a full training run of the adapter   |
| ``train --batch-size``| the training examples   | (if also above 1,024) one step would see them all |
"""

from __future__ import annotations

from dataclasses import dataclass

from dpaudit.errors import ConfigError

YES_FLAG = "--yes"


@dataclass(frozen=True)
class SizeLimit:
    """``option`` above ``limit`` needs ``--yes``; ``cost`` describes one unit (for the message)."""

    option: str
    limit: int
    unit: str
    seconds_per_unit: float
    bytes_per_unit: float = 0.0

    def check(self, value: int, *, yes: bool) -> None:
        """Raise :class:`ConfigError` if ``value`` is above the limit and the user did not confirm."""
        if value <= self.limit or yes:
            return
        cost = f"about {_duration(value * self.seconds_per_unit)}"
        if self.bytes_per_unit:
            cost += f" and {_size(value * self.bytes_per_unit)} on disk"
        raise ConfigError(
            f"`{self.option}` {value:,} is above {self.limit:,} {self.unit} (would take {cost} on this kind of "
            f"machine); pass {YES_FLAG} to run it anyway"
        )


SYNTH_RECORDS = SizeLimit("--n", 100_000, "records", seconds_per_unit=1e-3, bytes_per_unit=2.6e3)
SHADOW_MODELS = SizeLimit("--shadows", 64, "shadow adapters", seconds_per_unit=60.0)
"""Seconds per shadow: a tiny-base adapter on 2 CPU cores; larger bases cost more."""


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def _size(n_bytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n_bytes < 1000:
            return f"{n_bytes:.0f} {unit}"
        n_bytes /= 1000
    return f"{n_bytes:.0f} TB"


BATCH_SIZE_FLOOR = 1024
"""Batches up to this size are never refused, so small test sets with a default batch still run."""


def check_batch_size(batch_size: int, *, n_examples: int) -> None:
    """A logical batch far larger than the training set is a typo: one step per epoch, nothing learned.

    Refused when it exceeds both the number of training examples and :data:`BATCH_SIZE_FLOOR`.
    """
    if batch_size > max(n_examples, BATCH_SIZE_FLOOR):
        raise ConfigError(
            f"`--batch-size` {batch_size:,} is larger than the {n_examples:,} training examples "
            f"(every step would see them all); use at most {n_examples:,}"
        )
