"""Canary exposure (the Secret Sharer, Carlini et al., USENIX Security 2019).

A canary is ``prefix + secret`` with the secret drawn uniformly from the candidate space R of
its format (``"dddd-dddd"``: |R| = 10^8). The model's log-perplexity of a candidate r is

    L(r) = −Σ_t log p(x_t | x_<t)   over the tokens of r only (the prefix is the same for all),

and the exposure of the true secret s is

    exposure(s) = log2 |R| − log2 rank(s),    rank(s) = 1 + #{r ∈ R, r ≠ s : L(r) < L(s)}.

It ranges from 0 (the secret is the least likely candidate) to log2 |R| (the most likely one):
a model that memorised the secret scores it above every random alternative.

How the rank is obtained:

- **Enumeration** when |R| ≤ ``enumerate_limit`` (default 10^4): every candidate is scored and
  the rank is exact.
- **Estimation** otherwise (the paper's §4.3 method): ``n_samples`` candidates are drawn
  uniformly without replacement (the true secret excluded), their log-perplexities are fitted
  with a skew-normal distribution F (a normal if the skew-normal fit fails), and
  rank(s) ≈ |R| · F(L(s)), so exposure ≈ −log2 F(L(s)), computed with ``logcdf`` so that far
  tails do not underflow. The estimate is clipped to [0, log2 |R|], the same range as the exact
  value. ``sample_rank`` (the secret's rank among the sample only) is reported beside it as a
  model-free check; it cannot resolve exposures above log2(n_samples + 1).

Scores come from the shared scoring pass (:func:`dpaudit.models.scoring.score_tokens`): the
secret's tokens are those of the candidate's encoding that are not in the common prefix or the
common suffix with the encoding of the same record without its secret, so a token that merges
the prefix's trailing space into the secret's first character counts as a secret token.

>>> result = canary_exposure(model=m, tokenizer=tok, canaries=canaries, repeats={"c0": 16}, seed=0)  # doctest: +SKIP
>>> result.by_repeats[0]["mean_exposure"]                                                         # doctest: +SKIP
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dpaudit.data.canaries import Canary, secret_from_index, secret_space_size
from dpaudit.data.records import Message, Record
from dpaudit.data.tokenize import IGNORE_INDEX, EncodedExample, encode_record
from dpaudit.errors import ConfigError
from dpaudit.evaluators.defaults import EXPOSURE_BATCH_SIZE, EXPOSURE_ENUMERATE_LIMIT, EXPOSURE_SAMPLES

Scorer = Callable[[Sequence[str]], np.ndarray]
"""Log-perplexities (n,) of candidate secrets: lower means the model finds the candidate more likely."""


@dataclass(frozen=True)
class SecretExposure:
    """Exposure of one secret among the candidates of its format.

    ``rank`` is exact when ``method == "enumerated"`` and |R|·F(L(s)) (≥ 1) when ``"estimated"``.
    """

    exposure: float
    max_exposure: float
    rank: float
    method: str
    space_size: int
    n_candidates: int
    log_perplexity: float
    candidate_mean: float
    candidate_std: float
    sample_rank: int
    distribution: str | None = None


def secret_exposure(
    *,
    secret: str,
    secret_format: str,
    scorer: Scorer,
    rng: random.Random,
    enumerate_limit: int = EXPOSURE_ENUMERATE_LIMIT,
    n_samples: int = EXPOSURE_SAMPLES,
) -> SecretExposure:
    """Exposure of ``secret`` given a ``scorer`` of candidate log-perplexities (see the module doc).

    The scorer is called once with the true secret first and the candidates after it.
    """
    if enumerate_limit < 1:
        raise ConfigError(f"`enumerate_limit` must be >= 1, got {enumerate_limit}")
    if n_samples < 2:
        raise ConfigError(f"`n_samples` must be >= 2, got {n_samples}")
    size = secret_space_size(secret_format)
    max_exposure = math.log2(size)
    if size <= enumerate_limit:
        candidates = [c for c in (secret_from_index(i, secret_format) for i in range(size)) if c != secret]
        method = "enumerated"
    else:
        candidates = _sample_candidates(secret, secret_format, size=size, n=min(n_samples, size - 1), rng=rng)
        method = "estimated"
    scores = np.asarray(scorer([secret, *candidates]), dtype=np.float64)
    if scores.shape != (len(candidates) + 1,):
        raise ValueError(f"scorer returned shape {scores.shape}, expected ({len(candidates) + 1},)")
    true, others = float(scores[0]), scores[1:]
    sample_rank = 1 + int(np.sum(others < true))
    distribution = None
    if method == "enumerated":
        rank = float(sample_rank)
        exposure = max_exposure - math.log2(rank)
    else:
        distribution, log_cdf = _fitted_log_cdf(others, true)
        # rank ≈ |R|·F(L(s)); exposure = log2|R| − log2 rank = −log2 F(L(s)), kept within [0, log2|R|].
        exposure = min(max(-log_cdf / math.log(2), 0.0), max_exposure)
        rank = 2.0 ** (max_exposure - exposure)
    return SecretExposure(
        exposure=float(exposure),
        max_exposure=max_exposure,
        rank=float(rank),
        method=method,
        space_size=size,
        n_candidates=len(candidates),
        log_perplexity=true,
        candidate_mean=float(others.mean()) if others.size else float("nan"),
        candidate_std=float(others.std()) if others.size else float("nan"),
        sample_rank=sample_rank,
        distribution=distribution,
    )


def _sample_candidates(secret: str, fmt: str, *, size: int, n: int, rng: random.Random) -> list[str]:
    """``n`` distinct candidates other than ``secret``, uniform over R (indices without replacement)."""
    picked = rng.sample(range(size), min(n + 1, size))
    candidates = [secret_from_index(i, fmt) for i in picked]
    candidates = [c for c in candidates if c != secret]
    return candidates[:n]


def _fitted_log_cdf(sample: np.ndarray, value: float) -> tuple[str, float]:
    """ln F(value) under a skew-normal fitted to ``sample`` (normal if that fit is unusable)."""
    from scipy import stats

    std = float(sample.std())
    if std == 0.0 or not np.isfinite(std):
        # Every candidate scores the same: the secret is ahead of all of them, level, or behind.
        level = float(sample[0])
        below = 0.0 if value < level else 1.0 if value > level else 0.5
        return "degenerate", math.log(below) if below > 0 else -math.inf
    try:
        with np.errstate(all="ignore"):
            params = stats.skewnorm.fit(sample)
            log_cdf = float(stats.skewnorm.logcdf(value, *params))
        if not math.isnan(log_cdf):  # -inf: beyond float range in the far tail, i.e. maximal exposure
            return "skewnorm", log_cdf
    except (ValueError, RuntimeError, FloatingPointError):
        pass
    return "normal", float(stats.norm.logcdf(value, loc=float(sample.mean()), scale=std))


# --------------------------------------------------------------------------- model scoring


def secret_log_perplexities(
    *,
    model,
    tokenizer,
    canary: Canary,
    candidates: Sequence[str],
    max_length: int,
    batch_size: int,
) -> np.ndarray:
    """(n,) log-perplexity of each candidate secret after the canary's prefix (secret tokens only)."""
    from dpaudit.models.scoring import score_tokens

    reference = encode_record(_without_secret(canary), tokenizer, max_length=max_length).input_ids
    examples: list[EncodedExample] = []
    spans: list[tuple[int, int]] = []
    for candidate in candidates:
        record = canary.with_secret(candidate).to_record()
        example = encode_record(record, tokenizer, max_length=max_length)
        examples.append(example)
        spans.append(_secret_span(example, reference, candidate=candidate))
    scores = score_tokens(model, tokenizer, examples, max_length=max_length, batch_size=batch_size)
    out = np.empty(len(candidates), dtype=np.float64)
    for i, (score, (lo, hi)) in enumerate(zip(scores, spans)):
        out[i] = -float(score.logprobs[lo:hi].sum())
    return out


