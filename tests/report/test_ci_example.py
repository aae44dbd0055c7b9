"""The ready-to-copy GitHub Actions workflow: valid YAML, right step order, and a gate line that runs."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.report.reports import save_report_json

yaml = pytest.importorskip("yaml")
WORKFLOW = Path(__file__).resolve().parents[2] / "examples" / "ci" / "dpaudit-gate.yml"


@pytest.fixture(scope="module")
def steps():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    (job,) = workflow["jobs"].values()
    return job["steps"]


def run_lines(steps, needle):
    return [line.strip() for step in steps for line in step.get("run", "").splitlines() if needle in line]


def test_installs_cpu_torch_before_dpaudit(steps):
    install = next(step["run"] for step in steps if "pip install" in step.get("run", ""))
    assert install.index("torch --index-url") < install.index('"$DPAUDIT_SPEC"')
    assert "/whl/cpu" in install


def test_summary_is_posted_even_on_failure(steps):
    summary = next(step for step in steps if "GITHUB_STEP_SUMMARY" in step.get("run", ""))
    assert summary["if"] == "always()"
    assert "reports/ci/report.md" in summary["run"]
    order = [i for i, step in enumerate(steps) if "dpaudit audit" in step.get("run", "") or "dpaudit gate" in step.get("run", "")]
    assert len(order) == 2 and order[0] < order[1] < steps.index(summary)


def test_the_gate_line_runs_on_a_report(steps, cli, tmp_path, monkeypatch, full_report, dp_report):
    (line,) = run_lines(steps, "dpaudit gate")
    args = shlex.split(line)[1:]
    assert args[:2] == ["gate", "reports/ci"] and "--max-auc" in args
    monkeypatch.chdir(tmp_path)
    save_report_json(dp_report, tmp_path / "reports" / "ci")
    assert cli(*args)[0] == 0
    assert (tmp_path / "reports" / "ci" / "gate.xml").is_file()
    save_report_json(full_report, tmp_path / "reports" / "ci")
    assert cli(*args)[0] == 1
