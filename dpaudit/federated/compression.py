"""Fit a client's upload into ``--bandwidth`` bytes: quantize, then sparsify (post-processing only).

The update (a flat float32 vector of all LoRA tensors, already clipped and noised) is sent in
the first form that fits the budget, tried in this order:

1. ``float32``: 4 bytes per value (always, without a budget);
2. ``int8``: symmetric per-tensor quantization, q = round(x/s) with s = max|x|/127: 1 byte per
   value plus a float32 scale per tensor;
3. ``int4``: the same with s = max|x|/7, two values per byte;
4. ``top-k``: the 4-bit quantized vector keeps its k entries of largest |q| (int32 index + 4 bits
   each), with the largest k that fits.

Because it runs *after* clipping and noise, compression is post-processing: it costs no privacy,
and the accountant's ε is unchanged. Bytes are counted as the payload arrays' ``nbytes`` (what
Flower puts on the wire, less its framing).

>>> import numpy as np
>>> payload = compress(np.linspace(-1, 1, 1000, dtype=np.float32), sizes=[1000], budget=700)
>>> decode_mode(payload), payload_bytes(payload) <= 700
('int4', True)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dpaudit.errors import ConfigError

MODES = ("float32", "int8", "int4", "topk4")
INDEX_BYTES = 4


def payload_bytes(payload: dict[str, np.ndarray]) -> int:
    return int(sum(a.nbytes for a in payload.values()))


def decode_mode(payload: dict[str, np.ndarray]) -> str:
    return MODES[int(payload["mode"][0])]


def _scales(flat: np.ndarray, sizes: Sequence[int], levels: int) -> np.ndarray:
    bounds = np.cumsum([0, *sizes])
    peaks = np.array([np.abs(flat[a:b]).max(initial=0.0) for a, b in zip(bounds[:-1], bounds[1:])], dtype=np.float32)
    return np.where(peaks > 0, peaks / levels, 1.0).astype(np.float32)


def _per_value(scales: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    return np.repeat(scales, sizes)


def _pack4(q: np.ndarray) -> np.ndarray:
    nibbles = (q.astype(np.int16) + 8).astype(np.uint8)  # [-7, 7] -> [1, 15]
    if len(nibbles) % 2:
        nibbles = np.append(nibbles, np.uint8(8))
    return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8)


def _unpack4(packed: np.ndarray, n: int) -> np.ndarray:
    nibbles = np.empty(2 * len(packed), dtype=np.int16)
    nibbles[0::2], nibbles[1::2] = packed & 0x0F, packed >> 4
    return (nibbles[:n] - 8).astype(np.float32)


def _mode(name: str) -> np.ndarray:
    return np.array([MODES.index(name)], dtype=np.uint8)


def compress(flat: np.ndarray, *, sizes: Sequence[int], budget: int | None) -> dict[str, np.ndarray]:
    """The payload (named arrays) for ``flat`` (n,) float32 made of tensors of ``sizes``, within ``budget`` bytes."""
    flat = np.asarray(flat, dtype=np.float32)
    raw = {"mode": _mode("float32"), "values": flat}
    if budget is None or payload_bytes(raw) <= budget:
        return raw
    s8 = _scales(flat, sizes, 127)
    int8 = {"mode": _mode("int8"), "scales": s8, "q": np.round(flat / _per_value(s8, sizes)).astype(np.int8)}
    if payload_bytes(int8) <= budget:
        return int8
    s4 = _scales(flat, sizes, 7)
    q4 = np.clip(np.round(flat / _per_value(s4, sizes)), -7, 7).astype(np.int8)
    int4 = {"mode": _mode("int4"), "scales": s4, "packed": _pack4(q4)}
    if payload_bytes(int4) <= budget:
        return int4
    fixed = 1 + s4.nbytes
    k = int((budget - fixed) // (INDEX_BYTES + 0.5))
    while k > 0 and fixed + INDEX_BYTES * k + (k + 1) // 2 > budget:
        k -= 1
    if k < 1:
        raise ConfigError(f"`bandwidth` {budget} bytes cannot carry even one value (needs > {fixed + INDEX_BYTES} bytes)")
    keep = np.sort(np.argsort(-np.abs(q4), kind="stable")[:k]).astype(np.int32)
    return {"mode": _mode("topk4"), "scales": s4, "index": keep, "packed": _pack4(q4[keep])}


def decompress(payload: dict[str, np.ndarray], *, sizes: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`compress` (up to quantization and dropped entries): float32 (n,)."""
    mode = decode_mode(payload)
    if mode == "float32":
        return np.asarray(payload["values"], dtype=np.float32)
    n = int(sum(sizes))
    scale = _per_value(payload["scales"], sizes)
    if mode == "int8":
        return payload["q"].astype(np.float32) * scale
    if mode == "int4":
        return _unpack4(payload["packed"], n) * scale
    out = np.zeros(n, dtype=np.float32)
    index = payload["index"].astype(np.int64)
    out[index] = _unpack4(payload["packed"], len(index)) * scale[index]
    return out
