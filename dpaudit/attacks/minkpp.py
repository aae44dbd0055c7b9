"""Min-K%++ (Zhang et al., 2024): mean of the lowest k% of z_t = (log p(x_t) − μ_t) / σ_t.

μ_t and σ_t are the mean and standard deviation of log p over the vocabulary at position t under
the model itself, so z_t asks "is this token a local mode?" (training pulls members towards
modes of the conditional distribution), independent of how peaked the position is.
"""

from __future__ import annotations

import numpy as np

from dpaudit.attacks.base import ATTACKS, AttackInputs
from dpaudit.attacks.signals import DEFAULT_K, check_k, min_k_plus_plus


@ATTACKS.register("minkpp")
class MinKPlusPlusAttack:
    requires = frozenset({"entropy"})

    def __init__(self, k: float = DEFAULT_K) -> None:
        self.k = check_k(k)

    def score(self, inputs: AttackInputs) -> np.ndarray:
        return min_k_plus_plus(inputs.target, self.k)
