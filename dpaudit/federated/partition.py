"""Split records across clients: IID, by category, Dirichlet label skew, or an explicit file.

Every function keeps the records' original order inside each client (so a single IID client
holds exactly the members, in order: one client for one round is ``dpaudit train``), and every
client gets at least one record (a client without data cannot train).

>>> from dpaudit.data.records import Message, Record
>>> recs = [Record(id=f"r{i}", messages=(Message("user", "q"), Message("assistant", "a")), category="c") for i in range(6)]
>>> [[r.id for r in c] for c in partition_records(recs, clients=2, scheme="iid", seed=0)]
[['r1', 'r4', 'r5'], ['r0', 'r2', 'r3']]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dpaudit.data.records import Record
from dpaudit.errors import ConfigError, InputError
from dpaudit.train.loop import stream_seed


def partition_records(
    records: Sequence[Record],
    *,
    clients: int,
    scheme: str,
    seed: int,
    dirichlet_alpha: float = 0.5,
    categories_per_client: int = 2,
) -> list[list[Record]]:
    """``clients`` lists of records (a partition of ``records``) by ``scheme``: iid, category or dirichlet.

    - ``iid``: a seeded shuffle dealt round-robin (sizes differ by at most one).
    - ``category``: the categories are shuffled and dealt to clients, ``categories_per_client``
      each (cycling when there are fewer categories than slots); a category shared by several
      clients is split evenly among them.
    - ``dirichlet``: for each category, client shares ~ Dir(α) (Hsu et al. 2019); small α gives
      clients few categories, large α approaches IID.
    """
    if clients > len(records):
        raise ConfigError(f"`clients` ({clients}) exceeds the {len(records)} records to partition")
    rng = np.random.default_rng(stream_seed(seed, f"partition:{scheme}"))
    if scheme == "iid":
        order = rng.permutation(len(records))
        owner = np.empty(len(records), dtype=np.int64)
        owner[order] = np.arange(len(records)) % clients
    elif scheme == "category":
        owner = _by_category(records, clients, categories_per_client, rng)
    elif scheme == "dirichlet":
        owner = _dirichlet(records, clients, dirichlet_alpha, rng)
    else:
        raise ConfigError(f"`partition` must be iid, category or dirichlet here, got {scheme!r}")
    _give_every_client_a_record(owner, clients, rng)
    return [[r for r, o in zip(records, owner) if o == c] for c in range(clients)]


def _categories(records: Sequence[Record]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        groups[record.category or ""].append(i)
    return dict(sorted(groups.items()))


def _by_category(records, clients: int, per_client: int, rng: np.random.Generator) -> np.ndarray:
    groups = _categories(records)
    names = list(groups)
    rng.shuffle(names)
    holders: dict[str, list[int]] = defaultdict(list)
    slots = max(clients * per_client, len(names))  # every category has at least one holder
    for slot in range(slots):
        holders[names[slot % len(names)]].append(slot % clients)
    owner = np.empty(len(records), dtype=np.int64)
    for name, indices in groups.items():
        clients_of = sorted(set(holders[name]))
        for k, i in enumerate(rng.permutation(indices)):
            owner[i] = clients_of[k % len(clients_of)]
    return owner


def _dirichlet(records, clients: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    owner = np.empty(len(records), dtype=np.int64)
    for indices in _categories(records).values():
        shares = rng.dirichlet(np.full(clients, alpha))
        owner[rng.permutation(indices)] = rng.choice(clients, size=len(indices), p=shares)
    return owner


def _give_every_client_a_record(owner: np.ndarray, clients: int, rng: np.random.Generator) -> None:
    """Move one record from the largest client to each empty one (skewed splits can leave some empty)."""
    for c in range(clients):
        counts = np.bincount(owner, minlength=clients)
        if counts[c] == 0:
            donor = int(np.argmax(counts))
            owner[int(rng.choice(np.flatnonzero(owner == donor)))] = c


def read_clients_file(path: str | Path, records: Sequence[Record]) -> dict[str, list[Record]]:
    """``record_id,client_id`` per line (``#`` comments allowed) -> the records of each client.

    The listed records are the members, each on its client (clients in order of first
    appearance); a real deployment states who holds what instead of a simulated split.
    """
    path = Path(path)
    by_id = {r.id: r for r in records}
    clients: dict[str, list[Record]] = {}
    seen: set[str] = set()
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2 or not all(parts):
            raise InputError(f"expected 'record_id,client_id', got {line!r}", path=path, line=number)
        record_id, client_id = parts
        if record_id not in by_id:
            raise InputError(f"record id {record_id!r} is not in the data file", path=path, line=number, field="record_id")
        if record_id in seen:
            raise InputError(f"record id {record_id!r} is listed twice", path=path, line=number, field="record_id")
        seen.add(record_id)
        clients.setdefault(client_id, []).append(by_id[record_id])
    if not clients:
        raise InputError("no 'record_id,client_id' lines", path=path)
    order = {r.id: i for i, r in enumerate(records)}
    return {cid: sorted(recs, key=lambda r: order[r.id]) for cid, recs in clients.items()}
