"""Does the tokenizer belong to the model? Checked once, when a base is loaded.

A tokenizer that emits ids beyond the embedding matrix crashes deep inside the forward pass (an
``IndexError`` traceback); one with a much smaller vocabulary than the model's (a tokenizer of
another model) silently maps its ids onto unrelated embeddings, and training learns nothing
(the loss stays near ln V). Both are caught here with one line naming the two sizes.

Models often pad their embedding matrix beyond the tokenizer (to a multiple of 64 or 128 rows, or
for reserved tokens: Qwen2.5 has 151 665 tokens and 152 064 rows, Phi-2 50 295 and 51 200), so a
smaller tokenizer is accepted within :data:`VOCAB_SLACK_ROWS` rows or :data:`VOCAB_SLACK_FRACTION`
of the matrix.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from dpaudit.errors import InputError

#: Unused embedding rows tolerated beyond the tokenizer's vocabulary (absolute, and as a fraction).
VOCAB_SLACK_ROWS = 1024
VOCAB_SLACK_FRACTION = 0.05


def check_vocab(model: nn.Module, tokenizer, *, path: str | Path | None = None) -> None:
    """Raise :class:`InputError` unless ``tokenizer``'s vocabulary fits ``model``'s embedding matrix."""
    embeddings = model.get_input_embeddings()
    rows = int(embeddings.num_embeddings if hasattr(embeddings, "num_embeddings") else embeddings.weight.shape[0])
    tokens = len(tokenizer)
    if tokens > rows:
        raise InputError(
            f"the tokenizer has {tokens} tokens but the model's embedding matrix has {rows} rows: they do not belong "
            "together (ids beyond the matrix would crash the forward pass)",
            path=path,
        )
    if rows - tokens > max(VOCAB_SLACK_ROWS, VOCAB_SLACK_FRACTION * rows):
        raise InputError(
            f"the tokenizer has {tokens} tokens but the model's embedding matrix has {rows} rows: it is another "
            "model's tokenizer (its ids would map onto unrelated embeddings and training would learn nothing)",
            path=path,
        )
