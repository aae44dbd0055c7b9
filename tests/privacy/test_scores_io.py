"""The id,member,score CSV: exact round trip, atomic write, errors located by file, line and field."""

from __future__ import annotations

import numpy as np
import pytest

from dpaudit.errors import InputError, MissingFileError
from dpaudit.privacy.scores_io import read_scores, read_scores_csv, write_scores_csv


def test_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=50) * 1e3
    labels = rng.integers(0, 2, 50)
    ids = [f"r{i}" for i in range(50)]
    path = write_scores_csv(tmp_path / "sub" / "loss.csv", ids, labels, scores)
    got_ids, got_labels, got_scores = read_scores_csv(path)
    assert got_ids == ids
    assert got_labels.tolist() == labels.tolist()
    assert np.array_equal(got_scores, scores)
    assert [p.name for p in path.parent.iterdir()] == ["loss.csv"]  # no temp file left behind


def test_columns_in_any_order_and_extra_columns(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("score,extra,member,id\n0.5,x,1,a\n-1,y,0,b\n\n")
    ids, labels, scores = read_scores_csv(path)
    assert ids == ["a", "b"] and labels.tolist() == [1, 0] and scores.tolist() == [0.5, -1.0]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "a.csv:1: empty file"),
        ("id,score\na,1\n", "a.csv:1 field 'member': header lacks member"),
        ("id,member,score\na,1,0.5\nb,yes,0.1\n", "a.csv:3 field 'member': must be 1 or 0, got 'yes'"),
        ("id,member,score\na,1,nan\n", "a.csv:2 field 'score': must be finite, got 'nan'"),
        ("id,member,score\na,1,inf\n", "field 'score': must be finite"),
        ("id,member,score\na,1,abc\n", "a.csv:2 field 'score': not a number: 'abc'"),
        ("id,member,score\na,1,0.5\na,0,0.1\n", "a.csv:3 field 'id': duplicate id 'a' (first on line 2)"),
        ("id,member,score\na,1\n", "a.csv:2: expected 3 fields, got 2"),
        ("id,member,score\n", "no rows after the header"),
    ],
)
def test_bad_files_are_located(tmp_path, text, needle):
    path = tmp_path / "a.csv"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        read_scores_csv(path)
    assert needle in str(info.value)


def test_missing_file_says_what_to_run(tmp_path):
    with pytest.raises(MissingFileError, match="dpaudit attack --save-scores"):
        read_scores_csv(tmp_path / "nope.csv")
    with pytest.raises(MissingFileError, match="No \\*.csv scores"):
        read_scores(tmp_path)


def test_writer_refuses_bad_data(tmp_path):
    with pytest.raises(InputError, match="finite"):
        write_scores_csv(tmp_path / "x.csv", ["a"], [1], [float("nan")])
    with pytest.raises(InputError, match="0 or 1"):
        write_scores_csv(tmp_path / "x.csv", ["a"], [2], [0.0])
    with pytest.raises(InputError, match="unique"):
        write_scores_csv(tmp_path / "x.csv", ["a", "a"], [1, 0], [0.0, 1.0])
    with pytest.raises(InputError, match="one length"):
        write_scores_csv(tmp_path / "x.csv", ["a", "b"], [1], [0.0, 1.0])
    assert not (tmp_path / "x.csv").exists()


def test_read_scores_directory(tmp_path):
    write_scores_csv(tmp_path / "loss.csv", ["a", "b"], [1, 0], [1.0, 0.0])
    write_scores_csv(tmp_path / "zlib.csv", ["a", "b"], [1, 0], [0.3, 0.2])
    (tmp_path / "notes.txt").write_text("ignored")
    data = read_scores(tmp_path)
    assert list(data) == ["loss", "zlib"]
    scores, labels = data["zlib"]
    assert scores.tolist() == [0.3, 0.2] and labels.tolist() == [1, 0]
    assert list(read_scores(tmp_path / "loss.csv")) == ["loss"]
