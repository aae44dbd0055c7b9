"""Loss attack (Yeom et al., 2018): members have lower loss. score = −mean token NLL."""

from __future__ import annotations

import numpy as np

from dpaudit.attacks.base import ATTACKS, AttackInputs
from dpaudit.attacks.signals import mean_logprob


@ATTACKS.register("loss")
class LossAttack:
    requires = frozenset()

    def score(self, inputs: AttackInputs) -> np.ndarray:
        return mean_logprob(inputs.target)
