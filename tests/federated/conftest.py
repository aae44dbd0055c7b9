"""Fixtures for federated tests: a small multi-category data file and a resolved plan on the micro base."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from dpaudit.federated.config import FedConfig
from dpaudit.train.config import TrainConfig
from tests.conftest import make_records

CATEGORIES = ("Open QA", "Brainstorm", "Summarize", "Coding")
#: Local training small enough for seconds per round on the micro base.
LOCAL = TrainConfig(epochs=1.0, batch_size=4, max_length=48)


def fed_config(**changes) -> FedConfig:
    """4 clients, 3 rounds, the plain backend; under DP, reproducible noise (the tests-only opt-in)."""
    values = dict(clients=4, rounds=3, backend="plain", train=LOCAL,
                  insecure_reproducible_noise=changes.get("dp", "none") != "none")
    return FedConfig(**{**values, **changes})


@pytest.fixture(autouse=True)
def isolated_cache(isolated_cache):
    return isolated_cache


@pytest.fixture()
def fed_records():
    return [replace(r, category=CATEGORIES[i % len(CATEGORIES)]) for i, r in enumerate(make_records(48))]


@pytest.fixture()
def fed_data(tmp_path, fed_records):
    path = tmp_path / "private.jsonl"
    path.write_text("".join(json.dumps(r.to_json()) + "\n" for r in fed_records), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def micro_base(micro_base_dir):
    from dpaudit.models.base import load_base

    return load_base(str(micro_base_dir), show_progress=False)


@pytest.fixture()
def make_plan(tmp_path, fed_records, fed_data, micro_base):
    """``make_plan(config) -> (plan, initial flat state)``: the plan a run would use, on the micro base."""
    from dpaudit.federated.runner import assign_clients, prepare_plan

    def make(config: FedConfig):
        config, members, held_out = assign_clients(fed_records, config)
        work = tmp_path / f"work-{len(list(tmp_path.glob('work-*')))}"
        work.mkdir()
        return prepare_plan(config, members=members, held_out=held_out, loaded=micro_base, work_dir=work,
                            out_dir=tmp_path / "out", data_file=fed_data, progress=False)

    return make
