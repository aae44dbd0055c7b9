"""Perplexity over response tokens, token-weighted, from the shared scoring pass.

    ppl = exp( Σ_records Σ_t −log p(x_t | x_<t) / Σ_records T_r )

where t runs over the target (assistant) tokens of each record, the same tokens training
minimises the loss on (:func:`dpaudit.data.tokenize.encode_record`). Token weighting means a long
response counts in proportion to its length, as in a language-model loss; the mean of
per-record perplexities would overweight short answers.

:func:`evaluate_perplexity` reports an adapter on held-out records and on its members, the bare
base on the same held-out records (the adapter switched off with ``PeftModel.disable_adapter()``,
so no second copy of the base is loaded), and the generalisation gap = held-out ppl ÷ member ppl
(1 = no gap; memorisation pushes it up).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from dpaudit.data.records import Record
from dpaudit.models.scoring import DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH, score_tokens


@dataclass(frozen=True)
class PerplexityResult:
    """``perplexity = exp(mean_nll)``; ``mean_nll`` is nats per target token over ``n_tokens`` tokens."""

    perplexity: float
    mean_nll: float
    n_tokens: int
    n_records: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def perplexity(
    *,
    model,
    tokenizer,
    records: Sequence[Record],
    max_length: int = DEFAULT_MAX_LENGTH,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
) -> PerplexityResult:
    """Token-weighted perplexity of ``model`` on the response tokens of ``records``.

    With no target token at all (no records, or every response truncated away) the perplexity is
    undefined: a warning is issued and NaN returned.
    """
    scores = score_tokens(model, tokenizer, list(records), max_length=max_length, batch_size=batch_size,
                          progress=progress)
    n_tokens = sum(s.n_tokens for s in scores)
    if n_tokens == 0:
        warnings.warn("perplexity: no target tokens to score; returning NaN", RuntimeWarning, stacklevel=2)
        return PerplexityResult(float("nan"), float("nan"), 0, len(scores))
    total_nll = sum(s.sum_nll for s in scores)
    mean_nll = total_nll / n_tokens
    return PerplexityResult(math.exp(mean_nll), mean_nll, n_tokens, len(scores))


@dataclass(frozen=True)
class PerplexityReport:
    """The perplexity section of ``dpaudit eval``. ``member``/``base_heldout`` are None when not measured."""

    heldout: PerplexityResult
    member: PerplexityResult | None
    base_heldout: PerplexityResult | None

    @property
    def gap(self) -> float | None:
        """Held-out ppl ÷ member ppl (None without members)."""
        if self.member is None:
            return None
        if not self.member.perplexity > 0:  # NaN or 0: undefined
            return float("nan")
        return self.heldout.perplexity / self.member.perplexity

    def to_json(self) -> dict[str, Any]:
        """Headline numbers in the report schema's shape (``member``, ``heldout``, ``base_heldout``,
        ``gap``) plus the details (token counts, mean NLL) under ``details``."""
        return {
            "heldout": self.heldout.perplexity,
            "member": self.member.perplexity if self.member else None,
            "base_heldout": self.base_heldout.perplexity if self.base_heldout else None,
            "gap": self.gap,
            "details": {
                "heldout": self.heldout.to_json(),
                "member": self.member.to_json() if self.member else None,
                "base_heldout": self.base_heldout.to_json() if self.base_heldout else None,
            },
        }


def evaluate_perplexity(
    *,
    model,
    tokenizer,
    heldout: Sequence[Record],
    members: Sequence[Record] | None = None,
    with_base: bool = True,
    max_length: int = DEFAULT_MAX_LENGTH,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
) -> PerplexityReport:
    """Adapter perplexity on ``heldout`` and ``members``, and the bare base's on ``heldout``.

    ``model`` is the adapter's ``PeftModel``; the base is measured inside ``disable_adapter()``.
    A model without adapters to switch off (a fully fine-tuned model) gets no base number.
    """
    kwargs = {"tokenizer": tokenizer, "max_length": max_length, "batch_size": batch_size, "progress": progress}
    heldout_result = perplexity(model=model, records=heldout, **kwargs)
    member_result = perplexity(model=model, records=members, **kwargs) if members else None
    base_result = None
    if with_base and hasattr(model, "disable_adapter"):
        with adapter_disabled(model):
            base_result = perplexity(model=model, records=heldout, **kwargs)
    return PerplexityReport(heldout=heldout_result, member=member_result, base_heldout=base_result)


@contextlib.contextmanager
def adapter_disabled(model) -> Iterator[Any]:
    """``model`` with its adapter switched off (the bare base), restored on exit."""
    if not hasattr(model, "disable_adapter"):
        raise TypeError(f"{type(model).__name__} has no adapter to disable")
    with model.disable_adapter():
        yield model
