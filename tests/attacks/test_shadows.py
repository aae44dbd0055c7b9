"""Shadow planning: balanced, nested splits and cache keys (no training)."""

from __future__ import annotations

import numpy as np
import pytest

from dpaudit.attacks.shadows import paired_in_mask, plan_shadows, shadow_recipe, shadow_seed
from dpaudit.errors import ConfigError
from tests.conftest import make_records

RECIPE = {"method": "lora", "rank": 4, "seed": 0, "canary_inclusion": 0.5, "checkpoint_every": 100, "dp": None}


@pytest.mark.parametrize(("n", "k"), [(10, 2), (11, 8), (128, 16), (7, 5)])
def test_paired_mask_is_balanced(n, k):
    mask = paired_in_mask(n, k, seed=3)
    assert mask.shape == (k, n)
    assert set(mask.sum(axis=1)) <= {n // 2, n - n // 2}  # every shadow trains on half the pool
    assert set(mask.sum(axis=0)) <= {k // 2, (k + 1) // 2}  # every record is IN for half the shadows
    for pair in range(k // 2):
        np.testing.assert_array_equal(mask[2 * pair], ~mask[2 * pair + 1])


def test_more_shadows_extend_fewer():
    np.testing.assert_array_equal(paired_in_mask(50, 8, seed=1)[:4], paired_in_mask(50, 4, seed=1))
    assert not np.array_equal(paired_in_mask(50, 4, seed=1), paired_in_mask(50, 4, seed=2))


def test_cache_keys_follow_base_data_recipe_and_seed():
    records = make_records(20)
    plan = plan_shadows(records, k=4, seed=0, base_id="base-a", recipe=RECIPE)
    assert plan.dirs == plan_shadows(records, k=4, seed=0, base_id="base-a", recipe=RECIPE).dirs
    assert plan.dirs[:2] == plan_shadows(records, k=2, seed=0, base_id="base-a", recipe=RECIPE).dirs
    assert len(set(plan.dirs)) == 4
    for other in (
        plan_shadows(records, k=4, seed=1, base_id="base-a", recipe=RECIPE),
        plan_shadows(records, k=4, seed=0, base_id="base-b", recipe=RECIPE),
        plan_shadows(records, k=4, seed=0, base_id="base-a", recipe={**RECIPE, "rank": 8}),
        plan_shadows(make_records(20, seed=5), k=4, seed=0, base_id="base-a", recipe=RECIPE),
    ):
        assert not set(other.dirs) & set(plan.dirs)
    assert plan.missing == [0, 1, 2, 3]


def test_shadow_recipe_drops_canaries_and_fixes_the_noise():
    recipe = shadow_recipe(RECIPE, seed=7)
    assert recipe["canary_inclusion"] is None and recipe["checkpoint_every"] == 0 and recipe["seed"] == 7
    dp = {"target_epsilon": 8.0, "noise_multiplier": None, "max_grad_norm": 1.0}
    recipe = shadow_recipe({**RECIPE, "dp": dp}, seed=7, dp={"noise_multiplier": 0.9, "epsilon": 8.0})
    # shadows are the attacker's own models: seeded noise keeps the attack reproducible for the same target
    assert recipe["dp"] == {
        "target_epsilon": None, "noise_multiplier": 0.9, "max_grad_norm": 1.0, "insecure_reproducible_noise": True
    }


def test_shadow_seeds_avoid_small_target_seeds():
    seeds = {shadow_seed(0, i) for i in range(64)}
    assert len(seeds) == 64 and not seeds & set(range(1000))


def test_one_shadow_is_refused():
    with pytest.raises(ConfigError, match="`shadows` must be 0"):
        plan_shadows(make_records(4), k=1, seed=0, base_id="b", recipe=RECIPE)
