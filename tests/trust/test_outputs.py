"""The output-directory rule (issue #11): dpaudit never deletes or overwrites what it did not create."""

from __future__ import annotations

import json
import os
import stat

import pytest

from dpaudit.errors import InputError
from dpaudit.io import atomic_dir, write_json_atomic
from dpaudit.outputs import prepare_output_dir
from tests.conftest import make_records


def test_missing_and_empty_targets_are_fine(tmp_path):
    assert prepare_output_dir(tmp_path / "new", marker="report.json", overwrite=False) == (tmp_path / "new").resolve()
    (tmp_path / "empty").mkdir()
    assert prepare_output_dir(tmp_path / "empty", marker="report.json", overwrite=False).is_dir()


def test_an_earlier_output_needs_overwrite(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "report.json").write_text("{}")
    with pytest.raises(InputError, match="earlier dpaudit output; pass --overwrite"):
        prepare_output_dir(tmp_path / "r", marker="report.json", overwrite=False)
    assert prepare_output_dir(tmp_path / "r", marker="report.json", overwrite=True) == (tmp_path / "r").resolve()


@pytest.mark.parametrize("overwrite", [False, True])
def test_foreign_files_are_refused_whatever_the_flags(tmp_path, overwrite):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match=r"did not write \(notes.txt\)"):
        prepare_output_dir(tmp_path / "mine", marker="report.json", overwrite=overwrite)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        prepare_output_dir(tmp_path / "file", marker="report.json", overwrite=overwrite)


def test_a_target_holding_an_input_is_refused_even_with_overwrite(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "dpaudit.json").write_text("{}")
    data = tmp_path / "run" / "private.jsonl"
    data.write_text("")
    with pytest.raises(InputError, match="holds private.jsonl, an input"):
        prepare_output_dir(tmp_path / "run", marker="dpaudit.json", overwrite=True, inputs=[data])


def test_own_subdirectories_do_not_block(tmp_path):
    (tmp_path / "reports" / "lora").mkdir(parents=True)
    (tmp_path / "reports" / "lora" / "report.json").write_text("{}")
    assert prepare_output_dir(tmp_path / "reports", marker="compare.json", overwrite=False, own_subdirs="report.json")
    (tmp_path / "reports" / "other").mkdir()
    with pytest.raises(InputError, match="did not write"):
        prepare_output_dir(tmp_path / "reports", marker="compare.json", overwrite=False, own_subdirs="report.json")


def test_atomic_dir_writes_owner_only_files_and_accepts_dot(tmp_path, monkeypatch):
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("x")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("y")
    write_json_atomic(tmp_path / "c.json", {})
    for path, mode in ((tmp_path / "out", 0o700), (tmp_path / "out" / "sub", 0o700), (tmp_path / "out" / "a.txt", 0o600),
                       (tmp_path / "out" / "sub" / "b.txt", 0o600), (tmp_path / "c.json", 0o600)):
        assert stat.S_IMODE(os.stat(path).st_mode) == mode, path
    monkeypatch.chdir(tmp_path / "out")
    with atomic_dir(".") as tmp:  # used to fail: Path(".").name is ""
        (tmp / "d.txt").write_text("z")
    assert (tmp_path / "out" / "d.txt").is_file() and not (tmp_path / "out" / "a.txt").exists()


@pytest.fixture()
def data_file(tmp_path):
    path = tmp_path / "work" / "private.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r.to_json()) + "\n" for r in make_records(20)), encoding="utf-8")
    (tmp_path / "work" / "notes.txt").write_text("keep me")
    return path


