"""What every attack receives and promises: the :class:`Attack` protocol and the ``ATTACKS`` registry.

An attack never runs a model. It declares what it needs (``requires``: ``"entropy"`` for the
per-position vocabulary moments, ``"reference"`` for scores under the reference model,
``"shadows"`` for shadow models, ``"population"`` for non-candidate records scored under the same
models), and :func:`dpaudit.attacks.suite.run_attacks` computes each of those once for all attacks
and hands them over in an :class:`AttackInputs`. ``accepts`` names inputs an attack uses when they
are there (RMIA uses shadows when the run has any) without needing them. So attacks are pure
functions of arrays, tested on hand-made inputs, and no record is ever scored twice by one model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from dpaudit.errors import InputError
from dpaudit.models.scoring import TokenScores
from dpaudit.registry import Registry

REQUIREMENTS = frozenset({"entropy", "reference", "shadows", "population"})


@dataclass(frozen=True)
class ShadowScores:
    """The candidates scored under K shadow models.

    ``in_mask``: (K, n) bool, True where candidate j was in shadow k's training set.
    ``scores``: K lists of n :class:`TokenScores` (candidate order), with entropy.
    """

    in_mask: np.ndarray
    scores: Sequence[Sequence[TokenScores]]

    def __post_init__(self) -> None:
        if self.in_mask.ndim != 2 or self.in_mask.shape[0] != len(self.scores):
            raise InputError(f"in_mask must be (K, n) with K = {len(self.scores)}, got {self.in_mask.shape}")
        if any(len(row) != self.in_mask.shape[1] for row in self.scores):
            raise InputError("every shadow must score every candidate")

    @property
    def k(self) -> int:
        return int(self.in_mask.shape[0])


@dataclass(frozen=True)
class PopulationScores:
    """m population records (known non-members that are not candidates) scored under the same models
    as the candidates: ``target`` and ``reference`` (m :class:`TokenScores` each) and ``shadows``
    (K lists of m, in the shadows' order, or None when the run has no shadows). No shadow trained
    on them, so every model but the target is OUT for every population record."""

    target: Sequence[TokenScores]
    reference: Sequence[TokenScores]
    shadows: Sequence[Sequence[TokenScores]] | None = None

    def __post_init__(self) -> None:
        rows = [self.reference, *(self.shadows or ())]
        if any(len(row) != len(self.target) for row in rows):
            raise InputError("every model must score every population record")


@dataclass(frozen=True)
class AttackInputs:
    """Everything an attack may look at, for n candidate records (members and non-members, mixed).

    The membership labels are deliberately absent: an attack must not see them.

    ``target``: n :class:`TokenScores` under the attacked adapter (with ``mu``/``sigma`` when an
    attack required ``"entropy"``). ``texts``: n strings, the scored (assistant) text of each
    record, for zlib. ``reference``: n scores under the reference model, or None. ``shadows``:
    :class:`ShadowScores` or None. ``population``: :class:`PopulationScores` or None. ``seed`` seeds
    any randomness inside an attack.
    """

    target: Sequence[TokenScores]
    texts: Sequence[str]
    reference: Sequence[TokenScores] | None = None
    shadows: ShadowScores | None = None
    population: PopulationScores | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.target):
            raise InputError(f"{len(self.texts)} texts for {len(self.target)} scored records")
        if self.reference is not None and len(self.reference) != len(self.target):
            raise InputError(f"{len(self.reference)} reference scores for {len(self.target)} records")

    def need(self, what: str, attack: str):
        """The input ``what`` (``"reference"``, ``"shadows"`` or ``"population"``), or a clear error when it is missing."""
        value = getattr(self, what)
        if value is None:
            raise InputError(f"attack '{attack}' needs {what} scores, which were not computed")
        return value


class Attack(Protocol):
    """A membership-inference attack. Constructors only store options; ``score`` does the work.

    ``score(inputs)`` returns an array of shape (n,), higher = more likely a member, in the order
    of ``inputs.target``. A record the attack cannot judge gets NaN (reported, never dropped).
    """

    requires: ClassVar[frozenset[str]]

    def score(self, inputs: AttackInputs) -> np.ndarray: ...


ATTACKS: Registry[type[Attack]] = Registry("attack")
