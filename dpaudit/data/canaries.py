"""Canaries: random secrets planted in training data to measure how much a model memorises.

A canary's text is ``prefix + secret`` ("The access code of Ana Ruiz is " + "8391-2047").
The secret is drawn uniformly from the space defined by its ``secret_format``, a pattern in
which each placeholder character stands for one drawn character and everything else is
literal:

========  =======================  ====
char      alphabet                 size
========  =======================  ====
``d``     digits ``0-9``           10
``x``     hex digits ``0-9a-f``    16
``a``     lowercase ``a-z``        26
``A``     uppercase ``A-Z``        26
========  =======================  ====

``"dddd-dddd"`` has 10^8 candidates. The exposure of a canary (Carlini et al., 2019) is
``log2 |R| - log2 rank(secret)`` among the candidates R of its format, which is why the
format travels with the canary and :func:`secret_space_size`, :func:`random_secret` and
:func:`secret_from_index` are here.

``canaries.jsonl`` holds one canary per line with ``id``, ``prefix``, ``secret``,
``secret_format`` and, so that :func:`dpaudit.data.loaders.load_records` reads it too, the
chat-schema ``messages`` and ``category`` of :meth:`Canary.to_record`.
"""

from __future__ import annotations

import json
import math
import random
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpaudit.data.loaders import read_jsonl
from dpaudit.data.records import Message, Record
from dpaudit.errors import ConfigError, InputError, MissingFileError

SECRET_ALPHABETS: dict[str, str] = {
    "d": string.digits,
    "x": string.digits + "abcdef",
    "a": string.ascii_lowercase,
    "A": string.ascii_uppercase,
}
DEFAULT_SECRET_FORMAT = "dddd-dddd"
CANARY_CATEGORY = "canary"

# What the secret is said to be; `{name}` is a person who appears nowhere else in the dataset.
PREFIX_TEMPLATES: tuple[str, ...] = (
    "The access code of {name} is ",
    "The account recovery code of {name} is ",
    "The alarm code at the home of {name} is ",
    "The voicemail passcode of {name} is ",
    "The safe combination chosen by {name} is ",
    "The badge PIN issued to {name} is ",
)


@dataclass(frozen=True)
class Canary:
    """One planted secret; the record text is exactly ``prefix + secret``."""

    id: str
    prefix: str
    secret: str
    secret_format: str

    def __post_init__(self) -> None:
        if not matches_format(self.secret, self.secret_format):
            raise ConfigError(
                f"canary {self.id!r}: secret {self.secret!r} does not match format {self.secret_format!r}"
            )

    @property
    def text(self) -> str:
        return self.prefix + self.secret

    def with_secret(self, secret: str) -> Canary:
        """The same canary with another candidate secret (for ranking the true one among R)."""
        return Canary(self.id, self.prefix, secret, self.secret_format)

    def to_record(self) -> Record:
        """A single assistant turn holding ``prefix + secret``, so the training loss covers the secret."""
        return Record(id=self.id, messages=(Message("assistant", self.text),), category=CANARY_CATEGORY)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prefix": self.prefix,
            "secret": self.secret,
            "secret_format": self.secret_format,
            **{k: v for k, v in self.to_record().to_json().items() if k != "id"},
        }


def _check_format(fmt: str) -> None:
    if not isinstance(fmt, str) or not any(ch in SECRET_ALPHABETS for ch in fmt):
        placeholders = ", ".join(SECRET_ALPHABETS)
        raise ConfigError(f"secret format {fmt!r} has no placeholder character (one of {placeholders})")


def secret_space_size(fmt: str) -> int:
    """|R|: how many secrets the format can produce (``"dddd-dddd"`` -> 10**8)."""
    _check_format(fmt)
    return math.prod(len(SECRET_ALPHABETS[ch]) for ch in fmt if ch in SECRET_ALPHABETS)


def random_secret(rng: random.Random, fmt: str = DEFAULT_SECRET_FORMAT) -> str:
    """A uniform draw from the format's space, using ``rng`` (a ``random.Random`` or ``numpy.random.Generator``)."""
    _check_format(fmt)
    return "".join(
        SECRET_ALPHABETS[ch][_randbelow(rng, len(SECRET_ALPHABETS[ch]))] if ch in SECRET_ALPHABETS else ch for ch in fmt
    )


