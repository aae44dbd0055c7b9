"""Atomic file writes: outputs appear whole or not at all, readable by their owner only.

Permissions rule: everything dpaudit writes is owner-only (files 0600, directories 0700), because
adapters, reports, id lists and scores are all derived from the training records. Which
directories a command may replace at all is decided by :mod:`dpaudit.outputs`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dpaudit.errors import InputError
from dpaudit.interrupts import signals_deferred

FILE_MODE = 0o600
DIR_MODE = 0o700


@contextlib.contextmanager
def atomic_path(path: str | Path, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, FILE_MODE)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Sorted, indented JSON (stable diffs, byte-identical for identical content)."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temp directory beside ``path``; it replaces ``path`` only if the block succeeds.

    An interrupt inside the block leaves ``path`` as it was; the two renames that swap the new
    directory in are not split by SIGINT/SIGTERM. Check with
    :func:`dpaudit.outputs.prepare_output_dir` first whether ``path`` may be replaced at all.
    """
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        restrict_tree(tmp)
        backup = path.with_name(f".{path.name}.old")
        if backup.exists():
            shutil.rmtree(backup)
        with signals_deferred():
            if path.exists():
                os.replace(path, backup)
            os.replace(tmp, path)
            if backup.exists():
                shutil.rmtree(backup)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def restrict_tree(root: str | Path) -> None:
    """Make ``root`` and everything under it owner-only (directories 0700, files 0600)."""
    root = Path(root)
    os.chmod(root, DIR_MODE)
    for parent, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(parent, name), DIR_MODE)
        for name in files:
            os.chmod(os.path.join(parent, name), FILE_MODE)


def sha256_file(path: str | Path, *, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_json_object(path: str | Path) -> dict[str, Any]:
    """A JSON file that must hold an object; anything else is one :class:`InputError` naming the file and line."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg}, column {exc.colno})", path=path, line=exc.lineno) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path=path) from None
    if not isinstance(value, dict):
        raise InputError(f"must be a JSON object, got {type(value).__name__}", path=path)
    return value
