"""The one in-memory form of an instruction example, whatever schema it came from."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class Record:
    """A chat-shaped example. Every loader converts its schema to this.

    ``constraints`` holds verifiable instructions in structured form
    (``{"type": ..., "kwargs": {...}}``, see :mod:`dpaudit.data.constraints`).
    """

    id: str
    messages: tuple[Message, ...]
    category: str | None = None
    constraints: tuple[Mapping[str, Any], ...] = field(default=())

    @property
    def prompt(self) -> str:
        """The last user turn: what a generation prompt asks."""
        return next((m.content for m in reversed(self.messages) if m.role == "user"), "")

    @property
    def response(self) -> str:
        """The last assistant turn: the reference answer."""
        return next((m.content for m in reversed(self.messages) if m.role == "assistant"), "")

    @property
    def text(self) -> str:
        """All turns joined; used for duplicate detection and zlib entropy."""
        return "\n".join(m.content for m in self.messages)

    def to_json(self) -> dict[str, Any]:
        """The chat (No Robots) schema, which every loader reads back."""
        out: dict[str, Any] = {
            "id": self.id,
            "messages": [{"role": m.role, "content": m.content} for m in self.messages],
        }
        if self.category is not None:
            out["category"] = self.category
        if self.constraints:
            out["constraints"] = [dict(c) for c in self.constraints]
        return out


def content_id(messages: Sequence[Message]) -> str:
    """Stable id for records that carry none: a hash of their turns."""
    canonical = json.dumps([[m.role, m.content] for m in messages], ensure_ascii=False, separators=(",", ":"))
    return "h" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def to_jsonl(records: Iterable[Record]) -> str:
    """The chat-schema JSONL text of ``records``: one object per line, UTF-8 kept, newline-terminated.

    Deterministic for equal records (key order is fixed by :meth:`Record.to_json`), so that
    files written from the same records are byte-identical.
    """
    return "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in records)
