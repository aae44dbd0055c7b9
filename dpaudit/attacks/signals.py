"""Per-record membership signals derived from :class:`~dpaudit.models.scoring.TokenScores`.

Each function maps n records to an array of shape (n,); a record with no target token gets NaN.
The attacks combine these; the shadow attack stacks them into feature vectors.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np

from dpaudit.data.records import Record
from dpaudit.errors import ConfigError
from dpaudit.models.scoring import TokenScores

DEFAULT_K = 0.2  # min-k% and min-k%++ average the lowest 20% of tokens (Shi et al.; Zhang et al.)
FEATURE_NAMES = ("loss", "ref", "zlib", "mink", "minkpp")
_TINY_SIGMA = 1e-12


def scored_text(record: Record) -> str:
    """The text whose tokens are scored: the assistant turns (what the adapter was trained to produce)."""
    return "\n".join(m.content for m in record.messages if m.role == "assistant")


def mean_logprob(scores: Sequence[TokenScores]) -> np.ndarray:
    """(n,) mean token log-prob = −mean NLL (Yeom's loss signal)."""
    return np.array([-s.mean_nll for s in scores], dtype=np.float64)


def zlib_length(texts: Sequence[str]) -> np.ndarray:
    """(n,) length in bytes of each UTF-8 text compressed by zlib: a model-free entropy estimate."""
    return np.array([len(zlib.compress(t.encode("utf-8"))) for t in texts], dtype=np.float64)


def check_k(k: float) -> float:
    """``k`` (a fraction of tokens) for min-k% and min-k%++, validated."""
    if not 0 < k <= 1:
        raise ConfigError(f"`k` must be in (0, 1], got {k}")
    return k


def lowest_k_mean(values: np.ndarray, k: float) -> float:
    """Mean of the lowest ⌊k·T⌋ values (at least one); NaN for an empty array."""
    if values.size == 0:
        return math.nan
    count = max(1, int(k * values.size))
    return float(np.partition(values, count - 1)[:count].mean())


def min_k(scores: Sequence[TokenScores], k: float = DEFAULT_K) -> np.ndarray:
    """(n,) mean of the lowest k% token log-probs (Min-K% Prob)."""
    return np.array([lowest_k_mean(s.logprobs, k) for s in scores], dtype=np.float64)


def token_z(score: TokenScores) -> np.ndarray:
    """(T,) z_t = (log p(x_t) − μ_t) / σ_t. A point-mass position (σ_t = 0) divides by a tiny σ
    instead: z = 0 for the certain token, a huge negative z for any other."""
    if score.mu is None or score.sigma is None:
        raise ValueError(f"record {score.id!r} was scored without entropy (score_tokens(with_entropy=True))")
    return (score.logprobs - score.mu) / np.maximum(score.sigma, _TINY_SIGMA)


def min_k_plus_plus(scores: Sequence[TokenScores], k: float = DEFAULT_K) -> np.ndarray:
    """(n,) mean of the lowest k% of z_t (Min-K%++)."""
    return np.array([lowest_k_mean(token_z(s), k) for s in scores], dtype=np.float64)


def features(
    scores: Sequence[TokenScores], reference: Sequence[TokenScores], texts: Sequence[str], *, k: float = DEFAULT_K
) -> np.ndarray:
    """(n, 5) feature vectors, columns :data:`FEATURE_NAMES`: every cheap attack's score for a record."""
    loss = mean_logprob(scores)
    return np.column_stack(
        [
            loss,
            loss - mean_logprob(reference),
            loss / zlib_length(texts),
            min_k(scores, k),
            min_k_plus_plus(scores, k),
        ]
    )
