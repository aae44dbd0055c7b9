"""`dpaudit demo`: the pipeline on a micro base (fast), and the real demo's picture (slow)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from dpaudit.demo import DemoConfig, run_demo
from dpaudit.errors import InputError
from dpaudit.report.schema import validate_report


def test_demo_pipeline_reuses_runs_and_restarts_on_new_settings(tmp_path, micro_base_dir, isolated_cache):
    config = DemoConfig(base=str(micro_base_dir), n_private=40, epochs=2, batch_size=8, max_length=96, adherence_limit=2)
    out, runs = tmp_path / "reports", tmp_path / "runs"
    said: list[str] = []
    result = run_demo(out=out, runs=runs, config=config, log=said.append, progress=False)

    assert set(result.reports) == {"lora", "dp-lora"}
    for name, report in result.reports.items():
        validate_report(report)
        assert (out / name / "report.md").is_file() and (out / name / "report.html").is_file()
        assert "rmia" in report["attacks"]  # the population: the synthetic data's public split
        assert set(report["pii_extraction"]["adapter"]) == {"members", "nonmembers", "gap"}
    assert result.reports["lora"]["epsilon"]["verdict"] == "no-guarantee"
    assert result.reports["dp-lora"]["epsilon"]["verdict"] == "consistent"
    assert result.compare_html.is_file() and (out / "compare.md").is_file()
    members = (runs / "lora" / "members.txt").read_text()
    assert members == (runs / "dp-lora" / "members.txt").read_text()  # the same members: only DP differs

    said.clear()
    again = run_demo(out=out, runs=runs, config=config, log=said.append, progress=False)
    assert any("reusing the lora adapter" in line for line in said)
    assert again.reports["lora"]["attacks"]["ref"]["auc"] == result.reports["lora"]["attacks"]["ref"]["auc"]

    said.clear()
    with pytest.raises(InputError, match="other settings \\(seed\\); pass --overwrite"):
        run_demo(out=out, runs=runs, config=replace(config, seed=1), log=said.append, progress=False)
    assert (runs / "lora" / "dpaudit.json").is_file()  # refused before anything was touched
    (runs / "notes.txt").write_text("mine")
    run_demo(out=out, runs=runs, config=replace(config, seed=1), log=said.append, progress=False, overwrite=True)
    assert any("starting over" in line for line in said)
    assert json.loads((runs / "demo.json").read_text())["seed"] == 1
    assert (runs / "notes.txt").read_text() == "mine"  # only the demo's own subdirectories are replaced


def test_demo_never_deletes_a_folder_it_did_not_make(tmp_path, micro_base_dir, isolated_cache):
    """`demo --runs .` used to delete the user's own ./data folder ("settings differ ... starting over")."""
    runs = tmp_path / "project"
    (runs / "data").mkdir(parents=True)
    (runs / "data" / "private.jsonl").write_text("{}\n")
    config = DemoConfig(base=str(micro_base_dir), n_private=40, epochs=1, batch_size=8, max_length=96, adherence_limit=2)
    for overwrite in (False, True):
        with pytest.raises(InputError, match="did not write"):
            run_demo(out=tmp_path / "reports", runs=runs, config=config, progress=False, overwrite=overwrite)
    assert (runs / "data" / "private.jsonl").read_text() == "{}\n"
    assert not (tmp_path / "reports").exists()


@pytest.mark.slow
def test_the_demo_shows_lora_leaking_and_dp_lora_not(tmp_path, cli):
    """The real demo (tiny base, default recipe): the picture the README promises, and the gate on it."""
    out = tmp_path / "reports"
    code, stdout, err = cli("demo", "--out", out, "--runs", tmp_path / "runs", "--json")
    assert code == 0, err
    reports = json.loads(stdout)["reports"]
    worst = {name: max(a["auc"] for a in report["attacks"].values()) for name, report in reports.items()}
    assert worst["lora"] > 0.65, worst  # 0.69 at seed 0
    assert worst["dp-lora"] < 0.6, worst  # 0.56 at seed 0
    assert reports["dp-lora"]["epsilon"]["verdict"] == "consistent"
    assert cli("gate", out / "dp-lora", "--max-auc", "0.6")[0] == 0
    assert cli("gate", out / "lora", "--max-auc", "0.6")[0] == 1
