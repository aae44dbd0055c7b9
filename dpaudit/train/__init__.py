"""Training: LoRA / DoRA / DyLoRA / full fine-tuning, with or without DP-SGD (see :mod:`.trainer`).

The configs are imported eagerly (they are plain dataclasses, so the CLI can show their defaults
without loading torch); the trainer itself is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from dpaudit.train.config import DPConfig, TrainConfig

_LAZY = {
    "GRADIENT_CANARY_SCORES": "dpaudit.train.trainer",
    "TrainResult": "dpaudit.train.trainer",
    "run_training": "dpaudit.train.trainer",
    "train_adapter": "dpaudit.train.trainer",
    "TrainingSanityError": "dpaudit.train.dp",
    "default_target_modules": "dpaudit.train.methods",
}

__all__ = ["DPConfig", "TrainConfig", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
