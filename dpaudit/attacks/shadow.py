"""Shadow-model attack (Shokri et al., 2017).

The attacker trains K shadow adapters with the target's recipe on known halves of a pool, so it
knows which records each shadow saw. A classifier learns, from the shadows' (features, IN/OUT)
pairs, what "member" looks like in the feature space of every cheap signal (loss, reference,
zlib, min-k%, min-k%++, see :data:`dpaudit.attacks.signals.FEATURE_NAMES`); it is then applied to
the target's features. The pool is the candidate pool, so these are the same shadows LiRA uses.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dpaudit.attacks.base import ATTACKS, AttackInputs
from dpaudit.attacks.signals import DEFAULT_K, check_k, features
from dpaudit.errors import InputError


@ATTACKS.register("shadow")
class ShadowAttack:
    """Logistic regression on standardised signal features; the fitted pipeline ends in ``classifier_``."""

    requires = frozenset({"shadows", "reference", "entropy"})

    def __init__(self, k: float = DEFAULT_K, C: float = 1.0) -> None:
        self.k = check_k(k)
        self.C = C

    def score(self, inputs: AttackInputs) -> np.ndarray:
        shadows = inputs.need("shadows", "shadow")
        reference = inputs.need("reference", "shadow")
        x = np.vstack([features(row, reference, inputs.texts, k=self.k) for row in shadows.scores])
        y = shadows.in_mask.reshape(-1).astype(int)  # rows of x are shadow-major, like in_mask
        usable = np.isfinite(x).all(axis=1)
        if len(np.unique(y[usable])) < 2:
            raise InputError("the shadow models gave no usable IN and OUT examples to train the attack classifier")
        self.classifier_ = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=1000))
        self.classifier_.fit(x[usable], y[usable])
        target = features(inputs.target, reference, inputs.texts, k=self.k)
        scores = np.full(len(target), np.nan)
        finite = np.isfinite(target).all(axis=1)
        if finite.any():
            scores[finite] = self.classifier_.decision_function(target[finite])
        return scores
