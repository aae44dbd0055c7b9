"""Membership-inference metrics: AUC, TPR at low FPR, balanced accuracy, ROC points, with bootstrap CIs.

Every attack hands in ``scores`` of shape (n,) where higher means "more likely a member", and
``labels`` of shape (n,) with 1 = member, 0 = non-member. The numbers that matter for privacy
are at low false-positive rates (Carlini et al., "Membership Inference Attacks From First
Principles"): an attack that confidently identifies a few members at FPR 0.1% leaks, even with an
AUC near 0.5. So next to the AUC we report TPR at FPR 0.1%, 1% and 10%, each with a bootstrap CI
whose upper bound the CI gate can use.

Conventions (decided once, here):

- ``tpr_at_fpr[α]`` is the largest TPR over thresholds whose FPR is ≤ α (never the first ROC point
  above α, which would flatter the attack). A threshold classifies ``score >= t`` as member.
- Non-finite scores are counted in ``n_nonfinite`` and kept, not dropped: dropping them would
  change ``n_members``/``n_nonmembers`` behind the user's back. NaN means the attack produced no
  evidence for that record, so it is ranked as least likely a member (below every finite score,
  tied with ``-inf``); ``+inf`` and ``-inf`` keep their order (above/below every finite score).
- Fewer than :data:`MIN_RECORDS_PER_CLASS` (10) members or non-members: warns
  ``UndefinedMetricWarning`` and returns NaN, as scikit-learn's ``roc_curve`` does for one class
  (1 member and 1 non-member would otherwise give AUC 1 with the "interval" [1, 1]).
- Low FPR needs non-members beyond the threshold: TPR at α is reported only where
  α·n_nonmembers ≥ :data:`MIN_FALSE_POSITIVES` (5). Below, the threshold is set by the single
  largest non-member score, the TPR is biased high (2–3× at α = 0.1% with 200 non-members) and
  no interval covers it; the value is ``None`` and ``tpr_at_fpr_needs`` gives the non-members
  needed (⌈5/α⌉).
- Bootstrap CIs resample members and non-members separately (stratified: the class sizes are
  fixed by the audit design), *reselect the threshold in every resample* (from the resampled
  non-members), and take the 2.5/97.5 percentiles, widened if needed to contain the point
  estimate, so that gating on the upper bound is never laxer than gating on the estimate.
  Simulated with Gaussian scores, the TPR interval covers the true TPR at α in ≥ 90% of runs
  wherever a value is reported (tests/evaluators/test_mia_metrics.py).

>>> import numpy as np
>>> scores = np.r_[np.linspace(1, 2, 10), np.linspace(0, 1.5, 10)]
>>> m = mia_metrics(scores=scores, labels=np.r_[np.ones(10), np.zeros(10)], n_bootstrap=0, fprs=(0.01, 0.5))
>>> round(m["auc"], 3), m["tpr_at_fpr"]["0.01"], m["tpr_at_fpr_needs"]["0.01"], m["tpr_at_fpr"]["0.5"]
(0.89, None, 500, 1.0)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import roc_auc_score, roc_curve

from dpaudit.errors import InputError

DEFAULT_FPRS: tuple[float, ...] = (0.001, 0.01, 0.1)
#: TPR at FPR α is reported only where at least this many non-members may lie beyond the threshold.
MIN_FALSE_POSITIVES = 5
#: Fewer members or non-members than this give no meaningful ROC (and a degenerate bootstrap).
MIN_RECORDS_PER_CLASS = 10
WORST_CASE_FPR = 0.01
DEFAULT_BOOTSTRAP = 1000
MAX_ROC_POINTS = 200
HISTOGRAM_BINS = 30
_ROUND = 6  # ROC coordinates in the report: k/n rounded (monotone, so the curve keeps its shape)


def fpr_key(fpr: float) -> str:
    """The JSON key of a target FPR: ``0.01 -> "0.01"`` (the same spelling everywhere)."""
    return repr(float(fpr))


def mia_metrics(
    *,
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    seed: int = 0,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    fprs: Sequence[float] = DEFAULT_FPRS,
    max_roc_points: int = MAX_ROC_POINTS,
) -> dict[str, Any]:
    """Metrics of one attack, as a JSON-ready dict (the per-attack entry of ``report.json``).

    Args:
        scores: shape (n,), higher = more likely a member; may hold NaN/±inf (see module doc).
        labels: shape (n,), 1 = member, 0 = non-member (bools accepted).
        seed: seeds the bootstrap; the same seed gives the same CIs.
        n_bootstrap: bootstrap replicates for the CIs (0 → CIs are NaN).
        fprs: target false-positive rates, each in (0, 1].
        max_roc_points: the ROC is downsampled to at most this many points, log-spaced in FPR so
            that the low-FPR region survives, plus a linear grid for the linear plot.

    Returns:
        ``auc`` (= ``sklearn.metrics.roc_auc_score``), ``auc_ci95`` [lo, hi], ``tpr_at_fpr``
        {"0.001": tpr or None, ...}, ``tpr_at_fpr_ci95`` {"0.001": [lo, hi], ...},
        ``tpr_at_fpr_needs`` {"0.001": non-members needed} for each None TPR, ``balanced_accuracy``
        (at the best threshold), ``n_members``, ``n_nonmembers``, ``n_nonfinite``, ``n_bootstrap``,
        ``roc`` {"fpr": [...], "tpr": [...]}.
    """
    if n_bootstrap < 0:
        raise InputError(f"`n_bootstrap` must be >= 0, got {n_bootstrap}")
    if max_roc_points < 4:
        raise InputError(f"`max_roc_points` must be >= 4, got {max_roc_points}")
    for fpr in fprs:
        if not 0 < fpr <= 1:
            raise InputError(f"every target FPR must be in (0, 1], got {fpr}")
    ranks, y, n_nonfinite = _prepare(scores, labels)
    n_members, n_nonmembers = int(y.sum()), int(y.size - y.sum())
    result: dict[str, Any] = {
        "n_members": n_members,
        "n_nonmembers": n_nonmembers,
        "n_nonfinite": n_nonfinite,
        "n_bootstrap": n_bootstrap,
    }
    if n_members < MIN_RECORDS_PER_CLASS or n_nonmembers < MIN_RECORDS_PER_CLASS:
        warnings.warn(
            f"MIA metrics need at least {MIN_RECORDS_PER_CLASS} members and {MIN_RECORDS_PER_CLASS} non-members; "
            f"got {n_members} members and {n_nonmembers} non-members, so every metric is NaN",
            UndefinedMetricWarning,
            stacklevel=2,
        )
        nan2 = [math.nan, math.nan]
        return result | {
            "auc": math.nan,
            "auc_ci95": nan2,
            "tpr_at_fpr": {fpr_key(f): math.nan for f in fprs},
            "tpr_at_fpr_ci95": {fpr_key(f): list(nan2) for f in fprs},
            "balanced_accuracy": math.nan,
            "roc": {"fpr": [], "tpr": []},
        }

    fpr_curve, tpr_curve, _ = roc_curve(y, ranks, drop_intermediate=False)
    auc = float(roc_auc_score(y, ranks))
    # fpr_curve holds k / n_nonmembers exactly; recover k to compare counts, not rounded floats.
    false_positives = np.rint(fpr_curve * n_nonmembers).astype(np.int64)
    needs = {fpr_key(f): nonmembers_needed(f) for f in fprs if nonmembers_needed(f) > n_nonmembers}
    reported = [f for f in fprs if fpr_key(f) not in needs]
    tpr_at: dict[str, float | None] = {
        fpr_key(f): None
        if fpr_key(f) in needs
        else float(tpr_curve[false_positives <= _max_false_positives(f, n_nonmembers)].max())
        for f in fprs
    }
    balanced_accuracy = float(np.max((tpr_curve + 1.0 - fpr_curve) / 2.0))

    auc_ci, tpr_ci = _bootstrap(ranks, y, fprs=reported, n_bootstrap=n_bootstrap, seed=seed)
    roc_fpr, roc_tpr = _downsample_roc(fpr_curve, tpr_curve, max_points=max_roc_points)
    return result | {
        "auc": auc,
        "auc_ci95": _contain(auc_ci, auc),
        "tpr_at_fpr": tpr_at,
        "tpr_at_fpr_ci95": {
            key: [None, None] if value is None else _contain(tpr_ci[key], value) for key, value in tpr_at.items()
        },
        "tpr_at_fpr_needs": needs,
        "balanced_accuracy": balanced_accuracy,
        "roc": {
            "fpr": [round(float(v), _ROUND) for v in roc_fpr],
            "tpr": [round(float(v), _ROUND) for v in roc_tpr],
        },
    }


def nonmembers_needed(fpr: float) -> int:
    """Non-members needed before TPR at ``fpr`` is reported: α·n ≥ :data:`MIN_FALSE_POSITIVES`."""
    return math.ceil(MIN_FALSE_POSITIVES / fpr - 1e-9)


def tpr_at_fpr(
    *, scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray, fpr: float
) -> float:
    """The largest TPR over thresholds with FPR ≤ ``fpr`` (NaN with a warning for one class); the raw
    estimate, without :func:`mia_metrics`'s low-FPR and class-size rules.

    Same rule as ``mia_metrics(...)["tpr_at_fpr"]``, computed from sorted non-member scores: a
    threshold may flag at most m = ⌊fpr·n₀⌋ non-members, so the best threshold sits just above the
    (m+1)-th largest non-member score and the TPR is the fraction of members strictly above it.
    """
    ranks, y, _ = _prepare(scores, labels)
    members, nonmembers = ranks[y == 1], ranks[y == 0]
    if members.size == 0 or nonmembers.size == 0:
        warnings.warn("TPR at FPR needs members and non-members; returning NaN", UndefinedMetricWarning, stacklevel=2)
        return math.nan
    return float(_tpr_from_sorted(members, np.sort(nonmembers), fpr))


def score_histogram(
    *, scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray, bins: int = HISTOGRAM_BINS
) -> dict[str, list[float]] | None:
    """Member and non-member counts over shared bin ``edges`` (finite scores only; None if none).

    Returns ``{"member": counts (bins,), "nonmember": counts (bins,), "edges": (bins + 1,)}``,
    the optional ``score_histogram`` of an attack in ``report.json``.
    """
    values = np.asarray(scores, dtype=np.float64)
    y = _check_labels(labels, values.shape)
    finite = np.isfinite(values)
    if not finite.any():
        return None
    edges = np.histogram_bin_edges(values[finite], bins=bins)
    member, _ = np.histogram(values[finite & (y == 1)], bins=edges)
    nonmember, _ = np.histogram(values[finite & (y == 0)], bins=edges)
    return {"member": member.tolist(), "nonmember": nonmember.tolist(), "edges": [float(e) for e in edges]}


def worst_case(results: Mapping[str, Mapping[str, Any]], *, fpr: float = WORST_CASE_FPR) -> str:
    """Name of the strongest attack: highest TPR at ``fpr`` (1% by default), ties broken by AUC.

    Missing or NaN values count as lowest; remaining ties go to the first name alphabetically, so
    the answer does not depend on dict order.
    """
    if not results:
        raise InputError("no attack results to choose the worst case from")
    key = fpr_key(fpr)

    def rank(name: str) -> tuple[float, float]:
        metrics = results[name]
        return (_or_minus_inf((metrics.get("tpr_at_fpr") or {}).get(key)), _or_minus_inf(metrics.get("auc")))

    best = max(rank(name) for name in results)
    return min(name for name in results if rank(name) == best)


# --------------------------------------------------------------------------- helpers


def _check_labels(labels: Sequence[int] | np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape != shape:
        raise InputError(f"scores and labels must be 1-D arrays of the same length, got {shape} and {y.shape}")
    if y.size and not np.isin(y, (0, 1)).all():
        raise InputError("labels must be 1 (member) or 0 (non-member)", field="labels")
    return y.astype(np.int8)


def _prepare(
    scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """Dense ranks of the scores (NaN → lowest, ties kept), int labels, and the non-finite count.

    Ranks are a strictly monotone map of the scores, so every ROC quantity is unchanged, and they
    are finite, which scikit-learn requires.
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1:
        raise InputError(f"scores must be a 1-D array, got shape {values.shape}")
    y = _check_labels(labels, values.shape)
    n_nonfinite = int((~np.isfinite(values)).sum())
    ordered = np.where(np.isnan(values), -np.inf, values)
    ranks = np.unique(ordered, return_inverse=True)[1].astype(np.float64).reshape(values.shape)
    return ranks, y, n_nonfinite


