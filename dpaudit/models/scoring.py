"""The one batched scoring pass: per-token log-probs (and vocabulary moments) of the target tokens.

Every membership signal (loss, reference, zlib, min-k%, min-k%++, LiRA's φ) and perplexity is a
function of what this pass returns, so a model is run over a record set exactly once per question.

Why it is fast:
- records are sorted by length and batched with their neighbours (length bucketing), so a batch
  is padded only to its own longest record;
- the language-model head runs only on the positions from the batch's first target token on
  (``logits_to_keep``), not on the prompt;
- ``log_softmax`` runs once, on the target positions only, in float32.

Right padding keeps a record's positions identical to scoring it alone: with causal attention no
real token attends to a pad, so the batched result equals a per-record loop (tested to 1e-5).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from dpaudit.data.records import Record
from dpaudit.data.tokenize import IGNORE_INDEX, EncodedExample, encode_record

DEFAULT_MAX_LENGTH = 512
DEFAULT_BATCH_SIZE = 16


@dataclass(frozen=True, eq=False)
class TokenScores:
    """What one model says about one record's target tokens.

    ``logprobs``: (T,) log p(x_t | x_<t) of each target (assistant) token, in order.
    ``mu``, ``sigma``: (T,) or None; at each target position, the mean and standard deviation of
    log p over the vocabulary under the model's own distribution:
    mu_t = Σ_v p_v log p_v and sigma_t² = Σ_v p_v (log p_v)² − mu_t² (min-k%++ normalises with them).
    """

    id: str
    logprobs: np.ndarray
    mu: np.ndarray | None = None
    sigma: np.ndarray | None = None

    @property
    def n_tokens(self) -> int:
        return int(self.logprobs.shape[0])

    @property
    def mean_nll(self) -> float:
        """Mean negative log-likelihood per target token (NaN when there is no target token)."""
        return float(-self.logprobs.mean()) if self.n_tokens else float("nan")

    @property
    def sum_nll(self) -> float:
        return float(-self.logprobs.sum())


def score_tokens(
    model,
    tokenizer,
    records: Sequence[Record | EncodedExample],
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    batch_size: int = DEFAULT_BATCH_SIZE,
    with_entropy: bool = False,
    progress: bool = False,
) -> list[TokenScores]:
    """Score the target tokens of every record with one forward pass per batch.

    ``records`` may be :class:`Record` (encoded here with :func:`encode_record`) or already encoded
    :class:`EncodedExample` (encode once, score under many models). Results come back in the input
    order. The model is put in eval mode for the pass and its training flag restored afterwards.

    >>> scores = score_tokens(model, tokenizer, records, with_entropy=True)  # doctest: +SKIP
    >>> scores[0].logprobs.shape == scores[0].mu.shape                       # doctest: +SKIP
    True
    """
    if batch_size <= 0:
        raise ValueError(f"`batch_size` must be > 0, got {batch_size}")
    examples = [
        r if isinstance(r, EncodedExample) else encode_record(r, tokenizer, max_length=max_length) for r in records
    ]
    pad_id = _pad_id(tokenizer)
    device = _device(model)
    keep_logits = _accepts_logits_to_keep(model)
    # Longest first: the biggest batch runs first, so an out-of-memory error shows up at once.
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids), reverse=True)
    results: list[TokenScores | None] = [None] * len(examples)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), _progress_bar(progress, len(examples)) as advance:
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                batch = [examples[i] for i in chunk]
                for i, scores in zip(chunk, _score_batch(model, batch, pad_id, device, keep_logits, with_entropy)):
                    results[i] = scores
                advance(len(chunk))
    finally:
        model.train(was_training)
    return results  # type: ignore[return-value]


def _score_batch(model, batch, pad_id, device, keep_logits, with_entropy) -> list[TokenScores]:
    width = max(len(e.input_ids) for e in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    # targets[b, t] is the token predicted at position t, i.e. labels shifted left by one.
    targets = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids)
        attention_mask[row, :n] = 1
        targets[row, : n - 1] = torch.tensor(example.labels[1:])
    is_target = targets != IGNORE_INDEX
    # Positions before the batch's first target position never need logits.
    first = int(is_target.any(dim=0).nonzero()[0]) if bool(is_target.any()) else width - 1
    kwargs = {"logits_to_keep": width - first} if keep_logits else {}
    logits = model(
        input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), use_cache=False, **kwargs
    ).logits
    if not keep_logits:
        logits = logits[:, first:]
    is_target, targets = is_target[:, first:], targets[:, first:]

    logp = torch.log_softmax(logits[is_target.to(logits.device)].float(), dim=-1)  # (N, V), N = target tokens
    flat_targets = targets[is_target].to(logp.device)
    token_logp = logp.gather(1, flat_targets[:, None]).squeeze(1)
    mu = sigma = None
    if with_entropy:
        p = logp.exp()
        mu = torch.where(p > 0, p * logp, 0.0).sum(-1)  # 0·log 0 = 0
        # Σ p (log p − mu)² equals Σ p (log p)² − mu², without the float32 cancellation.
        centred = logp - mu[:, None]
        sigma = torch.where(p > 0, p * centred * centred, 0.0).sum(-1).sqrt()

    counts = is_target.sum(dim=1).tolist()
    token_logp = token_logp.double().cpu().numpy()
    mu_np = mu.double().cpu().numpy() if mu is not None else None
    sigma_np = sigma.double().cpu().numpy() if sigma is not None else None
    out, offset = [], 0
    for example, count in zip(batch, counts):
        part = slice(offset, offset + count)
        out.append(
            TokenScores(
                id=example.id,
                logprobs=token_logp[part].copy(),
                mu=mu_np[part].copy() if mu_np is not None else None,
                sigma=sigma_np[part].copy() if sigma_np is not None else None,
            )
        )
        offset += count
    return out


def _pad_id(tokenizer) -> int:
    for name in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return 0


def _device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _accepts_logits_to_keep(model) -> bool:
    """Whether the underlying causal LM can skip the head on leading positions (transformers ≥ 4.50)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return "logits_to_keep" in inspect.signature(inner.forward).parameters
    except (TypeError, ValueError):
        return False


class _progress_bar:
    """A transient rich bar (or nothing); ``advance(n)`` moves it."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total, self._bar = enabled, total, None

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import Progress

        self._bar = Progress(transient=True, console=Console(stderr=True))  # stdout stays clean for --json
        self._bar.start()
        task = self._bar.add_task("scoring", total=self.total)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
