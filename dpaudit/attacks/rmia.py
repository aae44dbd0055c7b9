"""RMIA, the relative membership-inference attack (Zarifzadeh, Liu, Mahloujifar, Shokri, "Low-Cost
High-Power Membership Inference Attacks", ICML 2024).

For a candidate x, the likelihood ratio against the reference models,

    LR(x) = Pr(x | θ) / Pr(x),    Pr(x) = the average of Pr(x | θ_ref) over the reference models,

is compared pairwise with the same ratio of population records z (known non-members that are not
candidates):

    score(x) = |{z : LR(x) / LR(z) ≥ γ}| / m.

A record memorised by the target stands out against *every* population record, whatever the
record's own difficulty (which the reference models cancel). Computing it costs arithmetic on the
scores the suite already has plus one scoring pass of the m population records per model.

Pr(x | ·) is the geometric-mean token probability exp(mean log p(x_t | x_<t)): a probability in
(0, 1] (the paper's linear correction needs one), on one scale for records of any length (as
LiRA's φ, :mod:`dpaudit.attacks.lira`).

Reference models: the base (the target with its adapter disabled, or ``--reference``), which is
OUT for every record, plus the K shadow adapters when the run has any.

- offline (``rmia``): only the OUT references of x (the base and the shadows x did not train).
  Their average underestimates the IN+OUT average that Pr(x) stands for, so the paper corrects it
  linearly, Pr(x) ≈ ((1 + a)·Pr_OUT(x) + (1 − a)) / 2, with ``a`` fitted as the paper does: each
  shadow in turn plays the target, the others (and the base) its references, and ``a`` is the
  value on a grid that gives the highest mean AUC on those simulated attacks, whose membership is
  known (:func:`fit_offline_a`). With no shadows there is nothing to fit on and ``a = 1``
  (Pr(x) = the base's likelihood), and the ranking equals ``ref``'s.
- online (``rmia_online``): every reference, IN and OUT, averaged (Pr(x) as the paper defines it);
  needs shadows.

γ = 1 by default: score(x) is then the share of population records whose ratio x beats, so the
ranking is that of LR(x) itself, calibrated against the population.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dpaudit.attacks.base import ATTACKS, AttackInputs, PopulationScores, ShadowScores
from dpaudit.attacks.signals import mean_logprob
from dpaudit.errors import ConfigError, InputError
from dpaudit.models.scoring import TokenScores

DEFAULT_GAMMA = 1.0
A_GRID = np.linspace(0.0, 1.0, 21)  # the offline correction's `a`, searched in steps of 0.05


def likelihood(scores: Sequence[TokenScores]) -> np.ndarray:
    """(n,) geometric-mean token probability exp(mean log p): Pr(x | model) on a per-token scale."""
    return np.exp(mean_logprob(scores))


def pairwise_score(ratio_x: np.ndarray, ratio_z: np.ndarray, *, gamma: float = DEFAULT_GAMMA) -> np.ndarray:
    """(n,) share of the m population ratios ``ratio_z`` with ratio_x / ratio_z ≥ γ.

    Equivalent to the paper's pairwise count, computed by sorting (O((n + m) log m)): for a
    positive ratio_z, ratio_x / ratio_z ≥ γ ⇔ ratio_z ≤ ratio_x / γ. A NaN ratio_x gives NaN;
    NaN population ratios are left out.
    """
    if not gamma > 0:
        raise ConfigError(f"`gamma` must be > 0, got {gamma}")
    z = np.sort(ratio_z[np.isfinite(ratio_z)])
    if z.size == 0:
        raise InputError("RMIA needs at least one population record with a finite likelihood ratio")
    counts = np.searchsorted(z, ratio_x / gamma, side="right").astype(np.float64)
    return np.where(np.isnan(ratio_x), np.nan, counts / z.size)


def reference_mean(ref: np.ndarray, use: np.ndarray | None = None) -> np.ndarray:
    """(n,) mean over the rows of ``ref`` (R, n) that ``use`` (R, n) selects (all rows when None)."""
    use = np.ones(ref.shape, dtype=bool) if use is None else use
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(use, ref, 0.0).sum(axis=0) / use.sum(axis=0)


def offline_prior(pr_out: np.ndarray, a: float) -> np.ndarray:
    """The paper's linear correction: Pr(x) ≈ ((1 + a)·Pr_OUT(x) + (1 − a)) / 2."""
    return ((1.0 + a) * pr_out + (1.0 - a)) / 2.0


