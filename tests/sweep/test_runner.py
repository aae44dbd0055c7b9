"""Running grids on the micro base: caching, resume after a killed run, failures, serial = parallel, CLI."""

from __future__ import annotations

import json
import time

import pyarrow.parquet as pq
import pytest

from dpaudit.errors import InputError
from dpaudit.sweep.cell import RESULT_FILE, cell_dir, run_cell
from dpaudit.sweep.grid import parse_grid
from dpaudit.sweep.runner import plan_sweep, run_sweep, sweep_status
from tests.sweep.conftest import micro_grid

# Columns that legitimately differ between two runs of the same cells (timing, where they ran).
VOLATILE = {"wall_time_s"}


def _metrics(rows):
    return [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows]


def test_a_sweep_writes_its_tables_and_a_second_run_reuses_every_cell(tmp_path, grid_text):
    grid = parse_grid(grid_text, source="micro.toml")
    first = run_sweep(grid, tmp_path / "s", progress=False)
    assert (first.planned, first.ran, first.reused, first.failed) == (2, 2, 0, [])
    for name in ("sweep.csv", "sweep.parquet", "sweep.md", "sweep.html", "sweep.json", "plan.json"):
        assert (tmp_path / "s" / name).is_file(), name
    table = pq.read_table(tmp_path / "s" / "sweep.parquet").to_pylist()
    assert [r["rank"] for r in table] == [1, 2] and all(0 <= r["worst_auc"] <= 1 for r in table)
    assert all(r["dp"] is False and r["status"] == "done" for r in table)

    start = time.perf_counter()
    again = run_sweep(grid, tmp_path / "s", progress=False)
    assert (again.ran, again.reused) == (0, 2)
    assert time.perf_counter() - start < 10
    assert _metrics(again.rows) == _metrics(first.rows)


def test_changing_one_axis_value_reruns_only_that_cell(tmp_path, micro_base_dir, data_file, isolated_cache):
    out = tmp_path / "s"
    one = plan_sweep(parse_grid(micro_grid(micro_base_dir, data_file, ranks=(1, 2)), source="a"), out)
    two = plan_sweep(parse_grid(micro_grid(micro_base_dir, data_file, ranks=(1, 4)), source="b"), out)
    assert one[0].key == two[0].key and one[1].key != two[1].key
    seeds = plan_sweep(parse_grid(micro_grid(micro_base_dir, data_file, ranks=(1,)), source="c"), out, seeds=[0, 1])
    assert seeds[0].key == one[0].key and seeds[1].key != seeds[0].key and seeds[1].payload["train"]["seed"] == 1
    data_file.write_text(data_file.read_text() + data_file.read_text().splitlines()[0].replace('"r0"', '"r99"') + "\n")
    changed = plan_sweep(parse_grid(micro_grid(micro_base_dir, data_file, ranks=(1,)), source="d"), out)
    assert changed[0].key != one[0].key  # the data file's hash is part of the identity


def test_resume_after_a_killed_run_finishes_only_the_unfinished_cells(tmp_path, grid_text):
    grid = parse_grid(grid_text, source="micro.toml")
    out = tmp_path / "s"
    out.mkdir()
    (out / "sweep.json").write_text("{}")  # the run that was killed had claimed the directory
    planned = plan_sweep(grid, out)
    run_cell(planned[0].payload)  # cell 1 finished before the kill
    trained = planned[1].payload  # cell 2 was killed during its audit: adapter written, no result
    from dpaudit.train import run_training
    from dpaudit.train.config import TrainConfig

    adapter = cell_dir(out, trained["key"]) / "adapter"
    run_training(data_file=trained["data_file"], base=trained["base"], out_dir=adapter,
                 config=TrainConfig.from_dict(trained["train"]), progress=False)
    weights = (adapter / "adapter_model.safetensors").stat().st_mtime_ns
    assert [r["status"] for r in sweep_status_or_plan(out, grid)] == ["done", "pending"]

    outcome = run_sweep(grid, out, progress=False)
    assert (outcome.reused, outcome.ran, outcome.failed) == (1, 1, [])
    assert (adapter / "adapter_model.safetensors").stat().st_mtime_ns == weights  # audited, not retrained
    assert [r["status"] for r in sweep_status(out)] == ["done", "done"]


def sweep_status_or_plan(out, grid):
    """Status rows of a sweep whose plan.json was never written (killed before the first write)."""
    from dpaudit.sweep.cell import read_result

    return [{"status": "done" if read_result(cell_dir(out, p.key)) else "pending"} for p in plan_sweep(grid, out)]


def test_a_failed_cell_is_recorded_and_does_not_stop_the_others(tmp_path, micro_base_dir, data_file, isolated_cache, cli):
    # batch 20 > the 16 members: passes validation (the member count is known only when training) and fails.
    text = micro_grid(micro_base_dir, data_file).replace('values = [1, 2]', 'values = [{ rank = 1 }, { rank = 2, batch_size = 20, dp = true, noise_multiplier = 1.0 }]')
    grid_file = tmp_path / "g.toml"
    grid_file.write_text(text)
    code, out, err = cli("sweep", "--grid", grid_file, "--out", tmp_path / "s", "--json")
    assert code == 1, err
    report = json.loads(out)
    assert len(report["failed"]) == 1 and "batch_size" in report["failed"][0]["error"]
    statuses = sorted(r["status"] for r in report["rows"])
    assert statuses == ["done", "failed"]
    code, out, _ = cli("sweep", "status", tmp_path / "s", "--json")
    assert code == 1 and sorted(r["status"] for r in json.loads(out)) == ["done", "failed"]
    assert "failed" in (tmp_path / "s" / "sweep.md").read_text()


