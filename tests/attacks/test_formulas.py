"""Each attack's score formula on hand-made TokenScores (no model involved)."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from dpaudit.attacks import ATTACKS, AttackInputs, ShadowScores
from dpaudit.errors import ConfigError, InputError
from dpaudit.models.scoring import TokenScores


def ts(id_, logprobs, mu=None, sigma=None):
    arr = lambda v: None if v is None else np.asarray(v, dtype=float)  # noqa: E731
    return TokenScores(id=id_, logprobs=arr(logprobs), mu=arr(mu), sigma=arr(sigma))


A = ts("a", [-1.0, -2.0, -3.0, -4.0, -10.0], mu=[-2.0] * 5, sigma=[1.0, 1.0, 2.0, 2.0, 4.0])
B = ts("b", [-0.5, -0.5], mu=[-1.0, -1.0], sigma=[0.5, 0.25])
TEXTS = ["aaaaaaaaaaaaaaaaaaaa", "the quick brown fox"]


def inputs(**kw):
    return AttackInputs(target=[A, B], texts=TEXTS, **kw)


def test_loss_is_minus_mean_nll():
    np.testing.assert_allclose(ATTACKS.get("loss")().score(inputs()), [-4.0, -0.5])


def test_ref_is_reference_nll_minus_adapter_nll():
    reference = [ts("a", [-5.0, -5.0]), ts("b", [-1.5])]
    np.testing.assert_allclose(ATTACKS.get("ref")().score(inputs(reference=reference)), [5.0 - 4.0, 1.5 - 0.5])


def test_ref_without_reference_is_a_clear_error():
    with pytest.raises(InputError, match="reference"):
        ATTACKS.get("ref")().score(inputs())


def test_zlib_divides_by_compressed_length():
    expected = [-4.0 / len(zlib.compress(TEXTS[0].encode())), -0.5 / len(zlib.compress(TEXTS[1].encode()))]
    np.testing.assert_allclose(ATTACKS.get("zlib")().score(inputs()), expected)


def test_mink_means_the_lowest_k_fraction():
    # k = 0.2: one of A's five tokens (the lowest), one of B's two (at least one).
    np.testing.assert_allclose(ATTACKS.get("mink")().score(inputs()), [-10.0, -0.5])
    np.testing.assert_allclose(ATTACKS.get("mink")(k=0.4).score(inputs()), [-7.0, -0.5])
    np.testing.assert_allclose(ATTACKS.get("mink")(k=1.0).score(inputs()), [-4.0, -0.5])


def test_minkpp_normalises_by_vocabulary_moments():
    # A: z = [1, 0, -0.5, -1, -2]; lowest 40% = mean(-2, -1). B: z = [1, 2] → lowest one = 1.
    np.testing.assert_allclose(ATTACKS.get("minkpp")(k=0.4).score(inputs()), [-1.5, 1.0])


def test_minkpp_needs_entropy():
    with pytest.raises(ValueError, match="with_entropy"):
        ATTACKS.get("minkpp")().score(AttackInputs(target=[ts("x", [-1.0])], texts=["x"]))


def test_empty_record_gives_nan_not_a_crash():
    empty = AttackInputs(target=[ts("e", [], mu=[], sigma=[])], texts=["e"], reference=[ts("e", [])])
    for name in ("loss", "ref", "zlib", "mink", "minkpp"):
        assert math.isnan(ATTACKS.get(name)().score(empty)[0]), name


@pytest.mark.parametrize("k", [0, -0.1, 1.5])
def test_bad_k_fails_at_construction(k):
    with pytest.raises(ConfigError, match="`k` must be in"):
        ATTACKS.get("mink")(k=k)


def test_unknown_attack_lists_registered_ones():
    with pytest.raises(ConfigError, match="registered: .*lira.*loss"):
        ATTACKS.get("nope")


def test_shadow_classifier_learns_from_shadow_in_out():
    """Shadows where IN records have higher log-probs: the classifier must rank the target's member higher."""
    rng = np.random.default_rng(0)
    n, k = 40, 6
    in_mask = np.zeros((k, n), dtype=bool)
    for j in range(n):
        in_mask[rng.permutation(k)[: k // 2], j] = True

    def scores_for(is_in):
        return [ts(str(j), -3.0 + 1.5 * m + rng.normal(0, 0.3, 4), mu=[-3.0] * 4, sigma=[1.0] * 4) for j, m in enumerate(is_in)]

    shadows = ShadowScores(in_mask=in_mask, scores=[scores_for(row) for row in in_mask])
    truth = np.arange(n) % 2 == 0
    reference = [ts(str(j), [-3.0] * 4) for j in range(n)]
    texts = [f"record {j}" for j in range(n)]
    attack = ATTACKS.get("shadow")()
    scores = attack.score(AttackInputs(target=scores_for(truth), texts=texts, reference=reference, shadows=shadows))
    assert scores.shape == (n,)
    assert scores[truth].min() > scores[~truth].max()
    assert hasattr(attack, "classifier_")