def rmia_scores(
    *,
    target_x: np.ndarray,
    target_z: np.ndarray,
    ref_x: np.ndarray,
    ref_z: np.ndarray,
    ref_x_in: np.ndarray | None = None,
    offline_a: float | None = None,
    gamma: float = DEFAULT_GAMMA,
) -> np.ndarray:
    """(n,) RMIA scores from likelihoods.

    Args:
        target_x, target_z: (n,) and (m,) Pr(· | θ) of the candidates and the population.
        ref_x, ref_z: (R, n) and (R, m) the same under the R reference models.
        ref_x_in: (R, n) bool, True where candidate j trained reference r (None: no IN references).
        offline_a: None for online (Pr(x) = mean over all references); else offline with this ``a``
            (Pr(x) from the OUT references, corrected linearly; the population, OUT for every
            reference, gets the same correction).
    """
    in_mask = np.zeros(ref_x.shape, dtype=bool) if ref_x_in is None else np.asarray(ref_x_in, dtype=bool)
    if offline_a is None:
        prior_x, prior_z = reference_mean(ref_x), reference_mean(ref_z)
    else:
        if not 0.0 <= offline_a <= 1.0:
            raise ConfigError(f"`offline_a` must be in [0, 1], got {offline_a}")
        prior_x = offline_prior(reference_mean(ref_x, ~in_mask), offline_a)
        prior_z = offline_prior(reference_mean(ref_z), offline_a)
    return pairwise_score(target_x / prior_x, target_z / prior_z, gamma=gamma)


def fit_offline_a(
    *, ref_x: np.ndarray, ref_z: np.ndarray, ref_x_in: np.ndarray, n_shadows: int, gamma: float = DEFAULT_GAMMA
) -> float:
    """The offline ``a`` that the simulated attacks on the shadows reward most (mean AUC over them).

    ``ref_x``/``ref_z``/``ref_x_in`` as in :func:`rmia_scores`, with the shadows in their last
    ``n_shadows`` rows. Shadow k plays the target and every other row is a reference; shadow k's
    own IN set gives the labels. With no shadows, 1 (no correction).
    """
    from sklearn.metrics import roc_auc_score

    if n_shadows == 0:
        return 1.0
    rows = ref_x.shape[0]
    best_a, best_auc = 1.0, -np.inf  # 1.0 also when no simulated attack has both classes
    for a in A_GRID:
        aucs = []
        for k in range(rows - n_shadows, rows):
            others = np.arange(rows) != k
            labels = ref_x_in[k]
            scores = rmia_scores(
                target_x=ref_x[k],
                target_z=ref_z[k],
                ref_x=ref_x[others],
                ref_z=ref_z[others],
                ref_x_in=ref_x_in[others],
                offline_a=float(a),
                gamma=gamma,
            )
            usable = np.isfinite(scores)
            if 0 < labels[usable].sum() < usable.sum():
                aucs.append(roc_auc_score(labels[usable], scores[usable]))
        if aucs and np.mean(aucs) > best_auc + 1e-12:  # a tie keeps the smaller a
            best_a, best_auc = float(a), float(np.mean(aucs))
    return best_a


def references(
    reference: Sequence[TokenScores], shadows: ShadowScores | None, population: PopulationScores
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ref_x (R, n), ref_z (R, m), ref_x_in (R, n)): the base first (OUT for all), then each shadow."""
    ref_x = [likelihood(reference)]
    ref_z = [likelihood(population.reference)]
    in_mask = [np.zeros(len(reference), dtype=bool)]
    if shadows is not None:
        if population.shadows is None or len(population.shadows) != shadows.k:
            raise InputError("the population was not scored under the run's shadows")
        ref_x += [likelihood(row) for row in shadows.scores]
        ref_z += [likelihood(row) for row in population.shadows]
        in_mask += list(shadows.in_mask)
    return np.stack(ref_x), np.stack(ref_z), np.stack(in_mask)


@ATTACKS.register("rmia")
class RmiaAttack:
    """Offline RMIA: the base (and any OUT shadows) as references, ``a`` fitted on the shadows."""

    requires = frozenset({"reference", "population"})
    accepts = frozenset({"shadows"})

    def __init__(self, gamma: float = DEFAULT_GAMMA) -> None:
        self.gamma = gamma

    def score(self, inputs: AttackInputs) -> np.ndarray:
        population = inputs.need("population", "rmia")
        ref_x, ref_z, ref_in = references(inputs.need("reference", "rmia"), inputs.shadows, population)
        n_shadows = inputs.shadows.k if inputs.shadows is not None else 0
        a = fit_offline_a(ref_x=ref_x, ref_z=ref_z, ref_x_in=ref_in, n_shadows=n_shadows, gamma=self.gamma)
        return rmia_scores(
            target_x=likelihood(inputs.target),
            target_z=likelihood(population.target),
            ref_x=ref_x,
            ref_z=ref_z,
            ref_x_in=ref_in,
            offline_a=a,
            gamma=self.gamma,
        )


@ATTACKS.register("rmia_online")
class RmiaOnlineAttack(RmiaAttack):
    """Online RMIA: Pr(x) averages every reference, IN and OUT shadows and the base."""

    requires = frozenset({"reference", "population", "shadows"})

    def score(self, inputs: AttackInputs) -> np.ndarray:
        population = inputs.need("population", "rmia_online")
        shadows = inputs.need("shadows", "rmia_online")
        ref_x, ref_z, _ = references(inputs.need("reference", "rmia_online"), shadows, population)
        return rmia_scores(
            target_x=likelihood(inputs.target),
            target_z=likelihood(population.target),
            ref_x=ref_x,
            ref_z=ref_z,
            gamma=self.gamma,
        )
