"""LiRA, the likelihood-ratio attack (Carlini et al., "Membership Inference Attacks From First
Principles", 2022).

K shadow adapters are trained on random halves of the candidate pool, so that each candidate is
IN for half of them and OUT for the other half. For each candidate the signal φ under the IN
shadows and under the OUT shadows is fitted by a Gaussian, and the target's φ is tested:

- online:  score = log N(φ; μ_in, σ_in) − log N(φ; μ_out, σ_out)  (the likelihood ratio);
- offline: score = −log P(Φ_out ≥ φ), the one-sided Gaussian tail against OUT only (no IN
  shadows needed, so it also works for records no shadow trained on).

Variance: with fewer than :data:`PER_EXAMPLE_VARIANCE_MIN_SHADOWS` shadows a per-record variance
from K/2 samples is too noisy, so one pooled within-record variance is used for all records (the
paper's "fixed variance" variant); from 32 shadows on, each record gets its own. Pooling still
needs records seen by at least two IN and two OUT shadows (:data:`MIN_SHADOWS`); with fewer, pass
a ``fixed_variance`` (σ² of φ) or the scores come out non-finite, which :class:`LiraAttack` refuses
(a quiet AUC of 0.5 would read as "no leakage").

The signal φ is the record's mean token log-prob. The paper logit-scales a classifier's
confidence p, log(p / (1 − p)); for a sequence p = Π_t p_t is tiny, so the logit equals log p to
machine precision, and dividing by the number of tokens puts records of different lengths on one
scale (which the pooled variance needs). See :func:`gaussian_fit_report` and the README for how
well the Gaussian fits.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from dpaudit.attacks.base import ATTACKS, AttackInputs, ShadowScores
from dpaudit.attacks.signals import mean_logprob
from dpaudit.errors import ConfigError, InputError

PER_EXAMPLE_VARIANCE_MIN_SHADOWS = 32
MIN_SHADOWS = 4
"""Fewest shadows that fit a pooled variance: each record is IN for half of them, OUT for the rest."""
MAX_NONFINITE_SHARE = 0.05
"""A larger share of non-finite LiRA scores is an error, not a silently chance-level AUC."""
_MIN_STD = 1e-8  # keeps a degenerate fit (identical φ across shadows) from dividing by zero


def shadow_phi(shadows: ShadowScores) -> np.ndarray:
    """(K, n) the LiRA signal of every candidate under every shadow."""
    return np.stack([mean_logprob(row) for row in shadows.scores])


def fit_gaussians(
    phi: np.ndarray, in_mask: np.ndarray, *, per_example_variance: bool | None = None,
    fixed_variance: float | None = None,
) -> dict[str, np.ndarray]:
    """Per-record Gaussian fits of φ under IN and OUT shadows.

    Args:
        phi: (K, n) signal of candidate j under shadow k (NaN entries are ignored).
        in_mask: (K, n) bool, True where candidate j trained shadow k.
        per_example_variance: None → True iff K ≥ 32.
        fixed_variance: σ² of φ for every record and side instead of a fitted one (few shadows).

    Returns:
        ``mu_in``, ``sd_in``, ``mu_out``, ``sd_out``, each (n,). A record with no finite IN (OUT)
        value gets NaN for that side.
    """
    phi = np.asarray(phi, dtype=np.float64)
    in_mask = np.asarray(in_mask, dtype=bool)
    if phi.shape != in_mask.shape or phi.ndim != 2:
        raise InputError(f"phi and in_mask must both be (K, n), got {phi.shape} and {in_mask.shape}")
    if per_example_variance is None:
        per_example_variance = phi.shape[0] >= PER_EXAMPLE_VARIANCE_MIN_SHADOWS
    finite = np.isfinite(phi)
    fits = {}
    for side, mask in (("in", in_mask & finite), ("out", ~in_mask & finite)):
        count = mask.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mu = np.where(mask, phi, 0.0).sum(axis=0) / count
            squares = np.where(mask, (phi - mu) ** 2, 0.0).sum(axis=0)
            if per_example_variance:
                sd = np.sqrt(squares / (count - 1))
            else:  # pooled within-record variance: Σ_j Σ_k (φ_kj − μ_j)² / Σ_j (c_j − 1)
                usable = count >= 2
                sd = np.full(phi.shape[1], np.sqrt(squares[usable].sum() / (count[usable] - 1).sum()))
        if fixed_variance is not None:
            sd = np.full(phi.shape[1], np.sqrt(fixed_variance))
        fits[f"mu_{side}"] = np.where(count > 0, mu, np.nan)
        fits[f"sd_{side}"] = np.maximum(sd, _MIN_STD)
    return fits


def lira_online(
    target_phi: np.ndarray, phi: np.ndarray, in_mask: np.ndarray, *, per_example_variance: bool | None = None,
    fixed_variance: float | None = None,
) -> np.ndarray:
    """(n,) log N(φ; μ_in, σ_in) − log N(φ; μ_out, σ_out) for the target's ``target_phi`` (n,)."""
    fit = fit_gaussians(phi, in_mask, per_example_variance=per_example_variance, fixed_variance=fixed_variance)
    return stats.norm.logpdf(target_phi, fit["mu_in"], fit["sd_in"]) - stats.norm.logpdf(
        target_phi, fit["mu_out"], fit["sd_out"]
    )