def _without_secret(canary: Canary) -> Record:
    """The canary's record with the secret cut out of its text (same id, same turns)."""
    record = canary.to_record()
    messages = tuple(Message(m.role, m.content.replace(canary.text, canary.prefix)) for m in record.messages)
    return Record(id=record.id, messages=messages, category=record.category)


def _secret_span(example: EncodedExample, reference: Sequence[int], *, candidate: str) -> tuple[int, int]:
    """[lo, hi) over the example's target tokens that belong to the secret.

    Those are the tokens outside the longest common prefix and suffix of the example's ids and
    the ids of the same record without its secret.
    """
    ids = example.input_ids
    prefix = 0
    while prefix < min(len(ids), len(reference)) and ids[prefix] == reference[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(len(ids), len(reference)) - prefix and ids[-1 - suffix] == reference[-1 - suffix]:
        suffix += 1
    start, stop = prefix, len(ids) - suffix
    # score_tokens returns the log-probs of the target tokens in order, from position 1 on (the
    # first token of a sequence has no context to be predicted from); map the id span onto that order.
    target_positions = [t for t, label in enumerate(example.labels) if t >= 1 and label != IGNORE_INDEX]
    lo = sum(1 for t in target_positions if t < start)
    hi = sum(1 for t in target_positions if t < stop)
    if hi <= lo or start < 1 or any(example.labels[t] == IGNORE_INDEX for t in range(start, stop)):
        raise ConfigError(
            f"canary {example.id!r}: the tokens of secret {candidate!r} are not all training targets "
            f"(truncated by max_length, or the secret sits outside an assistant turn)"
        )
    return lo, hi


# --------------------------------------------------------------------------- many canaries


@dataclass(frozen=True)
class CanaryExposure:
    id: str
    repeats: int | None
    secret_format: str
    result: SecretExposure

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "repeats": self.repeats, "secret_format": self.secret_format, **asdict(self.result)}


