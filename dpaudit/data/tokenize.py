"""Turn records into token ids whose labels cover assistant tokens only.

The same encoding serves training, scoring and perplexity, so that a model is
always judged on exactly the tokens it was trained to produce.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dpaudit.data.records import Record

IGNORE_INDEX = -100

# Used when a tokenizer ships no chat template of its own (our tiny base, plain GPT-2-style tokenizers).
BUILTIN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


@dataclass(frozen=True)
class EncodedExample:
    """``input_ids`` and ``labels`` have the same length; labels are IGNORE_INDEX outside assistant turns."""

    id: str
    input_ids: list[int]
    labels: list[int]

    @property
    def n_target_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def chat_template(tokenizer) -> str:
    return getattr(tokenizer, "chat_template", None) or BUILTIN_CHAT_TEMPLATE


def _render(tokenizer, messages: list[dict[str, str]], *, add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(
        messages,
        chat_template=chat_template(tokenizer),
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )


def _ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_record(record: Record, tokenizer, *, max_length: int) -> EncodedExample:
    """Render with the chat template and label the assistant turns.

    Each assistant turn contributes the tokens after its generation header up to and
    including its end-of-turn marker. Sequences longer than ``max_length`` are cut on
    the right, or on the left when a right cut would leave no target token.
    """
    messages = [{"role": m.role, "content": m.content} for m in record.messages]
    input_ids: list[int] = []
    labels: list[int] = []
    rendered = ""
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            header_end = _render(tokenizer, messages[:i], add_generation_prompt=True) if i else ""
            _extend(tokenizer, rendered, header_end, input_ids, labels, target=False)
            rendered = header_end
        full = _render(tokenizer, messages[: i + 1], add_generation_prompt=False)
        _extend(tokenizer, rendered, full, input_ids, labels, target=message["role"] == "assistant")
        rendered = full
    if len(input_ids) > max_length:
        right_cut = labels[:max_length]
        if any(label != IGNORE_INDEX for label in right_cut):
            input_ids, labels = input_ids[:max_length], right_cut
        else:
            input_ids, labels = input_ids[-max_length:], labels[-max_length:]
    return EncodedExample(id=record.id, input_ids=input_ids, labels=labels)


def _extend(tokenizer, before: str, after: str, input_ids: list[int], labels: list[int], *, target: bool) -> None:
    if not after.startswith(before):
        raise ValueError("chat template is not prefix-consistent; cannot isolate assistant tokens")
    ids = _ids(tokenizer, after[len(before) :])
    input_ids.extend(ids)
    labels.extend(ids if target else [IGNORE_INDEX] * len(ids))


def encode_prompt(record: Record, tokenizer, *, max_length: int) -> list[int]:
    """Ids of everything before the last assistant turn plus its generation header (for decoding)."""
    messages = [{"role": m.role, "content": m.content} for m in record.messages]
    last_assistant = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
    ids = _ids(tokenizer, _render(tokenizer, messages[:last_assistant], add_generation_prompt=True))
    return ids[-max_length:]


def encode_prefix(record: Record, tokenizer, *, message: int, upto: int, max_length: int) -> list[int]:
    """Ids of the turns before ``message``, its generation header and its first ``upto`` characters:
    the prompt that asks a model to continue an assistant turn from inside it (PII extraction)."""
    messages = [{"role": m.role, "content": m.content} for m in record.messages]
    header = _ids(tokenizer, _render(tokenizer, messages[:message], add_generation_prompt=True))
    return (header + _ids(tokenizer, messages[message]["content"][:upto]))[-max_length:]


def pad_batch(examples: Sequence[EncodedExample], *, pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example: ``input_ids``, ``attention_mask``, ``labels``, each (B, L)."""
    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids, dtype=torch.long)
        labels[row, :n] = torch.tensor(example.labels, dtype=torch.long)
        attention_mask[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