def _max_false_positives(fpr: float, n_nonmembers: int) -> int:
    """Most non-members a threshold may flag at FPR ≤ ``fpr`` (tolerant to 0.29 * 100 = 28.99…)."""
    return int(math.floor(fpr * n_nonmembers + 1e-9))


def _tpr_from_sorted(members: np.ndarray, nonmembers_sorted: np.ndarray, fpr: float) -> float:
    m = _max_false_positives(fpr, nonmembers_sorted.size)
    if m >= nonmembers_sorted.size:
        return 1.0
    cutoff = nonmembers_sorted[nonmembers_sorted.size - 1 - m]  # the (m+1)-th largest non-member score
    return float(np.mean(members > cutoff))


def _auc_from_sorted(members: np.ndarray, nonmembers_sorted: np.ndarray) -> float:
    """Mann–Whitney AUC: P(member > non-member) + ½ P(tie)."""
    below = np.searchsorted(nonmembers_sorted, members, side="left")
    at_or_below = np.searchsorted(nonmembers_sorted, members, side="right")
    return float((below.sum() + 0.5 * (at_or_below - below).sum()) / (members.size * nonmembers_sorted.size))


def _bootstrap(
    ranks: np.ndarray, y: np.ndarray, *, fprs: Sequence[float], n_bootstrap: int, seed: int
) -> tuple[list[float], dict[str, list[float]]]:
    """Stratified percentile bootstrap of the AUC and of each TPR at FPR."""
    keys = [fpr_key(f) for f in fprs]
    if n_bootstrap == 0:
        return [math.nan, math.nan], {k: [math.nan, math.nan] for k in keys}
    members, nonmembers = ranks[y == 1], ranks[y == 0]
    rng = np.random.default_rng(seed)
    aucs = np.empty(n_bootstrap)
    tprs = np.empty((len(fprs), n_bootstrap))
    for b in range(n_bootstrap):
        pos = members[rng.integers(0, members.size, members.size)]
        neg = np.sort(nonmembers[rng.integers(0, nonmembers.size, nonmembers.size)])
        aucs[b] = _auc_from_sorted(pos, neg)
        for i, fpr in enumerate(fprs):
            tprs[i, b] = _tpr_from_sorted(pos, neg, fpr)
    auc_ci = [float(v) for v in np.percentile(aucs, [2.5, 97.5])]
    tpr_ci = {key: [float(v) for v in np.percentile(tprs[i], [2.5, 97.5])] for i, key in enumerate(keys)}
    return auc_ci, tpr_ci


def _contain(interval: list[float], estimate: float) -> list[float]:
    lo, hi = interval
    if math.isnan(lo) or math.isnan(hi):
        return [lo, hi]
    return [min(lo, estimate), max(hi, estimate)]


def _downsample_roc(fpr: np.ndarray, tpr: np.ndarray, *, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most ``max_points`` ROC points: half on a log-spaced FPR grid, half on a linear one.

    Each grid value keeps the last ROC point at or below it (the top of a vertical step), so every
    kept point is a real operating point of the attack; the first and last points always stay.
    """
    if fpr.size <= max_points:
        return fpr, tpr
    n_log = (max_points - 2) // 2
    n_lin = max_points - 2 - n_log
    smallest = fpr[fpr > 0].min()
    grid = np.concatenate([np.geomspace(smallest, 1.0, n_log), np.linspace(0.0, 1.0, n_lin)])
    picked = np.searchsorted(fpr, grid, side="right") - 1
    keep = np.unique(np.concatenate([[0, fpr.size - 1], np.clip(picked, 0, fpr.size - 1)]))
    return fpr[keep], tpr[keep]


def _or_minus_inf(value: Any) -> float:
    if value is None:
        return -math.inf
    value = float(value)
    return -math.inf if math.isnan(value) else value