@dataclass(frozen=True)
class ExposureResult:
    """Exposure of every canary and its summary per repeat count (0 = never in training)."""

    canaries: list[CanaryExposure]
    by_repeats: list[dict[str, Any]]
    max_exposure: float
    enumerate_limit: int
    n_samples: int

    def to_json(self) -> dict[str, Any]:
        """The report schema's ``exposure`` section: ``per_repeat`` maps the repeat count (a string,
        ``"unknown"`` when the card does not say) to the mean exposure in bits."""
        return {
            "per_repeat": {
                ("unknown" if row["repeats"] is None else str(row["repeats"])): row["mean_exposure"]
                for row in self.by_repeats
            },
            "canaries": [c.to_json() for c in self.canaries],
            "by_repeats": self.by_repeats,
            "max_exposure": self.max_exposure,
            "enumerate_limit": self.enumerate_limit,
            "n_samples": self.n_samples,
        }


def canary_exposure(
    *,
    model,
    tokenizer,
    canaries: Sequence[Canary],
    repeats: Mapping[str, int] | None = None,
    max_length: int = 512,
    batch_size: int = EXPOSURE_BATCH_SIZE,
    seed: int = 0,
    enumerate_limit: int = EXPOSURE_ENUMERATE_LIMIT,
    n_samples: int = EXPOSURE_SAMPLES,
) -> ExposureResult:
    """Exposure of each canary under ``model``, grouped by how often it was in training.

    ``repeats`` maps canary id → times inserted (0 = never); canaries it does not name are grouped
    under ``None`` (unknown). Each canary draws its candidates from its own seeded generator, so
    the result does not depend on the order of ``canaries``.
    """
    if not canaries:
        raise ConfigError("no canaries to evaluate")
    repeats = dict(repeats or {})
    rows: list[CanaryExposure] = []
    for canary in canaries:
        rng = random.Random(f"{seed}:{canary.id}")

        def scorer(candidates: Sequence[str], canary: Canary = canary) -> np.ndarray:
            return secret_log_perplexities(
                model=model,
                tokenizer=tokenizer,
                canary=canary,
                candidates=candidates,
                max_length=max_length,
                batch_size=batch_size,
            )

        result = secret_exposure(
            secret=canary.secret,
            secret_format=canary.secret_format,
            scorer=scorer,
            rng=rng,
            enumerate_limit=enumerate_limit,
            n_samples=n_samples,
        )
        count = repeats.get(canary.id)
        rows.append(CanaryExposure(canary.id, None if count is None else int(count), canary.secret_format, result))
    return ExposureResult(
        canaries=rows,
        by_repeats=summarise_by_repeats(rows),
        max_exposure=max(r.result.max_exposure for r in rows),
        enumerate_limit=enumerate_limit,
        n_samples=n_samples,
    )


def summarise_by_repeats(rows: Sequence[CanaryExposure]) -> list[dict[str, Any]]:
    """One row per repeat count (ascending, unknown last): n, mean/min/max exposure, max possible."""
    groups: dict[int | None, list[CanaryExposure]] = {}
    for row in rows:
        groups.setdefault(row.repeats, []).append(row)
    keys = sorted((k for k in groups if k is not None)) + ([None] if None in groups else [])
    out = []
    for key in keys:
        values = np.array([r.result.exposure for r in groups[key]])
        out.append(
            {
                "repeats": key,
                "n_canaries": len(values),
                "mean_exposure": float(values.mean()),
                "min_exposure": float(values.min()),
                "max_exposure": float(values.max()),
                "max_possible": max(r.result.max_exposure for r in groups[key]),
            }
        )
    return out


def repeats_from_card(card: Mapping[str, Any] | None) -> dict[str, int]:
    """``{canary id: times inserted}`` from a training card's ``canaries`` section.

    The card stores either ``repeats: {id: int}`` or ``inclusion: {id: bool}`` (included = 1).
    """
    section = (card or {}).get("canaries") or {}
    if isinstance(section.get("repeats"), Mapping):
        return {str(k): int(v) for k, v in section["repeats"].items()}
    if isinstance(section.get("inclusion"), Mapping):
        return {str(k): int(bool(v)) for k, v in section["inclusion"].items()}
    return {}
