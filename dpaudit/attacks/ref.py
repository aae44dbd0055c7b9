"""Reference-model attack: score = NLL_reference − NLL_adapter.

The loss alone confounds "memorised" with "easy". Subtracting the loss of a reference model that
never saw the data calibrates each record's difficulty. For an adapter the frozen base is the
natural, free reference (the same model with the adapter switched off); ``--reference MODEL``
uses another one.
"""

from __future__ import annotations

import numpy as np

from dpaudit.attacks.base import ATTACKS, AttackInputs
from dpaudit.attacks.signals import mean_logprob


@ATTACKS.register("ref")
class ReferenceAttack:
    requires = frozenset({"reference"})

    def score(self, inputs: AttackInputs) -> np.ndarray:
        return mean_logprob(inputs.target) - mean_logprob(inputs.need("reference", "ref"))
