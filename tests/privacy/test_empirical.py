"""Empirical ε: exactness of the statistics, soundness on mechanisms of known ε, and tightness.

Soundness is checked where the truth is known: scores of the Gaussian mechanism N(0, 1) vs
N(μ, 1) (μ-GDP, exact ε(δ)), and randomized response, where the bounds get close to the truth
and so a broken confidence interval would show.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dpaudit.errors import ConfigError, InputError
from dpaudit.privacy.clopper_pearson import (
    clopper_pearson_bound,
    clopper_pearson_upper,
    error_counts,
)
from dpaudit.privacy.gdp import (
    auc,
    gdp_delta,
    gdp_epsilon,
    gdp_estimate,
    mu_for_epsilon,
)
from dpaudit.privacy.one_run import (
    default_k_grid,
    one_run_bound,
    one_run_ceiling,
    one_run_epsilon,
    one_run_p_value,
)

SEEDS = 200
CONFIDENCE = 0.95


def gaussian_scores(rng, n_per_class, mu):
    scores = np.r_[rng.normal(size=n_per_class), rng.normal(size=n_per_class) + mu]
    labels = np.r_[np.zeros(n_per_class, int), np.ones(n_per_class, int)]
    return scores, labels


def canary_scores(rng, m, mu):
    """One-run setting: each canary included with probability 1/2; score N(μ·included, 1)."""
    labels = rng.integers(0, 2, m)
    return rng.normal(size=m) + mu * labels, labels


def rr_true_epsilon(eps0, delta):
    """ε(δ) of randomized response with pure ε0: δ(ε) = p − e^ε (1 − p)."""
    p = 1 / (1 + math.exp(-eps0))
    return math.log((p - delta) / (1 - p))


# ---- statistics against independent references ------------------------------------------------


def test_clopper_pearson_upper_is_exact():
    n, alpha = 50, 0.025
    ub = clopper_pearson_upper(np.arange(n + 1), n, alpha)
    assert ub[0] == pytest.approx(1 - alpha ** (1 / n))  # closed form at zero successes
    assert ub[-1] == 1.0
    # the defining property: P[Bin(n, ub_k) <= k] = alpha
    assert stats.binom.cdf(np.arange(n), n, ub[:-1]) == pytest.approx(np.full(n, alpha), rel=1e-6)


def test_error_counts_match_a_brute_force_loop():
    rng = np.random.default_rng(1)
    scores = np.round(rng.normal(size=60), 1)  # ties on purpose
    labels = rng.integers(0, 2, 60)
    thresholds, fp, fn = error_counts(scores, labels)
    for t, f_p, f_n in zip(thresholds, fp, fn, strict=True):
        predicted = scores >= t
        assert f_p == np.sum(predicted & (labels == 0))
        assert f_n == np.sum(~predicted & (labels == 1))
    assert len(thresholds) == len(np.unique(scores)) + 1


def _paper_p_value(m, r, v, eps, delta):
    """Steinke et al. (2023), Algorithm 2 as a plain loop: the reference for ours."""
    q = 1 / (1 + math.exp(-eps))
    beta = stats.binom.sf(v - 1, r, q)
    alpha, total = 0.0, 0.0
    for i in range(1, v + 1):
        total += stats.binom.pmf(v - i, r, q)
        alpha = max(alpha, total / i)
    return min(1.0, beta + alpha * delta * 2 * m)


@pytest.mark.parametrize(
    ("m", "r", "v", "eps", "delta"),
    [
        (1000, 100, 90, 1.0, 1e-5),
        (1000, 1000, 1000, 5.0, 1e-5),
        (200, 40, 25, 0.3, 1e-3),
        (50, 10, 0, 0.5, 1e-5),
    ],
)
def test_one_run_p_value_matches_the_papers_loop(m, r, v, eps, delta):
    assert one_run_p_value(m=m, guesses=r, correct=v, epsilon=eps, delta=delta) == pytest.approx(
        _paper_p_value(m, r, v, eps, delta), rel=1e-9, abs=1e-15
    )


def test_one_run_keeps_the_delta_term():
    without = one_run_p_value(m=1000, guesses=1000, correct=1000, epsilon=5.0, delta=0.0)
    with_delta = one_run_p_value(m=1000, guesses=1000, correct=1000, epsilon=5.0, delta=1e-5)
    assert with_delta > without
    assert one_run_epsilon(m=1000, guesses=1000, correct=1000, delta=1e-5, alpha=0.05) < one_run_epsilon(
        m=1000, guesses=1000, correct=1000, delta=0.0, alpha=0.05
    )


def test_one_run_p_value_is_valid_for_randomized_response():
    """Exact check of the theorem where it is tight: r guesses on ε0-RR are Bin(r, q0).

    The rejection region {v : p(ε0, v) ≤ α} must have probability ≤ α under Bin(r, q0).
    """
    alpha, delta = 0.05, 1e-5
    for eps0, r, m in [(0.5, 200, 200), (1.0, 1000, 1000), (2.0, 300, 1000), (4.0, 100, 100)]:
        q0 = 1 / (1 + math.exp(-eps0))
        rejected = [
            v for v in range(r + 1) if one_run_p_value(m=m, guesses=r, correct=v, epsilon=eps0, delta=delta) <= alpha
        ]
        assert stats.binom.sf(min(rejected) - 1, r, q0) <= alpha if rejected else True


def test_one_run_ceiling_for_1000_canaries():
    ceiling = one_run_ceiling(m=1000, delta=1e-5, confidence=0.95)
    assert ceiling == pytest.approx(5.8, abs=0.05)
    # a perfect audit reaches it (up to the search's Bonferroni price)
    labels = np.r_[np.zeros(500, int), np.ones(500, int)]
    bound = one_run_bound(labels.astype(float), labels, delta=1e-5)
    assert bound.ceiling == pytest.approx(ceiling)
    assert bound.correct == bound.guesses == 1000
    assert bound.epsilon_lb == pytest.approx(bound.ceiling_with_search)
    assert 5.0 < bound.ceiling_with_search < ceiling


def test_one_run_default_grid_scales_with_m():
    assert default_k_grid(1000) == ((10, 10), (25, 25), (50, 50), (100, 100), (200, 200), (500, 500))
    assert default_k_grid(10) == ((1, 1), (2, 2), (5, 5))


def test_gdp_curve_matches_the_papers_numbers():
    assert gdp_epsilon(mu=2.0, delta=1e-5) == pytest.approx(10.0, abs=0.01)
    for eps in (2.0, 4.0, 8.0):
        mu = mu_for_epsilon(epsilon=eps, delta=1e-5)
        assert gdp_delta(epsilon=eps, mu=mu) == pytest.approx(1e-5, rel=1e-6)
    assert gdp_epsilon(mu=0.0, delta=1e-5) == 0.0
    assert gdp_epsilon(mu=math.inf, delta=1e-5) == math.inf


def test_auc_matches_brute_force():
    rng = np.random.default_rng(3)
    scores = np.round(rng.normal(size=80), 1)
    labels = rng.integers(0, 2, 80)
    pos, neg = scores[labels == 1], scores[labels == 0]
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert auc(scores, labels) == pytest.approx(brute)


def test_gdp_estimate_recovers_mu():
    rng = np.random.default_rng(0)
    for mu in (0.5, 1.0, 2.0):
        est = gdp_estimate(*gaussian_scores(rng, 5000, mu), delta=1e-5)
        assert est.mu == pytest.approx(mu, abs=0.08)
        assert est.kind == "estimate" and est.confidence is None
    useless = gdp_estimate(*gaussian_scores(rng, 2000, -1.0), delta=1e-5)
    assert useless.mu == 0.0 and useless.epsilon == 0.0


# ---- soundness: over 200 seeds, a bound exceeds the truth in at most (1 − confidence) of them ----


def _exceed_rate(bound_fn, sample, truth):
    exceed = 0
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        scores, labels = sample(rng)
        if bound_fn(scores, labels, seed) > truth:
            exceed += 1
    return exceed / SEEDS


@pytest.mark.parametrize("selection", ["split", "bonferroni"])
def test_clopper_pearson_is_sound_on_the_gaussian_mechanism(selection):
    mu, delta = 2.0, 1e-5
    truth = gdp_epsilon(mu=mu, delta=delta)
    rate = _exceed_rate(
        lambda s, y, seed: clopper_pearson_bound(s, y, delta=delta, seed=seed, selection=selection).epsilon_lb,
        lambda rng: gaussian_scores(rng, 300, mu),
        truth,
    )
    assert rate <= 1 - CONFIDENCE


@pytest.mark.parametrize("selection", ["split", "bonferroni"])
def test_clopper_pearson_is_sound_where_it_is_nearly_tight(selection):
    """Randomized response (binary scores): the bound gets near the truth, so a wrong interval shows."""
    eps0, delta, n = 1.0, 1e-5, 3000
    truth = rr_true_epsilon(eps0, delta)
    p = 1 / (1 + math.exp(-eps0))

    def sample(rng):
        labels = np.r_[np.zeros(n, int), np.ones(n, int)]
        flip = rng.random(2 * n) > p
        return np.where(flip, 1 - labels, labels).astype(float), labels

    values = []
    rate = _exceed_rate(
        lambda s, y, seed: (
            values.append(clopper_pearson_bound(s, y, delta=delta, seed=seed, selection=selection).epsilon_lb)
            or values[-1]
        ),
        sample,
        truth,
    )
    assert rate <= 1 - CONFIDENCE
    assert np.mean(values) > 0.75 * truth  # the test has teeth: bounds come close


def test_one_run_is_sound_on_the_gaussian_mechanism():
    mu, delta = 2.0, 1e-5
    truth = gdp_epsilon(mu=mu, delta=delta)
    rate = _exceed_rate(
        lambda s, y, seed: one_run_bound(s, y, delta=delta, seed=seed).epsilon_lb,
        lambda rng: canary_scores(rng, 200, mu),
        truth,
    )
    assert rate <= 1 - CONFIDENCE


def test_one_run_is_sound_where_it_is_nearly_tight():
    eps0, delta, m = 1.0, 1e-5, 400
    truth = rr_true_epsilon(eps0, delta)
    p = 1 / (1 + math.exp(-eps0))

    def sample(rng):
        labels = rng.integers(0, 2, m)
        flip = rng.random(m) > p
        return np.where(flip, 1 - labels, labels).astype(float), labels  # ties broken at random by seed

    values = []
    rate = _exceed_rate(
        lambda s, y, seed: (
            values.append(one_run_bound(s, y, delta=delta, seed=seed, k_grid=[m // 2]).epsilon_lb) or values[-1]
        ),
        sample,
        truth,
    )
    assert rate <= 1 - CONFIDENCE
    assert np.mean(values) > 0.5 * truth


# ---- tightness -----------------------------------------------------------------------------------


@pytest.mark.parametrize("selection", ["split", "bonferroni"])
def test_clopper_pearson_tightness_at_ten_thousand_per_class(selection):
    """μ = 2, δ = 1e-5 (true ε ≈ 10.0): measured ε_lb ≈ 4.1 (split) and 3.9 (bonferroni)."""
    rng = np.random.default_rng(0)
    bound = clopper_pearson_bound(*gaussian_scores(rng, 10_000, 2.0), delta=1e-5, selection=selection)
    assert 3.5 <= bound.epsilon_lb < gdp_epsilon(mu=2.0, delta=1e-5)


IDEAL_TARGETS = {2.0: 0.5, 4.0: 1.3, 8.0: 2.4}  # issue #6: an ideal one-run audit with m = 1000


def test_ideal_one_run_audit_tightness(record_property):
    """μ-GDP canaries, m = 1000, δ = 1e-5; mean ε_lb over 10 runs (measured: ≈ 0.6, 1.4, 2.6)."""
    measured = {}
    for eps, target in IDEAL_TARGETS.items():
        mu = mu_for_epsilon(epsilon=eps, delta=1e-5)
        values = [
            one_run_bound(*canary_scores(np.random.default_rng(seed), 1000, mu), delta=1e-5, seed=seed).epsilon_lb
            for seed in range(10)
        ]
        measured[eps] = float(np.mean(values))
        record_property(f"one_run_eps_lb_at_eps_{eps:g}", round(measured[eps], 3))
        assert max(values) < eps
        assert measured[eps] == pytest.approx(target, rel=0.4)
    assert measured[2.0] < measured[4.0] < measured[8.0] < 5.8


# ---- input checks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn",
    [
        lambda s, y: clopper_pearson_bound(s, y, delta=1e-5),
        lambda s, y: one_run_bound(s, y, delta=1e-5),
        lambda s, y: gdp_estimate(s, y, delta=1e-5),
    ],
)
@pytest.mark.parametrize(
    ("scores", "labels", "needle"),
    [
        ([0.1, 0.2, 0.3], [0, 1], "same length"),
        ([0.1, np.nan, 0.3, 0.4], [0, 1, 0, 1], "finite"),
        ([0.1, 0.2, 0.3, 0.4], [0, 1, 2, 1], "0 or 1"),
        ([0.1, 0.2, 0.3, 0.4], [1, 1, 1, 1], "both members and non-members"),
    ],
)
def test_bad_arrays_are_input_errors(fn, scores, labels, needle):
    with pytest.raises(InputError, match=needle):
        fn(np.asarray(scores), np.asarray(labels))


@pytest.mark.parametrize("kwargs", [{"delta": 0.0}, {"delta": 1.0}, {"delta": 1e-5, "confidence": 1.0}])
def test_bad_delta_or_confidence(kwargs):
    s, y = gaussian_scores(np.random.default_rng(0), 10, 1.0)
    with pytest.raises(ConfigError, match="`delta`|`confidence`"):
        clopper_pearson_bound(s, y, **kwargs)


def test_one_run_bad_grid():
    s, y = canary_scores(np.random.default_rng(0), 20, 1.0)
    with pytest.raises(ConfigError, match="k_grid"):
        one_run_bound(s, y, delta=1e-5, k_grid=[(15, 15)])
