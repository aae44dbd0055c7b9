"""Read instruction data from local files into :class:`~dpaudit.data.records.Record`.

Two independent choices are made per file:

- the *file type*, from the extension: ``.jsonl``, ``.json``, ``.parquet``, ``.csv``;
- the *schema*, detected from the first row or forced with ``format=``:

  ============  ===============================================  ==========================
  schema        fields                                           becomes
  ============  ===============================================  ==========================
  ``chat``      ``messages: [{role, content}]`` (No Robots SFT)  the turns as they are
  ``alpaca``    ``instruction``, optional ``input``, ``output``  user: instruction (+input)
  ``pair``      ``prompt``, ``response``                         user / assistant
  ============  ===============================================  ==========================

  Every schema may also carry ``id``, ``prompt_id``, ``category``, ``constraints`` and ``pii``
  (sensitive spans ``{"message", "start", "end", "type", "value"}`` over the converted turns,
  checked against them: see :class:`~dpaudit.data.records.PiiSpan`).

A record's id is its own ``id``, else its ``prompt_id``, else a hash of its turns
(:func:`~dpaudit.data.records.content_id`), so the same file always gives the same ids.

Why not read everything through ``datasets``: its JSON and CSV readers report a malformed
line with an Arrow error that names neither the file nor the line, and they coerce id
columns to numbers. JSONL and JSON are therefore parsed with :mod:`json` (exact 1-based line
of every record), CSV with :mod:`csv` (exact line, even for quoted multi-line cells; cells
holding ``messages`` or ``constraints`` are JSON text). Parquet, which has no lines, is read
through ``datasets`` with ``keep_in_memory`` and a throw-away cache directory (nothing is
written under the user's home); its errors name the 1-based row instead.

>>> records = load_records("train.jsonl")                # doctest: +SKIP
>>> records = load_records("data.csv", format="alpaca")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpaudit.data.records import ROLES, Message, PiiSpan, Record, content_id
from dpaudit.errors import InputError, MissingFileError
from dpaudit.registry import Registry

FILE_TYPES = (".jsonl", ".json", ".parquet", ".csv")


@dataclass(frozen=True)
class Row:
    """One raw row and where it came from (``line`` for text files, ``row`` for Parquet)."""

    data: Mapping[str, Any]
    line: int | None
    row: int


class _Locator:
    """Builds :class:`InputError` s that name the file, the line (or row) and the field."""

    def __init__(self, path: Path, row: Row) -> None:
        self.path = path
        self.row = row

    def error(self, message: str, field: str | None = None) -> InputError:
        if self.row.line is None:
            message = f"row {self.row.row}: {message}"
        return InputError(message, path=self.path, line=self.row.line, field=field)


# --------------------------------------------------------------------------- schemas

Converter = Callable[[Mapping[str, Any], _Locator], tuple[Message, ...]]

SCHEMAS: Registry[Converter] = Registry("format")


@SCHEMAS.register("chat")
def _chat_messages(data: Mapping[str, Any], where: _Locator) -> tuple[Message, ...]:
    raw = _json_cell(data.get("messages"), where, "messages")
    if raw is None:
        raise where.error("missing required field", "messages")
    if not isinstance(raw, list) or not raw:
        raise where.error("must be a non-empty list of {role, content} objects", "messages")
    messages = []
    for i, turn in enumerate(raw):
        name = f"messages[{i}]"
        if not isinstance(turn, Mapping):
            raise where.error("must be an object with 'role' and 'content'", name)
        role, content = turn.get("role"), turn.get("content")
        if role is None:
            raise where.error("missing required field", f"{name}.role")
        if role not in ROLES:
            raise where.error(f"unknown role {role!r}; expected one of {', '.join(ROLES)}", f"{name}.role")
        if content is None:
            raise where.error("missing required field", f"{name}.content")
        if not isinstance(content, str):
            raise where.error(f"must be a string, got {type(content).__name__}", f"{name}.content")
        messages.append(Message(role, content))
    if not any(m.role == "assistant" for m in messages):
        raise where.error("has no assistant turn (nothing to train on or score)", "messages")
    return tuple(messages)


@SCHEMAS.register("alpaca")
def _alpaca_messages(data: Mapping[str, Any], where: _Locator) -> tuple[Message, ...]:
    instruction = _required_str(data, "instruction", where)
    extra = _optional_str(data, "input", where)
    output = _required_str(data, "output", where)
    user = f"{instruction}\n\n{extra}" if extra else instruction
    return (Message("user", user), Message("assistant", output))


@SCHEMAS.register("pair")
def _pair_messages(data: Mapping[str, Any], where: _Locator) -> tuple[Message, ...]:
    return (
        Message("user", _required_str(data, "prompt", where)),
        Message("assistant", _required_str(data, "response", where)),
    )


# Detection order matters: No Robots chat rows also carry a `prompt` field.
_SIGNATURES = (("chat", ("messages",)), ("alpaca", ("instruction", "output")), ("pair", ("prompt", "response")))


def detect_format(data: Mapping[str, Any]) -> str | None:
    """The schema whose required fields ``data`` has, or None."""
    for name, fields in _SIGNATURES:
        if all(_present(data.get(f)) for f in fields):
            return name
    return None


# --------------------------------------------------------------------------- public API


def load_records(path: str | Path, *, format: str | None = None) -> list[Record]:
    """Every record of a local JSONL/JSON/Parquet/CSV file, in file order.

    ``format`` forces a schema (``chat``, ``alpaca`` or ``pair``); by default it is detected
    from the first row. Raises :class:`InputError` (file, line, field) for a malformed line,
    a missing or mistyped field, an unknown role, an unknown format or an empty file, and
    :class:`MissingFileError` when ``path`` is not a file.
    """
    path = Path(path)
    if format is not None:
        SCHEMAS.get(format)  # unknown names list the registered ones
    rows = list(_read_rows(path))
    if not rows:
        raise InputError("no records (empty file)", path=path)
    schema = format or detect_format(rows[0].data)
    if schema is None:
        expected = "; ".join(" + ".join(fields) for _, fields in _SIGNATURES)
        keys = ", ".join(sorted(map(str, rows[0].data))) or "none"
        raise _Locator(path, rows[0]).error(
            f"cannot tell the schema (fields: {keys}); expected one of: {expected}, or pass --format"
        )
    convert = SCHEMAS.get(schema)
    return [_to_record(row, convert, _Locator(path, row)) for row in rows]


def _to_record(row: Row, convert: Converter, where: _Locator) -> Record:
    data = row.data
    messages = convert(data, where)
    return Record(
        id=_record_id(data, messages, where),
        messages=messages,
        category=_optional_str(data, "category", where),
        constraints=_constraints(data, where),
        pii=_pii(data, messages, where),
    )


def _record_id(data: Mapping[str, Any], messages: tuple[Message, ...], where: _Locator) -> str:
    for name in ("id", "prompt_id"):
        value = data.get(name)
        if not _present(value):
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise where.error(f"must be a string or an integer, got {type(value).__name__}", name)
        text = str(value).strip()
        if "\n" in text or "\r" in text:
            raise where.error("must not contain a line break", name)
        return text
    return content_id(messages)


def _objects(data: Mapping[str, Any], field: str, keys: tuple[str, ...], where: _Locator) -> Iterator[tuple[str, Mapping]]:
    """(``field[i]``, object) for each item of the optional list-of-objects ``field`` (none if absent)."""
    raw = _json_cell(data.get(field), where, field)
    if raw is None or raw == "":
        return
    quoted = [f'"{key}"' for key in keys]
    if not isinstance(raw, list):
        raise where.error(f"must be a list of {{{', '.join(quoted)}}} objects", field)
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise where.error(f"must be an object with {', '.join(quoted[:-1])} and {quoted[-1]}", f"{field}[{i}]")
        yield f"{field}[{i}]", item


def _constraints(data: Mapping[str, Any], where: _Locator) -> tuple[dict[str, Any], ...]:
    out = []
    for name, item in _objects(data, "constraints", ("type", "kwargs"), where):
        kind = item.get("type")
        if not isinstance(kind, str) or not kind:
            raise where.error("missing or not a string", f"{name}.type")
        kwargs = item.get("kwargs")
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, Mapping):
            raise where.error("must be an object", f"{name}.kwargs")
        # Parquet stores kwargs as a struct whose fields are the union over rows: drop the fillers.
        out.append({"type": kind, "kwargs": {k: v for k, v in kwargs.items() if v is not None}})
    return tuple(out)


def _pii(data: Mapping[str, Any], messages: tuple[Message, ...], where: _Locator) -> tuple[PiiSpan, ...]:
    spans = []
    for name, item in _objects(data, "pii", ("message", "start", "end", "type", "value"), where):
        for key in ("message", "start", "end"):
            if isinstance(item.get(key), bool) or not isinstance(item.get(key), int):
                raise where.error("missing or not an integer", f"{name}.{key}")
        for key in ("type", "value"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise where.error("missing or not a non-empty string", f"{name}.{key}")
        span = PiiSpan(item["message"], item["start"], item["end"], item["type"], item["value"])
        problem = span.problem(messages)
        if problem:
            raise where.error(problem, name)
        spans.append(span)
    return tuple(spans)


# --------------------------------------------------------------------------- field helpers


def _present(value: Any) -> bool:
    return value is not None and value != ""


def _required_str(data: Mapping[str, Any], name: str, where: _Locator) -> str:
    value = data.get(name)
    if value is None:
        raise where.error("missing required field", name)
    if not isinstance(value, str):
        raise where.error(f"must be a string, got {type(value).__name__}", name)
    return value


def _optional_str(data: Mapping[str, Any], name: str, where: _Locator) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise where.error(f"must be a string, got {type(value).__name__}", name)
    return value


def _json_cell(value: Any, where: _Locator, name: str) -> Any:
    """CSV cells (and some exports) hold nested fields as JSON text; decode them."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise where.error(f"is not valid JSON ({exc.msg})", name) from None
    return value


