"""Member splits: sizes, determinism, duplicates kept on one side, id files."""

from __future__ import annotations

import pytest

from dpaudit.data.records import Message, Record
from dpaudit.data.splits import check_disjoint, member_split, read_id_list, write_id_list
from dpaudit.errors import ConfigError, InputError, MissingFileError
from tests.conftest import make_records


def test_split_sizes_and_determinism():
    records = make_records(100)
    members, nonmembers = member_split(records, fraction=0.3, seed=4)
    assert len(members) == 30 and len(nonmembers) == 70
    assert {r.id for r in members} | {r.id for r in nonmembers} == {r.id for r in records}
    again = member_split(records, fraction=0.3, seed=4)
    assert [r.id for r in again[0]] == [r.id for r in members]
    other = member_split(records, fraction=0.3, seed=5)
    assert [r.id for r in other[0]] != [r.id for r in members]
    # Each side keeps the input order.
    order = {r.id: i for i, r in enumerate(records)}
    assert [order[r.id] for r in members] == sorted(order[r.id] for r in members)


def test_duplicates_stay_on_one_side():
    base = make_records(20)
    twin = Record("twin", base[3].messages, base[3].category)  # same text, other id
    same_id = Record(base[5].id, (Message("user", "other"), Message("assistant", "text")))
    records = [*base, twin, same_id]
    for seed in range(20):
        members, nonmembers = member_split(records, fraction=0.5, seed=seed)
        check_disjoint(members, nonmembers)
        assert len(members) + len(nonmembers) == len(records)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_fraction_must_be_inside_0_1(fraction):
    with pytest.raises(ConfigError, match="`fraction`"):
        member_split(make_records(10), fraction=fraction, seed=0)


def test_split_needs_two_distinct_records():
    record = make_records(1)[0]
    with pytest.raises(InputError, match="at least 2"):
        member_split([record, record], fraction=0.5, seed=0)


def test_check_disjoint_by_id_and_by_text():
    a, b, c = make_records(3)
    check_disjoint([a], [b, c])
    with pytest.raises(InputError, match="both members and non-members"):
        check_disjoint([a, b], [c, Record(a.id, c.messages)])
    with pytest.raises(InputError, match="r1"):
        check_disjoint([a], [Record("r1", a.messages)])


def test_id_list_round_trip(tmp_path):
    path = tmp_path / "sub" / "members.txt"
    write_id_list(path, ["a", "b-2", "h0123"])
    assert path.read_text(encoding="utf-8") == "a\nb-2\nh0123\n"
    assert read_id_list(path) == ["a", "b-2", "h0123"]


def test_id_list_errors(tmp_path):
    with pytest.raises(InputError, match="duplicate id 'a'"):
        write_id_list(tmp_path / "x.txt", ["a", "a"])
    with pytest.raises(InputError, match="one per line"):
        write_id_list(tmp_path / "x.txt", ["a\nb"])
    path = tmp_path / "dup.txt"
    path.write_text("a\n\nb\na\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"dup\.txt:4: duplicate id 'a' \(first on line 1\)"):
        read_id_list(path)
    with pytest.raises(MissingFileError):
        read_id_list(tmp_path / "missing.txt")
