"""The one batched scoring pass: per-token log-probs (and vocabulary moments) of the target tokens.

Every membership signal (loss, reference, zlib, min-k%, min-k%++, LiRA's φ) and perplexity is a
function of what this pass returns, so a model is run over a record set exactly once per question.

Why it is fast:
- records are sorted by length and batched with their neighbours (length bucketing), so a batch
  is padded only to its own longest record;
- the language-model head runs only at the positions that carry a target token
  (:func:`target_logits`: transformers' boolean ``logits_to_keep``), never on the prompt or padding;
- ``log_softmax`` runs once, on the target positions only, in float32, whatever the model's dtype;
- inputs go to the model's device (CPU or GPU), results come back as float64 numpy arrays.

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
from dpaudit.data.tokenize import IGNORE_INDEX, EncodedExample, encode_record, pad_batch
from dpaudit.progress import progress_bar

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
    # Longest first: the biggest batch runs first, so an out-of-memory error shows up at once.
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids), reverse=True)
    results: list[TokenScores | None] = [None] * len(examples)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), progress_bar("scoring", len(examples), enabled=progress) as advance:
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                batch = [examples[i] for i in chunk]
                for i, scores in zip(chunk, _score_batch(model, batch, pad_id, device, with_entropy)):
                    results[i] = scores
                advance(len(chunk))
    finally:
        model.train(was_training)
    return results  # type: ignore[return-value]


def next_token_targets(labels: torch.Tensor) -> torch.Tensor:
    """(B, T) labels → (B, T) targets, where ``targets[b, t]`` is the token predicted at position t:
    the labels shifted left by one (the last position predicts nothing: ``IGNORE_INDEX``)."""
    targets = torch.full_like(labels, IGNORE_INDEX)
    targets[:, :-1] = labels[:, 1:]
    return targets


def target_logits(model, *, input_ids: torch.Tensor, attention_mask: torch.Tensor, is_target: torch.Tensor) -> torch.Tensor:
    """(N, V) logits at the N positions where ``is_target`` (B, T) is True, in row-major order.

    The language-model head (a V × H matrix, V up to 256k) is applied only at those positions:
    on chat data most positions are prompt or padding, and the head is a large share of the
    forward and backward cost. transformers ≥ 5 takes a (B, K) tensor of positions as
    ``logits_to_keep`` and runs its own head code (logit scaling, soft-capping) on them; row b
    lists its n_b target positions, padded to K = max n_b with repeats that are dropped after the
    head. The batch dimension stays, so opacus still sees one row per example at the head (full
    fine-tuning trains it). Older transformers skip the head up to the batch's first target
    position instead. Works through peft and opacus wrappers as well as on a bare causal LM.
    The logits are in the model's dtype; callers take log-softmax in float32.
    """
    if _head_takes_positions(model):
        counts = is_target.sum(dim=1)
        width = int(counts.max()) if counts.numel() else 0
        # Stable sort puts each row's target positions first, in order; the tail repeats are masked out.
        positions = torch.sort((~is_target).to(torch.int8), dim=1, stable=True).indices[:, :width]
        kept = torch.arange(width, device=is_target.device)[None, :] < counts[:, None]
        positions = torch.where(kept, positions, positions[:, :1])
        logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, logits_to_keep=positions).logits
        return logits[kept]
    width = is_target.shape[1]
    first = int(is_target.any(dim=0).nonzero()[0]) if bool(is_target.any()) else width - 1
    kwargs = {"logits_to_keep": width - first} if _accepts_logits_to_keep(model) else {}
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **kwargs).logits
    return logits[:, -(width - first) :][is_target[:, first:]]


def _score_batch(model, batch, pad_id, device, with_entropy) -> list[TokenScores]:
    padded = pad_batch(batch, pad_id=pad_id)
    targets = next_token_targets(padded["labels"])
    is_target = targets != IGNORE_INDEX
    logits = target_logits(
        model,
        input_ids=padded["input_ids"].to(device),
        attention_mask=padded["attention_mask"].to(device),
        is_target=is_target.to(device),
    )
    logp = torch.log_softmax(logits.float(), dim=-1)  # (N, V), N = target tokens
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


def causal_lm(model):
    """The transformers causal LM inside opacus (``_module``), DDP (``module``) and peft wrappers."""
    while True:
        if hasattr(model, "get_base_model"):
            model = model.get_base_model()
        elif isinstance(getattr(model, "_module", None), torch.nn.Module):
            model = model._module
        elif isinstance(getattr(model, "module", None), torch.nn.Module):
            model = model.module
        else:
            return model


def _accepts_logits_to_keep(model) -> bool:
    """Whether the underlying causal LM can skip the head on leading positions (transformers ≥ 4.50)."""
    try:
        return "logits_to_keep" in inspect.signature(causal_lm(model).forward).parameters
    except (TypeError, ValueError):
        return False


def _head_takes_positions(model) -> bool:
    """transformers ≥ 5 slices hidden states with ``slice_logits_to_keep``, which takes (B, K) positions."""
    from transformers import modeling_utils

    return hasattr(modeling_utils, "slice_logits_to_keep") and _accepts_logits_to_keep(model)
