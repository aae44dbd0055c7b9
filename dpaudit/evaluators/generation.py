"""Batched decoding: the one way dpaudit asks a model to answer prompts (greedy) or to continue
token prompts (greedy, or n top-k samples each, for PII extraction).

Prompts are rendered exactly as in training (:func:`dpaudit.data.tokenize.encode_prompt`: every
turn before the last assistant turn plus the generation header), left-padded so that every row
of a batch ends at the same column, and decoded greedily until end-of-sequence or
``max_new_tokens``. Greedy decoding makes the output a deterministic function of the weights,
so that base and adapter are compared on equal terms and a batched run gives the same text as
one prompt at a time (tested).

Sampling (``samples=n`` in :func:`generate_continuations`) is top-k with k = :data:`SAMPLE_TOP_K`
at temperature 1 (Carlini et al. 2021 extract training data with top-40 sampling), seeded from
``seed`` in a forked torch RNG, so the same seed gives the same samples and the caller's RNG is
untouched.

>>> responses = generate_responses(model=model, tokenizer=tok, records=records, max_new_tokens=64)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dpaudit.data.records import Record
from dpaudit.data.tokenize import encode_prompt
from dpaudit.errors import ConfigError
from dpaudit.evaluators.defaults import GENERATION_BATCH_SIZE, MAX_NEW_TOKENS
from dpaudit.progress import progress_bar

SAMPLE_TOP_K = 40


def generate_responses(
    *,
    model,
    tokenizer,
    records: Sequence[Record],
    max_new_tokens: int = MAX_NEW_TOKENS,
    max_length: int = 512,
    batch_size: int = GENERATION_BATCH_SIZE,
    progress: bool = False,
) -> list[str]:
    """Greedy responses to ``records`` (their turns up to the last assistant turn), in order.

    ``max_length`` caps the prompt (its last tokens are kept). Special tokens are removed from
    the decoded text and surrounding whitespace is stripped (the chat template puts a newline
    before the end-of-turn token). Rows are batched by prompt length to limit padding.
    """
    prompts = [encode_prompt(record, tokenizer, max_length=max_length) for record in records]
    continuations = generate_continuations(
        model=model, tokenizer=tokenizer, prompts=prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
        progress=progress,
    )
    return [texts[0] for texts in continuations]


def generate_continuations(
    *,
    model,
    tokenizer,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int = MAX_NEW_TOKENS,
    batch_size: int = GENERATION_BATCH_SIZE,
    samples: int = 0,
    seed: int = 0,
    progress: bool = False,
) -> list[list[str]]:
    """Continuations of token ``prompts``: per prompt, ``[greedy]`` (``samples=0``) or ``samples``
    top-k samples. Decoded as :func:`decode_response` does; rows batched by prompt length.
    ``progress``: a bar, or plain lines without a terminal (generation is the slow part of an audit)."""
    if max_new_tokens <= 0:
        raise ConfigError(f"`max_new_tokens` must be > 0, got {max_new_tokens}")
    if batch_size <= 0:
        raise ConfigError(f"`batch_size` must be > 0, got {batch_size}")
    if samples < 0:
        raise ConfigError(f"`samples` must be >= 0, got {samples}")
    if not prompts:
        return []
    pad_id = _pad_id(tokenizer)
    eos_ids = _eos_ids(model, tokenizer)
    per_prompt = max(samples, 1)
    # Neutralise sampling knobs a base's generation_config may carry (SmolLM2 sets them) for greedy.
    decoding = (
        {"do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": SAMPLE_TOP_K, "num_return_sequences": samples}
        if samples
        else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    )
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
    out: list[list[str]] = [[] for _ in prompts]
    device = _device(model)
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
                progress_bar("generating", len(prompts), enabled=progress) as advance:
            torch.manual_seed(seed)
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                input_ids, attention_mask = left_pad([prompts[i] for i in rows], pad_id=pad_id)
                with torch.no_grad():
                    generated = model.generate(
                        input_ids=input_ids.to(device),
                        attention_mask=attention_mask.to(device),
                        num_beams=1,
                        max_new_tokens=max_new_tokens,
                        pad_token_id=pad_id,
                        eos_token_id=eos_ids,
                        **decoding,
                    )
                new_tokens = generated[:, input_ids.shape[1] :].tolist()
                for k, tokens in enumerate(new_tokens):  # num_return_sequences rows per prompt, in order
                    out[rows[k // per_prompt]].append(decode_response(tokens, tokenizer, eos_ids=eos_ids))
                advance(len(rows))
    finally:
        model.train(was_training)
    return out


def left_pad(sequences: Sequence[Sequence[int]], *, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)``, each (B, L): sequences right-aligned, padding on the left."""
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            input_ids[row, width - len(seq) :] = torch.tensor(list(seq), dtype=torch.long)
            attention_mask[row, width - len(seq) :] = 1
    return input_ids, attention_mask


def decode_response(tokens: Sequence[int], tokenizer, *, eos_ids: Sequence[int]) -> str:
    """Text of the tokens before the first end-of-sequence token, special tokens removed."""
    stop = set(eos_ids)
    kept = []
    for token in tokens:
        if token in stop:
            break
        kept.append(token)
    return tokenizer.decode(kept, skip_special_tokens=True).strip()


def _pad_id(tokenizer) -> int:
    """The tokenizer's pad token, else its eos token (the usual choice for decoder-only models)."""
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id)
    raise ConfigError("the tokenizer has neither a pad token nor an eos token; cannot batch prompts")


def _eos_ids(model, tokenizer) -> list[int]:
    """Every token that ends a turn: the tokenizer's eos plus any the model's generation config lists."""
    ids: list[int] = []
    candidates: list = [tokenizer.eos_token_id]
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None:
        configured = generation_config.eos_token_id
        candidates.extend(configured if isinstance(configured, (list, tuple)) else [configured])
    for value in candidates:
        if value is not None and int(value) not in ids:
            ids.append(int(value))
    if not ids:
        raise ConfigError("the tokenizer has no eos token; generation would never stop before max_new_tokens")
    return ids


def _device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover - a model without parameters
        return torch.device("cpu")
