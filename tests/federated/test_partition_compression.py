"""Partitions (iid, category, dirichlet, clients file) and the bandwidth rule."""

from __future__ import annotations

import numpy as np
import pytest

from dpaudit.errors import ConfigError, InputError
from dpaudit.federated.compression import compress, decode_mode, decompress, payload_bytes
from dpaudit.federated.partition import partition_records, read_clients_file


@pytest.mark.parametrize("scheme", ["iid", "category", "dirichlet"])
def test_partition_covers_every_record_once_and_no_client_is_empty(fed_records, scheme):
    parts = partition_records(fed_records, clients=4, scheme=scheme, seed=3, dirichlet_alpha=0.1)
    ids = [r.id for part in parts for r in part]
    assert sorted(ids) == sorted(r.id for r in fed_records)
    assert all(parts)
    order = {r.id: i for i, r in enumerate(fed_records)}
    assert all([order[r.id] for r in part] == sorted(order[r.id] for r in part) for part in parts)


def test_iid_is_balanced_and_category_is_skewed(fed_records):
    iid = partition_records(fed_records, clients=4, scheme="iid", seed=0)
    assert {len(p) for p in iid} == {12}
    by_category = partition_records(fed_records, clients=4, scheme="category", seed=0, categories_per_client=1)
    assert all(len({r.category for r in part}) == 1 for part in by_category)


def test_one_iid_client_holds_every_record_in_order(fed_records):
    (only,) = partition_records(fed_records, clients=1, scheme="iid", seed=5)
    assert only == fed_records


def test_clients_file(tmp_path, fed_records):
    path = tmp_path / "clients.csv"
    path.write_text("# record,client\nr0,site-a\nr5,site-b\nr1,site-a\n", encoding="utf-8")
    clients = read_clients_file(path, fed_records)
    assert {c: [r.id for r in recs] for c, recs in clients.items()} == {"site-a": ["r0", "r1"], "site-b": ["r5"]}
    path.write_text("r0,site-a\nnope,site-b\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"clients.csv:2.*nope"):
        read_clients_file(path, fed_records)


@pytest.mark.parametrize("budget,mode", [(None, "float32"), (5000, "float32"), (1500, "int8"), (800, "int4"), (200, "topk4")])
def test_compression_fits_the_budget_in_the_documented_order(budget, mode):
    rng = np.random.default_rng(0)
    sizes = [600, 400]
    flat = rng.normal(0, 1, size=1000).astype(np.float32)
    payload = compress(flat, sizes=sizes, budget=budget)
    assert decode_mode(payload) == mode
    if budget is not None:
        assert payload_bytes(payload) <= budget
    restored = decompress(payload, sizes=sizes)
    assert restored.shape == flat.shape
    if mode == "int8":
        scale = np.repeat(payload["scales"], sizes)
        assert np.all(np.abs(restored - flat) <= scale / 2 + 1e-6)
    if mode == "topk4":
        kept = np.flatnonzero(restored)
        assert 0 < len(kept) < 1000 and np.all(np.abs(flat[kept]) >= np.median(np.abs(flat)))


def test_a_budget_too_small_for_one_value_is_refused():
    with pytest.raises(ConfigError, match="bandwidth"):
        compress(np.ones(100, dtype=np.float32), sizes=[50, 50], budget=10)
