"""Min-K% Prob (Shi et al., 2024): score = mean of the lowest k% token log-probs.

A non-member usually contains a few surprising tokens; a memorised record has none.
"""

from __future__ import annotations

import numpy as np

from dpaudit.attacks.base import ATTACKS, AttackInputs
from dpaudit.attacks.signals import DEFAULT_K, check_k, min_k


@ATTACKS.register("mink")
class MinKAttack:
    requires = frozenset()

    def __init__(self, k: float = DEFAULT_K) -> None:
        self.k = check_k(k)

    def score(self, inputs: AttackInputs) -> np.ndarray:
        return min_k(inputs.target, self.k)
