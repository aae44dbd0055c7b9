"""LiRA with too few shadows is an error that says why, never a quiet AUC of 0.5 (issue #11)."""

from __future__ import annotations

import numpy as np
import pytest

from dpaudit.attacks.base import AttackInputs, ShadowScores
from dpaudit.attacks.lira import MIN_SHADOWS, LiraAttack, LiraOfflineAttack
from dpaudit.errors import ConfigError
from dpaudit.models.scoring import TokenScores


def _scores(values: np.ndarray) -> list[TokenScores]:
    return [TokenScores(id=f"r{j}", logprobs=np.array([v, v])) for j, v in enumerate(values)]


def _inputs(k: int, n: int = 40, seed: int = 0) -> AttackInputs:
    rng = np.random.default_rng(seed)
    in_mask = np.argsort(rng.uniform(size=(k, n)), axis=0) < k // 2  # each record IN for exactly k/2
    phi = np.where(in_mask, rng.normal(-1.0, 0.3, (k, n)), rng.normal(-2.0, 0.3, (k, n)))
    target = rng.normal(-1.5, 0.3, n)
    return AttackInputs(
        target=_scores(target), texts=["x"] * n,
        shadows=ShadowScores(in_mask=in_mask, scores=[_scores(row) for row in phi]),
    )


@pytest.mark.parametrize("attack", [LiraAttack, LiraOfflineAttack])
def test_two_shadows_are_refused_with_the_way_out(attack):
    with pytest.raises(ConfigError, match=rf"40 of 40 scores are not finite: 2 shadows .*at least {MIN_SHADOWS}.*--lira-fixed-variance"):
        attack().score(_inputs(2))


@pytest.mark.parametrize("attack", [LiraAttack, LiraOfflineAttack])
def test_a_fixed_variance_or_enough_shadows_give_finite_scores(attack):
    assert np.isfinite(attack(fixed_variance=0.09).score(_inputs(2))).all()
    assert np.isfinite(attack().score(_inputs(MIN_SHADOWS))).all()


def test_fixed_variance_must_be_positive():
    with pytest.raises(ConfigError, match="`lira_fixed_variance` must be > 0, got 0"):
        LiraAttack(fixed_variance=0)
