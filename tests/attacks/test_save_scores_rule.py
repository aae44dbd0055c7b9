"""`attack --save-scores DIR` follows the output-directory rule (issue #11)."""

from __future__ import annotations

from dpaudit.privacy.scores_io import SCORES_MARKER, read_scores


def test_save_scores_never_touches_foreign_files_and_replaces_its_own_with_overwrite(cli, quick_adapter, tmp_path):
    args = ("attack", "--adapter", quick_adapter, "--attacks", "loss", "--shadows", "0", "--json")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, _, stderr = cli(*args, "--save-scores", mine, "--overwrite")
    assert code == 2 and "did not write (notes.txt)" in stderr and "--save-scores" in stderr
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]

    scores = tmp_path / "scores"
    assert cli(*args, "--save-scores", scores)[0] == 0
    assert sorted(p.name for p in scores.iterdir()) == ["loss.csv", SCORES_MARKER]
    assert set(read_scores(scores)) == {"loss"}  # the marker is not read as scores
    code, _, stderr = cli(*args, "--save-scores", scores)
    assert code == 2 and "pass --overwrite" in stderr
    assert cli(*args, "--save-scores", scores, "--overwrite")[0] == 0
