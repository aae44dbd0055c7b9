"""Issue #10 at the gate and in the rendering: no number from too few non-members, no ε from seeded noise."""

from __future__ import annotations

import pytest

from dpaudit.evaluators.mia_metrics import mia_metrics
from dpaudit.report import display
from dpaudit.report.gate import GateThresholds, evaluate_gate
from dpaudit.report.markdown import render_markdown
from tests.report.reports import make_example_report, mutated, save_report_json


@pytest.fixture(autouse=True)
def _no_ambient_pyproject(tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


@pytest.fixture(scope="module")
def report():
    """200 non-members per attack: TPR at 0.1% and 1% FPR are not reported, at 10% they are."""
    return make_example_report(name="dp-lora", dp_epsilon=8.0, leakage=0.1, seed=5)


def test_null_tpr_exits_2_naming_the_non_members_needed(cli, tmp_path, report):
    assert report["attacks"]["ref"]["tpr_at_fpr"]["0.01"] is None
    code, _, err = cli("gate", save_report_json(report, tmp_path / "r"), "--max-tpr-at-fpr", "0.01:0.5")
    assert code == 2
    assert "needs ≥ 500 non-members" in err and "had 200" in " ".join(err.split())
    code, _, err = cli("gate", tmp_path / "r", "--max-tpr-at-fpr", "0.1:0.9")
    assert code == 0, err


def test_seeded_noise_has_no_epsilon_to_gate(tmp_path, report):
    seeded = mutated(mutated(report, "epsilon.theory", None), "epsilon.no_guarantee_reason", "noise derived from a recorded seed")
    seeded = mutated(seeded, "epsilon.verdict", "no-guarantee")
    (check,) = evaluate_gate(seeded, GateThresholds(max_epsilon=1000.0)).checks
    assert not check.passed and check.basis == "noise derived from a recorded seed"
    assert display.headline(seeded)["epsilon_theory"] == "∞ (noise derived from a recorded seed)"


def test_rendering_says_why_a_tpr_is_missing_and_shows_group_privacy(report):
    _, rows = display.attack_rows(report)
    assert rows[0]["tprs"][:2] == ["needs ≥ 5000 non-members", "needs ≥ 500 non-members"]
    grouped = mutated(report, "epsilon.group_privacy", {"k": 2, "epsilon": None, "delta": None, "meaningful": False})
    grouped = mutated(grouped, "epsilon.accountants_unavailable", {"prv": "PRV's grid would need ≈ 4 GiB"})
    text = render_markdown(grouped)
    assert "group privacy: a record repeated 2× has no meaningful DP guarantee" in text
    assert "prv: n/a (PRV's grid would need ≈ 4 GiB)" in text


def test_metrics_of_ten_per_class_are_reported():
    metrics = mia_metrics(scores=list(range(20)), labels=[0] * 10 + [1] * 10, n_bootstrap=10)
    assert metrics["auc"] == 1.0 and metrics["tpr_at_fpr"]["0.1"] is None  # 0.1·10 = 1 < 5
