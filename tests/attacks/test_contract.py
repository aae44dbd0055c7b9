"""Every registered attack keeps the Attack contract (run on synthetic inputs, no model)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from dpaudit.attacks import ATTACKS, AttackInputs, PopulationScores, ShadowScores
from dpaudit.attacks.base import REQUIREMENTS
from dpaudit.models.scoring import TokenScores


def _scores(rng, n, shift=0.0):
    out = []
    for j in range(n):
        t = 3 + j % 5
        out.append(
            TokenScores(
                id=str(j),
                logprobs=rng.normal(-2.0 + shift, 0.5, t),
                mu=rng.normal(-2.5, 0.1, t),
                sigma=rng.uniform(0.5, 1.5, t),
            )
        )
    return out


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    n, k = 12, 4
    in_mask = np.argsort(rng.uniform(size=(k, n)), axis=0) < k // 2
    shadows = ShadowScores(in_mask=in_mask, scores=[_scores(rng, n, shift=0.1 * i) for i in range(k)])
    m = 10
    population = PopulationScores(
        target=_scores(rng, m), reference=_scores(rng, m), shadows=[_scores(rng, m, shift=0.1 * i) for i in range(k)]
    )
    return AttackInputs(
        target=_scores(rng, n),
        texts=[f"text {j} " * (j + 1) for j in range(n)],
        reference=_scores(rng, n),
        shadows=shadows,
        population=population,
    )


@pytest.mark.parametrize("name", ATTACKS.names())
def test_attack_contract(name, inputs):
    cls = ATTACKS.get(name)
    assert set(cls.requires) <= REQUIREMENTS
    # Constructors only store options: every parameter has a default and is kept as an attribute.
    params = [
        p
        for p in inspect.signature(cls).parameters.values()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    attack = cls()
    for p in params:
        assert p.default is not inspect.Parameter.empty
        assert getattr(attack, p.name) == p.default
    scores = attack.score(inputs)
    assert isinstance(scores, np.ndarray) and scores.shape == (len(inputs.target),)
    assert np.isfinite(scores).all()
    # The score must not depend on anything but the inputs: same inputs, same scores.
    np.testing.assert_array_equal(scores, cls().score(inputs))