# --------------------------------------------------------------------------- file readers


def _read_rows(path: Path) -> Iterator[Row]:
    if not path.is_file():
        what = "is a directory, not a data file" if path.is_dir() else "no such file"
        raise MissingFileError(f"{path}: {what}")
    suffix = path.suffix.lower()
    readers = {".jsonl": read_jsonl, ".json": _read_json, ".csv": _read_csv, ".parquet": _read_parquet}
    if suffix not in readers:
        expected = ", ".join(FILE_TYPES)
        raise InputError(f"unsupported file type {suffix or '(none)'!r}; expected one of {expected}", path=path)
    return readers[suffix](path)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise InputError("not UTF-8 text", path=path, line=line) from None


def read_jsonl(path: Path) -> Iterator[Row]:
    """The JSON objects of a JSON Lines file with their 1-based line numbers (blank lines skipped)."""
    index = 0
    for number, text in enumerate(_read_text(path).splitlines(), start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"malformed JSON ({exc.msg}, column {exc.colno})", path=path, line=number) from None
        if not isinstance(data, dict):
            raise InputError(f"expected a JSON object, got {type(data).__name__}", path=path, line=number)
        index += 1
        yield Row(data, number, index)


def _read_json(path: Path) -> Iterator[Row]:
    """A JSON array of objects (each located at the line where it starts), or JSON Lines saved as .json."""
    text = _read_text(path)
    start = len(text) - len(text.lstrip())
    if not text[start:].startswith("["):
        yield from read_jsonl(path)
        return
    decoder = json.JSONDecoder()
    pos, index = start + 1, 0
    while True:
        pos = _skip_space(text, pos)
        if pos < len(text) and text[pos] == "]" and index == 0:
            pos += 1
            break
        try:
            data, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise InputError(f"malformed JSON ({exc.msg}, column {exc.colno})", path=path, line=exc.lineno) from None
        line = text.count("\n", 0, pos) + 1
        if not isinstance(data, dict):
            raise InputError(f"expected a JSON object, got {type(data).__name__}", path=path, line=line)
        index += 1
        yield Row(data, line, index)
        pos = _skip_space(text, end)
        if pos < len(text) and text[pos] == ",":
            pos += 1
            continue
        if pos < len(text) and text[pos] == "]":
            pos += 1
            break
        raise InputError("malformed JSON (expected ',' or ']')", path=path, line=text.count("\n", 0, pos) + 1)
    if _skip_space(text, pos) != len(text):
        raise InputError("malformed JSON (extra data after the array)", path=path, line=text.count("\n", 0, pos) + 1)


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _read_csv(path: Path) -> Iterator[Row]:
    """A header row, then one record per row; ``line`` is where the row starts (cells may span lines)."""
    reader = csv.reader(_read_text(path).splitlines(keepends=True), strict=True)
    header: list[str] | None = None
    index = 0
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(f"malformed CSV ({exc})", path=path, line=reader.line_num) from None
        if not cells:
            continue
        if header is None:
            header = [c.strip() for c in cells]
            continue
        if len(cells) > len(header):
            raise InputError(f"{len(cells)} cells but {len(header)} header columns", path=path, line=start)
        index += 1
        yield Row(dict(zip(header, cells)), start, index)


def _read_parquet(path: Path) -> Iterator[Row]:
    import datasets  # noqa: PLC0415  (slow import; only Parquet needs it)

    bars_were_off = datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        with tempfile.TemporaryDirectory(prefix="dpaudit-datasets-") as cache:
            table = datasets.load_dataset(
                "parquet", data_files=str(path), split="train", keep_in_memory=True, cache_dir=cache
            )
            rows = table.to_list()
    except Exception as exc:  # pyarrow/datasets raise many types for a broken file
        raise InputError(f"cannot read Parquet ({type(exc).__name__}: {exc})", path=path) from None
    finally:
        if not bars_were_off:
            datasets.enable_progress_bars()
    for index, data in enumerate(rows, start=1):
        yield Row(data, None, index)
