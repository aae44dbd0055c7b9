"""zlib attack (Carlini et al., 2021): score = −NLL / zlib-compressed length of the scored text.

Text that compresses well is easy for any model; dividing by its zlib length (a model-free entropy
estimate) discounts that.
"""

from __future__ import annotations

import numpy as np

from dpaudit.attacks.base import ATTACKS, AttackInputs
from dpaudit.attacks.signals import mean_logprob, zlib_length


@ATTACKS.register("zlib")
class ZlibAttack:
    requires = frozenset()

    def score(self, inputs: AttackInputs) -> np.ndarray:
        return mean_logprob(inputs.target) / zlib_length(inputs.texts)
