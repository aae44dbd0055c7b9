"""Member / non-member splits and the id files that record them.

A membership-inference audit is only meaningful when no example is on both sides: the same
text labelled "member" and "non-member" makes every attack look worse than it is. So
:func:`member_split` keeps records with the same text (or the same id) together, and
:func:`check_disjoint` refuses any split where a record, by id or by text, is on both sides.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path

from dpaudit.data.records import Record
from dpaudit.errors import ConfigError, InputError, MissingFileError
from dpaudit.io import write_text_atomic


def member_split(records: Sequence[Record], *, fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """Split ``records`` at random into (members, non-members), each in the input order.

    ``fraction`` is the share of records that become members (rounded to whole records, at
    least one on each side). Duplicates (same text or same id) are kept on one side.
    Deterministic for a seed.

    >>> from dpaudit.data.records import Message
    >>> recs = [Record(str(i), (Message("user", f"q{i}"), Message("assistant", f"a{i}"))) for i in range(10)]
    >>> members, nonmembers = member_split(recs, fraction=0.5, seed=0)
    >>> len(members), len(nonmembers)
    (5, 5)
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"`fraction` must be in (0, 1), got {fraction}")
    groups = _duplicate_groups(records)
    if len(groups) < 2:
        raise InputError(f"need at least 2 distinct records to split, got {len(groups)}")
    target = min(max(round(fraction * len(records)), 1), len(records) - 1)
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    chosen: list[int] = []
    taken = 0
    for g in order:
        if taken >= target:
            break
        chosen.extend(groups[g])
        taken += len(groups[g])
    if taken == len(records):  # one huge duplicate group swallowed everything; leave the last group out
        left_out = set(groups[order[-1]])
        chosen = [i for i in chosen if i not in left_out]
    is_member = [False] * len(records)
    for i in chosen:
        is_member[i] = True
    members = [r for r, m in zip(records, is_member) if m]
    nonmembers = [r for r, m in zip(records, is_member) if not m]
    check_disjoint(members, nonmembers)
    return members, nonmembers


def _duplicate_groups(records: Sequence[Record]) -> list[list[int]]:
    """Indices of records grouped so that equal texts and equal ids share a group, in first-seen order."""
    group_of: dict[tuple[str, str], int] = {}
    groups: list[list[int]] = []
    for i, record in enumerate(records):
        keys = (("text", record.text), ("id", record.id))
        g = next((group_of[k] for k in keys if k in group_of), None)
        if g is None:
            g = len(groups)
            groups.append([])
        groups[g].append(i)
        for k in keys:
            group_of.setdefault(k, g)
    return groups


def check_disjoint(members: Iterable[Record], nonmembers: Iterable[Record]) -> None:
    """Raise :class:`InputError` when a record (same id or same text) is both a member and a non-member."""
    members = list(members)
    ids = {r.id for r in members}
    texts = {r.text for r in members}
    clashes = [r for r in nonmembers if r.id in ids or r.text in texts]
    if clashes:
        shown = ", ".join(r.id for r in clashes[:5]) + (", ..." if len(clashes) > 5 else "")
        raise InputError(
            f"{len(clashes)} record(s) are both members and non-members (same id or same text): {shown}",
            field="members",
        )


def write_id_list(path: str | Path, ids: Iterable[str]) -> Path:
    """Write one id per line (atomically); ids must be non-empty, single-line and unique."""
    ids = [str(i) for i in ids]
    seen: set[str] = set()
    for i in ids:
        if not i or "\n" in i or "\r" in i or i != i.strip():
            raise InputError(f"id {i!r} cannot be written one per line", path=path)
        if i in seen:
            raise InputError(f"duplicate id {i!r}", path=path)
        seen.add(i)
    return write_text_atomic(path, "".join(f"{i}\n" for i in ids))


def read_id_list(path: str | Path) -> list[str]:
    """The ids of an id file, in order (blank lines skipped); a repeated id is an error."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such id file")
    ids: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        value = line.strip()
        if not value:
            continue
        if value in first_line:
            raise InputError(f"duplicate id {value!r} (first on line {first_line[value]})", path=path, line=number)
        first_line[value] = number
        ids.append(value)
    return ids