def _randbelow(rng: Any, n: int) -> int:
    if hasattr(rng, "integers"):  # numpy.random.Generator
        return int(rng.integers(n))
    return rng.randrange(n)


def secret_from_index(index: int, fmt: str = DEFAULT_SECRET_FORMAT) -> str:
    """The ``index``-th secret of the format in lexicographic order of placeholder values (0-based).

    Lets callers enumerate R, or sample candidates without replacement by sampling indices.
    """
    size = secret_space_size(fmt)
    if not 0 <= index < size:
        raise ConfigError(f"`index` must be in [0, {size}), got {index}")
    chars = []
    for ch in reversed(fmt):
        if ch in SECRET_ALPHABETS:
            alphabet = SECRET_ALPHABETS[ch]
            index, digit = divmod(index, len(alphabet))
            chars.append(alphabet[digit])
        else:
            chars.append(ch)
    return "".join(reversed(chars))


def matches_format(secret: str, fmt: str) -> bool:
    """Whether ``secret`` is one of the candidates of ``fmt``."""
    _check_format(fmt)
    if not isinstance(secret, str) or len(secret) != len(fmt):
        return False
    return all(s in SECRET_ALPHABETS[f] if f in SECRET_ALPHABETS else s == f for s, f in zip(secret, fmt))


def make_canaries(
    k: int,
    *,
    rng: random.Random,
    names: Sequence[str],
    secret_format: str = DEFAULT_SECRET_FORMAT,
    id_prefix: str = "canary-",
) -> list[Canary]:
    """``k`` canaries about the people in ``names`` (one each), with distinct secrets drawn from ``rng``."""
    if k < 0:
        raise ConfigError(f"`k` must be >= 0, got {k}")
    if len(names) < k:
        raise ConfigError(f"need {k} names for {k} canaries, got {len(names)}")
    if k > secret_space_size(secret_format):
        raise ConfigError(f"format {secret_format!r} has fewer than {k} distinct secrets")
    canaries: list[Canary] = []
    used: set[str] = set()
    for i in range(k):
        secret = random_secret(rng, secret_format)
        while secret in used:
            secret = random_secret(rng, secret_format)
        used.add(secret)
        prefix = PREFIX_TEMPLATES[rng.randrange(len(PREFIX_TEMPLATES))].format(name=names[i])
        canaries.append(Canary(f"{id_prefix}{i:04d}", prefix, secret, secret_format))
    return canaries


def canaries_to_jsonl(canaries: Iterable[Canary]) -> str:
    return "".join(json.dumps(c.to_json(), ensure_ascii=False) + "\n" for c in canaries)


def load_canaries(path: str | Path) -> list[Canary]:
    """The canaries of a ``canaries.jsonl`` file (an empty file means none)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such canaries file (write one with `dpaudit data synth --canaries K`)")
    canaries = []
    seen: dict[str, int] = {}
    for row in read_jsonl(path):
        values = {}
        for name in ("id", "prefix", "secret", "secret_format"):
            value = row.data.get(name)
            if not isinstance(value, str) or (name != "prefix" and not value):
                problem = "missing required field" if value is None else "must be a non-empty string"
                raise InputError(problem, path=path, line=row.line, field=name)
            values[name] = value
        try:
            secret_space_size(values["secret_format"])
        except ConfigError as exc:
            raise InputError(str(exc), path=path, line=row.line, field="secret_format") from None
        if not matches_format(values["secret"], values["secret_format"]):
            raise InputError(
                f"{values['secret']!r} does not match format {values['secret_format']!r}",
                path=path,
                line=row.line,
                field="secret",
            )
        if values["id"] in seen:
            first = seen[values["id"]]
            raise InputError(f"duplicate id {values['id']!r} (first on line {first})", path=path, line=row.line, field="id")
        seen[values["id"]] = row.line or 0
        canaries.append(Canary(**values))
    return canaries
