"""Loaders: every schema and file type, format forcing, stable ids, errors that say where."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dpaudit.data.loaders import detect_format, load_records
from dpaudit.data.records import Message, Record, content_id, to_jsonl
from dpaudit.errors import ConfigError, InputError, MissingFileError

CHAT_ROW = {
    "prompt": "Name three birds.",
    "prompt_id": "nr-001",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name three birds."},
        {"role": "assistant", "content": "Robin, wren, owl."},
    ],
    "category": "Brainstorm",
}
ALPACA_ROW = {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"}
PAIR_ROW = {"prompt": "What is 2+2?", "response": "4"}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()})
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# --------------------------------------------------------------------------- schemas


def test_chat_schema_no_robots_row(tmp_path):
    (record,) = load_records(write_jsonl(tmp_path / "c.jsonl", [CHAT_ROW]))
    assert record.id == "nr-001"
    assert [m.role for m in record.messages] == ["system", "user", "assistant"]
    assert record.prompt == "Name three birds."
    assert record.response == "Robin, wren, owl."
    assert record.category == "Brainstorm"
    assert record.constraints == ()


def test_alpaca_schema_joins_instruction_and_input(tmp_path):
    rows = [ALPACA_ROW, {"instruction": "Say hi.", "output": "Hi!"}]
    first, second = load_records(write_jsonl(tmp_path / "a.jsonl", rows))
    assert first.messages == (Message("user", "Translate to French.\n\nGood morning"), Message("assistant", "Bonjour"))
    assert second.prompt == "Say hi."
    assert first.id == content_id(first.messages)


def test_pair_schema(tmp_path):
    (record,) = load_records(write_jsonl(tmp_path / "p.jsonl", [PAIR_ROW]))
    assert record.messages == (Message("user", "What is 2+2?"), Message("assistant", "4"))


def test_detect_format_prefers_chat_over_prompt_field():
    assert detect_format(CHAT_ROW) == "chat"
    assert detect_format(ALPACA_ROW) == "alpaca"
    assert detect_format(PAIR_ROW) == "pair"
    assert detect_format({"text": "x"}) is None


def test_format_forcing(tmp_path):
    # A row that has both pair and alpaca fields: detection picks alpaca, forcing picks pair.
    row = {"instruction": "i", "output": "o", "prompt": "p", "response": "r"}
    path = write_jsonl(tmp_path / "both.jsonl", [row])
    assert load_records(path)[0].prompt == "i"
    assert load_records(path, format="pair")[0].prompt == "p"


def test_unknown_format_lists_the_known_ones(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [PAIR_ROW])
    with pytest.raises(ConfigError, match="alpaca, chat, pair"):
        load_records(path, format="sharegpt")


def test_constraints_are_read_as_structured_data(tmp_path):
    row = {**PAIR_ROW, "constraints": [{"type": "case:lowercase", "kwargs": {}}, {"type": "length:max_words", "kwargs": {"n": 5}}]}
    (record,) = load_records(write_jsonl(tmp_path / "p.jsonl", [row]))
    assert record.constraints == ({"type": "case:lowercase", "kwargs": {}}, {"type": "length:max_words", "kwargs": {"n": 5}})


# --------------------------------------------------------------------------- file types


@pytest.mark.parametrize("kind", ["json", "csv", "parquet"])
def test_other_file_types_give_the_same_records(tmp_path, kind):
    rows = [
        {**CHAT_ROW, "constraints": [{"type": "case:lowercase", "kwargs": {}}]},
        {**CHAT_ROW, "prompt_id": "nr-002", "category": "Chat", "constraints": [{"type": "length:max_words", "kwargs": {"n": 9}}]},
    ]
    expected = load_records(write_jsonl(tmp_path / "ref.jsonl", rows))
    path = tmp_path / f"data.{kind}"
    if kind == "json":
        path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    elif kind == "csv":
        write_csv(path, rows)
    else:
        write_parquet(path, rows)
    assert load_records(path) == expected


def test_json_lines_saved_as_json(tmp_path):
    path = write_jsonl(tmp_path / "lines.json", [PAIR_ROW, PAIR_ROW])
    assert len(load_records(path)) == 2


def test_csv_alpaca_keeps_ids_as_text_and_empty_input(tmp_path):
    rows = [{"id": "007", "instruction": "a", "input": "", "output": "b"}]
    (record,) = load_records(write_csv(tmp_path / "a.csv", rows))
    assert record.id == "007"
    assert record.prompt == "a"


def test_written_records_round_trip(tmp_path):
    records = [
        Record("x1", (Message("user", "q"), Message("assistant", "a")), "Open QA", ({"type": "t:n", "kwargs": {"k": 1}},)),
        Record("x2", (Message("user", "é ✓"), Message("assistant", "b")), None),
    ]
    path = tmp_path / "r.jsonl"
    path.write_text(to_jsonl(records), encoding="utf-8")
    assert load_records(path) == records


# --------------------------------------------------------------------------- ids


def test_ids_are_stable_and_own_ids_win(tmp_path):
    rows = [PAIR_ROW, {**PAIR_ROW, "response": "four"}, {**PAIR_ROW, "id": 17}, {**PAIR_ROW, "id": "a", "prompt_id": "b"}]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    first, second = load_records(path), load_records(path)
    assert [r.id for r in first] == [r.id for r in second]
    assert first[0].id != first[1].id  # content hash differs with content
    assert first[0].id.startswith("h")
    assert first[2].id == "17"
    assert first[3].id == "a"
    # The content id does not depend on the file or the schema the content came from.
    other = write_jsonl(tmp_path / "chat.jsonl", [{"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]}])
    assert load_records(other)[0].id == first[0].id


# --------------------------------------------------------------------------- errors


def test_malformed_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(PAIR_ROW) + "\n\n" + '{"prompt": "x", "response": \n', encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_records(path)
    assert info.value.line == 3
    assert "bad.jsonl:3" in str(info.value)
    assert "malformed JSON" in str(info.value)


def test_non_object_line(tmp_path):
    path = tmp_path / "list.jsonl"
    path.write_text(json.dumps(PAIR_ROW) + "\n[1, 2]\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"list\.jsonl:2: expected a JSON object"):
        load_records(path)


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"prompt": "p"}, "response"),
        ({"instruction": "i", "output": None}, "output"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [{"content": "x"}]}, "messages[0].role"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "only a question"}]}, "messages"),
        ({"prompt": "p", "response": 3}, "response"),
        ({**PAIR_ROW, "constraints": [{"kwargs": {}}]}, "constraints[0].type"),
        ({**PAIR_ROW, "category": 5}, "category"),
    ],
)
def test_missing_or_bad_field_names_line_and_field(tmp_path, row, field):
    format = "pair" if "prompt" in row else "alpaca" if "instruction" in row else "chat"
    path = write_jsonl(tmp_path / "f.jsonl", [PAIR_ROW if format == "pair" else row, row])
    line = 2 if format == "pair" else 1
    with pytest.raises(InputError) as info:
        load_records(path, format=format)
    assert info.value.field == field
    assert info.value.line == line
    assert f"f.jsonl:{line} field '{field}'" in str(info.value)


def test_unknown_role(tmp_path):
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}]}
    path = write_jsonl(tmp_path / "r.jsonl", [row])
    with pytest.raises(InputError, match=r"r\.jsonl:1 field 'messages\[1\]\.role': unknown role 'bot'"):
        load_records(path)


def test_undetectable_schema_suggests_format(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "hello"}])
    with pytest.raises(InputError, match="--format"):
        load_records(path)


@pytest.mark.parametrize("content", ["", "\n\n  \n", "[]"])
def test_empty_file(tmp_path, content):
    path = tmp_path / ("e.json" if content == "[]" else "e.jsonl")
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match="empty file"):
        load_records(path)


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(MissingFileError):
        load_records(tmp_path / "nope.jsonl")
    path = tmp_path / "data.txt"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="unsupported file type '.txt'"):
        load_records(path)


def test_json_array_errors_name_the_line(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[\n  {"prompt": "p", "response": "r"},\n  {"prompt": "p"}\n]\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"a\.json:3 field 'response'"):
        load_records(path)
    path.write_text('[\n  {"prompt": "p", "response": "r"},\n  {"prompt": \n]\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"a\.json:4: malformed JSON"):
        load_records(path)


def test_csv_errors_name_the_line_even_after_multiline_cells(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('prompt,response\n"two\nlines",ok\n\nthird\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"p\.csv:5 field 'response': missing required field"):
        load_records(path)
    path.write_text('messages,id\n"[{""role"": ""user"", ""content"": ""q""}, {""role"": ""assistant"", ""content"": ""a""}]",1\n"[oops",2\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"p\.csv:3 field 'messages': is not valid JSON"):
        load_records(path)


def test_parquet_errors_name_the_row(tmp_path):
    path = write_parquet(tmp_path / "p.parquet", [PAIR_ROW, {"prompt": "x", "response": None}])
    with pytest.raises(InputError, match=r"p\.parquet field 'response': row 2: missing required field"):
        load_records(path)


def test_parquet_leaves_the_datasets_cache_alone(tmp_path):
    import datasets

    cache = Path(datasets.config.HF_DATASETS_CACHE)
    before = sorted(cache.rglob("*")) if cache.exists() else []
    path = write_parquet(tmp_path / "p.parquet", [PAIR_ROW])
    assert len(load_records(path)) == 1
    after = sorted(cache.rglob("*")) if cache.exists() else []
    assert after == before, "datasets wrote into its user cache"
