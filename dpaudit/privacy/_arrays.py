"""Input checks shared by the empirical bounds: scores (n,) finite floats, labels (n,) in {0, 1}."""

from __future__ import annotations

import math

import numpy as np

from dpaudit.errors import ConfigError, InputError


def check_scores_labels(scores: object, labels: object) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(scores float64 (n,), labels int8 (n,))`` or raise :class:`InputError`.

    Both classes must be present: a bound on membership needs members and non-members.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or y.ndim != 1:
        raise InputError(f"scores and labels must be 1-D arrays, got shapes {s.shape} and {y.shape}")
    if s.shape != y.shape:
        raise InputError(f"scores and labels must have the same length, got {s.shape[0]} and {y.shape[0]}")
    if not np.all(np.isfinite(s)):
        bad = int(np.flatnonzero(~np.isfinite(s))[0])
        raise InputError(f"scores must be finite, got {s[bad]} at index {bad}", field="score")
    if not np.all((y == 0) | (y == 1)):
        bad = int(np.flatnonzero(~((y == 0) | (y == 1)))[0])
        raise InputError(f"labels must be 0 or 1, got {y[bad]!r} at index {bad}", field="member")
    y = y.astype(np.int8)
    n_members = int(y.sum())
    if n_members == 0 or n_members == y.size:
        raise InputError(
            f"need both members and non-members, got {n_members} members and {y.size - n_members} non-members",
            field="member",
        )
    return s, y


def check_delta_confidence(delta: object, confidence: object | None = None) -> tuple[float, float | None]:
    problems: list[str] = []
    real = (int, float, np.floating, np.integer)
    if not isinstance(delta, real) or isinstance(delta, bool) or not (0 < float(delta) < 1):
        problems.append(f"`delta` must be in (0, 1), got {delta!r}")
    if confidence is not None and (
        not isinstance(confidence, real) or isinstance(confidence, bool) or not (0 < float(confidence) < 1)
    ):
        problems.append(f"`confidence` must be in (0, 1), got {confidence!r}")
    if problems:
        raise ConfigError("; ".join(problems))
    return float(delta), (None if confidence is None else float(confidence))


def finite_or_none(value: float | None) -> float | None:
    """JSON has no ∞ or NaN: write them as null."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
