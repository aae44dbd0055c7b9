"""Fixtures for sweep tests: a data file of memorisable records and a small grid on the micro base."""

from __future__ import annotations

import pytest

from dpaudit.data.records import to_jsonl
from tests.conftest import make_records


@pytest.fixture()
def data_file(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(to_jsonl(make_records(32)), encoding="utf-8")
    return path


def micro_grid(base_dir, data, *, ranks=(1, 2), extra: str = "") -> str:
    """Two cheap cells (one per rank) on the micro base: a few seconds each."""
    values = ", ".join(str(r) for r in ranks)
    return f"""
name = "micro"
[base]
base = "{base_dir}"
data = "{data}"
epochs = 1
batch_size = 8
max_length = 48
checkpoint_every = 0
attacks = ["loss", "ref", "zlib"]
shadows = 0
{extra}
[[axis]]
name = "rank"
values = [{values}]
"""


@pytest.fixture()
def grid_text(micro_base_dir, data_file, isolated_cache):
    return micro_grid(micro_base_dir, data_file)