def test_a_foreign_directory_is_refused_before_any_work(tmp_path, grid_text):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("my own file")
    with pytest.raises(InputError, match="did not write"):
        run_sweep(parse_grid(grid_text, source="micro.toml"), target, progress=False)
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]


def test_status_of_a_directory_that_is_no_sweep(tmp_path, cli):
    code, _, err = cli("sweep", "status", tmp_path)
    assert code == 2 and "no sweep here" in err


@pytest.mark.slow
def test_serial_and_parallel_sweeps_give_identical_tables(tmp_path, grid_text):
    pytest.importorskip("ray")
    from dpaudit.scale.tasks import FanOut

    grid = parse_grid(grid_text, source="micro.toml")
    serial = run_sweep(grid, tmp_path / "serial", progress=False)
    parallel = run_sweep(grid, tmp_path / "parallel", fanout=FanOut(workers=2), progress=False)
    assert parallel.ran == 2 and not parallel.failed
    assert _metrics(parallel.rows) == _metrics(serial.rows)
    assert json.loads((tmp_path / "parallel" / "plan.json").read_text())[0]["key"] == serial.rows[0]["cell"]


def test_cli_runs_a_grid_and_prints_the_table(tmp_path, grid_text, cli):
    grid_file = tmp_path / "g.toml"
    grid_file.write_text(grid_text)
    code, out, err = cli("sweep", "--grid", grid_file, "--out", tmp_path / "s", "--seed", "0")
    assert code == 0, err
    assert "verdict" in out and "loss" in out and "2 cells: 0 reused, 2 run, 0 failed" in out
    code, out, _ = cli("sweep", "--grid", grid_file, "--out", tmp_path / "s", "--json")
    assert code == 0 and (json.loads(out)["reused"], json.loads(out)["ran"]) == (2, 0)
    assert (tmp_path / "s" / "cells").is_dir() and len(list((tmp_path / "s" / "cells").iterdir())) == 2
    assert all((p / RESULT_FILE).is_file() for p in (tmp_path / "s" / "cells").iterdir())


def test_cli_prints_a_preset_and_refuses_two_sources(tmp_path, cli):
    code, out, _ = cli("sweep", "--print-preset", "rank")
    assert code == 0 and 'name = "rank"' in out
    assert cli("sweep", "--preset", "rank", "--grid", tmp_path / "g.toml")[0] == 2
    code, _, err = cli("sweep", "--preset", "rnak")
    assert code == 2 and "presets: table1" in err


def test_a_cells_identity_is_its_non_default_values_its_data_and_the_version(monkeypatch):
    import dpaudit.sweep.cell as cell_module
    from dpaudit.sweep.cell import cell_hash
    from dpaudit.sweep.grid import identity_json, resolve, resolved_json

    def key(options, seed=0, data="a" * 64):
        return cell_hash(identity_json(resolved_json(resolve(options, seed=seed))), data_sha256=data)

    identity = identity_json(resolved_json(resolve({"rank": 4, "dp": True, "target_epsilon": 2.0}, seed=0)))
    assert identity["train"] == {"rank": 4, "seed": 0, "dp": {"target_epsilon": 2.0}}  # defaults left out
    assert key({"rank": 4}) == key({"rank": 4, "dropout": 0.0})  # spelling out a default changes nothing
    assert len({key({"rank": 4}), key({"rank": 8}), key({"rank": 4}, seed=1), key({"rank": 4}, data="b" * 64)}) == 4
    before = key({"rank": 4})
    monkeypatch.setattr(cell_module, "__version__", "99.0")
    assert key({"rank": 4}) != before


def test_a_federated_grid_trains_each_cell_with_fedtrain_and_tabulates_bytes(tmp_path, micro_base_dir, data_file, isolated_cache):
    text = micro_grid(micro_base_dir, data_file, extra='fed_clients = 2\nfed_rounds = 2\nfed_dp = "record"\nfed_noise_multiplier = 1.0\n').replace(
        'name = "rank"\nvalues = [1, 2]', 'name = "bandwidth"\noption = "fed_bandwidth"\nvalues = [1000, 1000000]')
    outcome = run_sweep(parse_grid(text, source="fed.toml"), tmp_path / "s", progress=False)
    assert outcome.failed == [] and outcome.ran == 2
    rows = pq.read_table(tmp_path / "s" / "sweep.parquet").to_pylist()
    assert [r["fed_bandwidth"] for r in rows] == [1000, 1000000] and all(r["fed_dp"] == "record" for r in rows)
    for row in rows:
        card = json.loads((cell_dir(tmp_path / "s", row["cell"]) / "adapter" / "dpaudit.json").read_text())
        assert card["federated"]["mode"] == "record" and len(card["federated"]["clients"]) == 2
        assert row["bytes_sent"] == card["federated"]["bytes_sent"]
        assert row["epsilon"] == pytest.approx(card["dp"]["epsilon"])
    assert rows[0]["bytes_sent"] <= 2 * 2 * 1000 < rows[1]["bytes_sent"]  # 2 clients × 2 rounds within the cap
    assert "uploaded, all clients and rounds (MB)" in (tmp_path / "s" / "sweep.md").read_text()
