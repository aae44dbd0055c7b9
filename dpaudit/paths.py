"""Where dpaudit keeps what it builds once (tiny base, converted GGUF models, shadow adapters)."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir

CACHE_ENV = "DPAUDIT_CACHE"


def cache_dir(*parts: str) -> Path:
    """``$DPAUDIT_CACHE`` or the user cache dir, with ``parts`` appended (created on demand)."""
    root = Path(os.environ.get(CACHE_ENV) or user_cache_dir("dpaudit"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