def lira_offline(
    target_phi: np.ndarray, phi: np.ndarray, in_mask: np.ndarray, *, per_example_variance: bool | None = None,
    fixed_variance: float | None = None,
) -> np.ndarray:
    """(n,) −log P(Φ ≥ φ) for Φ ~ N(μ_out, σ_out): large when φ is improbably high for a non-member."""
    fit = fit_gaussians(phi, in_mask, per_example_variance=per_example_variance, fixed_variance=fixed_variance)
    return -stats.norm.logsf(target_phi, fit["mu_out"], fit["sd_out"])


def gaussian_fit_report(phi: np.ndarray, in_mask: np.ndarray, *, alpha: float = 0.05) -> dict[str, float | int]:
    """How Gaussian φ looks across shadows: Shapiro–Wilk per record and side (≥ 3 finite values).

    Returns the share of (record, side) fits rejected at ``alpha`` (≈ ``alpha`` when φ is Gaussian),
    the number of fits tested, and the median |skewness|.
    """
    phi = np.asarray(phi, dtype=np.float64)
    in_mask = np.asarray(in_mask, dtype=bool)
    pvalues, skews = [], []
    for j in range(phi.shape[1]):
        for mask in (in_mask[:, j], ~in_mask[:, j]):
            values = phi[mask, j]
            values = values[np.isfinite(values)]
            if values.size >= 3 and np.ptp(values) > 0:
                pvalues.append(stats.shapiro(values).pvalue)
                skews.append(abs(stats.skew(values)))
    if not pvalues:
        return {"n_tested": 0, "shapiro_reject_rate": float("nan"), "median_abs_skew": float("nan"), "alpha": alpha}
    return {
        "n_tested": len(pvalues),
        "shapiro_reject_rate": float(np.mean(np.array(pvalues) < alpha)),
        "median_abs_skew": float(np.median(skews)),
        "alpha": alpha,
    }


@ATTACKS.register("lira")
class LiraAttack:
    """Online LiRA. ``per_example_variance=None`` chooses by the number of shadows (≥ 32);
    ``fixed_variance`` (σ² of φ) replaces the fitted variance, for runs with fewer than 4 shadows."""

    requires = frozenset({"shadows"})

    def __init__(self, per_example_variance: bool | None = None, fixed_variance: float | None = None) -> None:
        if fixed_variance is not None and not fixed_variance > 0:
            raise ConfigError(f"`lira_fixed_variance` must be > 0, got {fixed_variance}")
        self.per_example_variance = per_example_variance
        self.fixed_variance = fixed_variance

    def score(self, inputs: AttackInputs) -> np.ndarray:
        shadows = inputs.need("shadows", "lira")
        return self._checked(lira_online(
            mean_logprob(inputs.target),
            shadow_phi(shadows),
            shadows.in_mask,
            per_example_variance=self.per_example_variance,
            fixed_variance=self.fixed_variance,
        ), k=len(shadows.scores))

    @staticmethod
    def _checked(scores: np.ndarray, *, k: int) -> np.ndarray:
        """``scores`` unless too many are non-finite (the shadows could not fit a Gaussian)."""
        bad = int((~np.isfinite(scores)).sum())
        if bad > MAX_NONFINITE_SHARE * scores.size:
            raise ConfigError(
                f"LiRA: {bad} of {scores.size} scores are not finite: {k} shadows are too few to fit a variance; "
                f"use --shadows {max(MIN_SHADOWS, 8)} or more (at least {MIN_SHADOWS}), or a fixed variance "
                "(--lira-fixed-variance)"
            )
        return scores


@ATTACKS.register("lira_offline")
class LiraOfflineAttack(LiraAttack):
    """Offline LiRA: the one-sided test against the OUT shadows only."""

    def score(self, inputs: AttackInputs) -> np.ndarray:
        shadows = inputs.need("shadows", "lira_offline")
        return self._checked(lira_offline(
            mean_logprob(inputs.target),
            shadow_phi(shadows),
            shadows.in_mask,
            per_example_variance=self.per_example_variance,
            fixed_variance=self.fixed_variance,
        ), k=len(shadows.scores))