def _one_error(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


@pytest.mark.parametrize("flags", [[], ["--overwrite"]])
def test_train_refuses_a_directory_holding_the_users_files(cli, data_file, micro_base_dir, isolated_cache, flags):
    """`train --out DIR` deleted DIR's files, the training data included, and exited 0."""
    code, _, stderr = cli("train", "--data", data_file, "--base", micro_base_dir, "--out", data_file.parent,
                          "--max-steps", "1", "--batch-size", "4", *flags)
    assert code == 2 and "input of this command" in _one_error(stderr)
    assert data_file.is_file() and (data_file.parent / "notes.txt").read_text() == "keep me"


def test_train_replaces_its_own_adapter_only_with_overwrite(cli, data_file, micro_base_dir, isolated_cache, tmp_path):
    out = tmp_path / "adapter"
    args = ("train", "--data", data_file, "--base", micro_base_dir, "--out", out, "--max-steps", "1", "--batch-size", "4")
    assert cli(*args)[0] == 0
    card = (out / "dpaudit.json").read_text()
    code, _, stderr = cli(*args, "--seed", "1")
    assert code == 2 and "pass --overwrite" in _one_error(stderr)
    assert (out / "dpaudit.json").read_text() == card
    assert cli(*args, "--seed", "1", "--overwrite")[0] == 0
    assert json.loads((out / "dpaudit.json").read_text())["seed"] == 1


def test_train_out_dot_is_one_line_not_a_traceback(cli, data_file, micro_base_dir, isolated_cache, monkeypatch):
    monkeypatch.chdir(data_file.parent)
    code, _, stderr = cli("train", "--data", data_file.name, "--base", micro_base_dir, "--out", ".", "--max-steps", "1")
    assert code == 2 and "Traceback" not in stderr and "input of this command" in _one_error(stderr)


def test_data_synth_and_compare_follow_the_rule(cli, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    code, _, stderr = cli("data", "synth", "--n", "20", "--out", tmp_path / "mine", "--overwrite")
    assert code == 2 and "did not write" in _one_error(stderr)
    assert cli("data", "synth", "--n", "20", "--out", tmp_path / "d")[0] == 0
    code, _, stderr = cli("data", "synth", "--n", "20", "--out", tmp_path / "d")
    assert code == 2 and "pass --overwrite" in _one_error(stderr)
    assert cli("data", "synth", "--n", "20", "--out", tmp_path / "d", "--overwrite")[0] == 0
    code, _, stderr = cli("compare", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "mine")
    assert code == 2 and "did not write" in _one_error(stderr)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("flags", [[], ["--overwrite"]])
def test_audit_refuses_a_directory_holding_the_users_files(cli, tmp_path, flags):
    """`audit --out DIR` replaced DIR, unrelated files included; now refused before any work."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    code, _, stderr = cli("audit", "--adapter", tmp_path / "adapter", "--out", tmp_path / "mine", "--quick", *flags)
    assert code == 2 and "did not write (notes.txt)" in _one_error(stderr)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_data_stats_table_shows_per_constraint_counts_apart_from_categories(cli, tmp_path):
    assert cli("data", "synth", "--n", "40", "--out", tmp_path / "d")[0] == 0
    code, out, _ = cli("data", "stats", tmp_path / "d" / "private.jsonl")
    assert code == 0
    lines = [line.strip("│ ").split("│")[0].strip() for line in out.splitlines()]
    assert "categories" in lines and "constraints" in lines
    types = [line for line in lines if ":" in line and line.split(":")[0] in {"case", "format", "keywords", "length",
                                                                            "punctuation", "startend", "combination"}]
    assert types and lines.index("constraints") < lines.index(types[0])  # listed under "constraints"
    assert lines.index("categories") < lines.index("constraints")  # categories no longer sit under constraints


def test_the_committed_example_reports_count_as_dpaudit_output(tmp_path):
    """A fresh clone holds reports/demo/{compare.md, lora/report.md, dp-lora/report.md} and no markers."""
    from dpaudit.report.compare import COMPARE_FILES, COMPARE_JSON
    from dpaudit.report.write import REPORT_FILES

    out = tmp_path / "reports" / "demo"
    for name in ("lora", "dp-lora"):
        (out / name).mkdir(parents=True)
        (out / name / "report.md").write_text("## dpaudit")
    (out / "compare.md").write_text("## dpaudit compare")
    prepare_output_dir(out, marker=("demo.json", COMPARE_JSON), own_files=COMPARE_FILES, own_subdirs=REPORT_FILES,
                       overwrite=True)
    prepare_output_dir(out / "lora", marker="report.json", own_files=REPORT_FILES, overwrite=True)
    with pytest.raises(InputError, match="pass --overwrite"):
        prepare_output_dir(out / "lora", marker="report.json", own_files=REPORT_FILES, overwrite=False)
    (out / "lora" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="did not write"):
        prepare_output_dir(out / "lora", marker="report.json", own_files=REPORT_FILES, overwrite=True)
