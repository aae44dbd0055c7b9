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
class PiiSpan:
    """One sensitive span of a record: ``messages[message].content[start:end] == value``.

    ``type`` names the kind of PII (``email``, ``phone``, ``dob``, ...): the synthetic generator
    records the spans it writes; :mod:`dpaudit.data.pii` detects them in user data.
    """

    message: int
    start: int
    end: int
    type: str
    value: str

    def problem(self, messages: Sequence[Message]) -> str | None:
        """Why this span does not fit ``messages`` (None when it does)."""
        if not 0 <= self.message < len(messages):
            return f"message {self.message} does not exist (the record has {len(messages)})"
        content = messages[self.message].content
        if not 0 <= self.start < self.end <= len(content):
            return f"[{self.start}, {self.end}) is not a non-empty range of message {self.message} ({len(content)} chars)"
        if content[self.start : self.end] != self.value:
            return f"message {self.message}[{self.start}:{self.end}] is not the span's value"
        return None

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "start": self.start, "end": self.end, "type": self.type, "value": self.value}


@dataclass(frozen=True)
class Record:
    """A chat-shaped example. Every loader converts its schema to this.

    ``constraints`` holds verifiable instructions in structured form
    (``{"type": ..., "kwargs": {...}}``, see :mod:`dpaudit.data.constraints`). ``pii`` marks the
    record's sensitive spans (:class:`PiiSpan`), for the PII-extraction attack.
    """

    id: str
    messages: tuple[Message, ...]
    category: str | None = None
    constraints: tuple[Mapping[str, Any], ...] = field(default=())
    pii: tuple[PiiSpan, ...] = field(default=())

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
        if self.pii:
            out["pii"] = [span.to_json() for span in self.pii]
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
