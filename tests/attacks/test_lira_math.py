"""LiRA on synthetic Gaussian signals, where the Neyman–Pearson optimal test is known.

Each record j has its own IN and OUT distribution of φ. The optimal test (Neyman–Pearson) thresholds
the true likelihood ratio log N(φ; μ_in_j, σ_in_j) − log N(φ; μ_out_j, σ_out_j). LiRA estimates those
parameters from shadows; with enough shadows its ROC must match the optimal ROC.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve

from dpaudit.attacks.lira import (
    PER_EXAMPLE_VARIANCE_MIN_SHADOWS,
    fit_gaussians,
    gaussian_fit_report,
    lira_offline,
    lira_online,
)


def _world(rng, n, *, per_record_sd):
    mu_out = rng.normal(-2.0, 1.0, n)  # records differ a lot in difficulty: a global threshold is weak
    mu_in = mu_out + rng.uniform(0.2, 0.8, n)
    if per_record_sd:
        sd_in, sd_out = rng.uniform(0.1, 0.5, n), rng.uniform(0.1, 0.5, n)
    else:
        sd_in = sd_out = np.full(n, 0.3)
    return mu_in, sd_in, mu_out, sd_out


def _shadows(rng, world, k):
    mu_in, sd_in, mu_out, sd_out = world
    n = mu_in.size
    in_mask = np.argsort(rng.uniform(size=(k, n)), axis=0) < k // 2  # each record IN for exactly k/2
    phi = np.where(in_mask, rng.normal(mu_in, sd_in, (k, n)), rng.normal(mu_out, sd_out, (k, n)))
    return phi, in_mask


def _target(rng, world):
    mu_in, sd_in, mu_out, sd_out = world
    labels = rng.uniform(size=mu_in.size) < 0.5
    phi = np.where(labels, rng.normal(mu_in, sd_in), rng.normal(mu_out, sd_out))
    return phi, labels


def _tpr_at(labels, scores, fpr):
    fprs, tprs, _ = roc_curve(labels, scores)
    return tprs[fprs <= fpr].max()


@pytest.mark.parametrize("per_record_sd", [False, True])
def test_online_lira_matches_neyman_pearson(per_record_sd):
    """64 shadows, so that the fitted Gaussians are close to the true ones (pooled σ for equal σs)."""
    rng = np.random.default_rng(1)
    world = _world(rng, 6000, per_record_sd=per_record_sd)
    phi, in_mask = _shadows(rng, world, 64)
    target_phi, labels = _target(rng, world)
    mu_in, sd_in, mu_out, sd_out = world
    optimal = stats.norm.logpdf(target_phi, mu_in, sd_in) - stats.norm.logpdf(target_phi, mu_out, sd_out)
    lira = lira_online(target_phi, phi, in_mask, per_example_variance=per_record_sd)

    auc_opt, auc_lira = roc_auc_score(labels, optimal), roc_auc_score(labels, lira)
    assert auc_lira == pytest.approx(auc_opt, abs=0.01)
    assert auc_lira > roc_auc_score(labels, target_phi) + 0.05  # and far better than the raw signal
    for fpr in (0.01, 0.1):
        assert _tpr_at(labels, lira, fpr) == pytest.approx(_tpr_at(labels, optimal, fpr), abs=0.05)


def test_equal_variance_auc_matches_the_binormal_formula():
    """Equal σ and shift Δ for every record: the optimal AUC is Φ(Δ / (σ√2))."""
    rng = np.random.default_rng(2)
    n, delta, sd = 20000, 0.45, 0.3
    mu_out = rng.normal(-2.0, 1.0, n)
    world = (mu_out + delta, np.full(n, sd), mu_out, np.full(n, sd))
    phi, in_mask = _shadows(rng, world, 64)
    target_phi, labels = _target(rng, world)
    expected = stats.norm.cdf(delta / (sd * np.sqrt(2)))
    lira = lira_online(target_phi, phi, in_mask, per_example_variance=False)
    assert roc_auc_score(labels, lira) == pytest.approx(expected, abs=0.01)


def test_offline_is_the_one_sided_tail_against_out():
    rng = np.random.default_rng(3)
    world = _world(rng, 3000, per_record_sd=False)
    phi, in_mask = _shadows(rng, world, 16)
    target_phi, labels = _target(rng, world)
    fit = fit_gaussians(phi, in_mask)
    expected = -np.log(stats.norm.sf((target_phi - fit["mu_out"]) / fit["sd_out"]))
    np.testing.assert_allclose(lira_offline(target_phi, phi, in_mask), expected, rtol=1e-9)
    # With μ_in > μ_out for every record the one-sided test is optimal too (monotone likelihood ratio).
    mu_in, sd_in, mu_out, sd_out = world
    optimal = stats.norm.logpdf(target_phi, mu_in, sd_in) - stats.norm.logpdf(target_phi, mu_out, sd_out)
    assert roc_auc_score(labels, lira_offline(target_phi, phi, in_mask)) > roc_auc_score(labels, optimal) - 0.03


def test_fit_uses_pooled_variance_below_32_shadows_and_per_record_from_32():
    phi = np.array([[0.0, 10.0], [2.0, 10.0], [1.0, 11.0], [3.0, 11.0]])
    in_mask = np.array([[True, True], [True, True], [False, False], [False, False]])
    pooled = fit_gaussians(phi, in_mask)
    # IN residuals: record 0 → ±1, record 1 → 0, 0; Σ r² = 2 over Σ (c − 1) = 2 → σ = 1 for both.
    np.testing.assert_allclose(pooled["mu_in"], [1.0, 10.0])
    np.testing.assert_allclose(pooled["sd_in"], [1.0, 1.0])
    per_record = fit_gaussians(phi, in_mask, per_example_variance=True)
    np.testing.assert_allclose(per_record["sd_in"], [np.sqrt(2.0), 1e-8])
    assert PER_EXAMPLE_VARIANCE_MIN_SHADOWS == 32
    assert fit_gaussians(np.zeros((32, 3)), np.eye(32, 3, dtype=bool)) is not None


def test_record_without_in_shadows_gets_nan_online_but_a_score_offline():
    phi = np.array([[0.0, 1.0], [0.5, 1.5], [0.2, 1.2], [0.3, 1.4]])
    in_mask = np.array([[True, False], [False, True], [True, False], [False, True]])
    target = np.array([0.1, 1.1])
    online = lira_online(target, phi, in_mask, per_example_variance=False)
    assert np.isfinite(online).all()
    in_mask[:, 0] = False
    online = lira_online(target, phi, in_mask, per_example_variance=False)
    assert np.isnan(online[0]) and np.isfinite(online[1])
    assert np.isfinite(lira_offline(target, phi, in_mask, per_example_variance=False)).all()


def test_gaussian_fit_report_accepts_gaussian_and_rejects_skewed():
    rng = np.random.default_rng(4)
    in_mask = np.argsort(rng.uniform(size=(40, 100)), axis=0) < 20
    gaussian = gaussian_fit_report(rng.normal(0, 1, (40, 100)), in_mask)
    skewed = gaussian_fit_report(rng.exponential(1, (40, 100)), in_mask)
    assert gaussian["n_tested"] == 200
    assert gaussian["shapiro_reject_rate"] < 0.1
    assert skewed["shapiro_reject_rate"] > 0.5
