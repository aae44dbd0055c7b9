"""`dpaudit epsilon` end to end through the in-process CLI: outputs and exit codes (0, 1, 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dpaudit.privacy.events import Composed, PoissonSampledGaussian, PrivacyLedger
from dpaudit.privacy.scores_io import write_scores_csv

THEORY = ["epsilon", "--noise-multiplier", "1.0", "--sample-rate", "0.01", "--steps", "1000", "--delta", "1e-5"]


def test_theory_json_keys(cli):
    code, out, err = cli(*THEORY, "--accountant", "all", "--json")
    assert code == 0, err
    data = json.loads(out)
    for key in ("epsilon", "epsilons", "noise_multiplier", "sample_rate", "steps", "delta", "no_amplification_epsilon"):
        assert key in data
    assert set(data["epsilons"]) == {"prv", "rdp"}
    assert data["epsilon"] == min(data["epsilons"].values()) == pytest.approx(1.83, abs=0.02)
    assert data["no_amplification_epsilon"] > 100 * data["epsilon"]


def test_theory_table(cli):
    code, out, _ = cli(*THEORY, "--accountant", "rdp")
    assert code == 0
    assert "rdp" in out and "no-amplification bound" in out and "subsampling" in out


def test_target_epsilon_prints_sigma(cli):
    code, out, err = cli(
        "epsilon", "--target-epsilon", "4", "--sample-rate", "1", "--steps", "10", "--delta", "1e-5", "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["target_epsilon"] == 4.0
    assert 0.95 * 4 <= data["epsilon"] <= 4.0
    assert data["noise_multiplier"] == data["noise_multipliers"]["prv"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--noise-multiplier", "1", "--sample-rate", "1.5", "--steps", "10", "--delta", "1e-5"], "`sample_rate`"),
        (["--noise-multiplier", "0", "--sample-rate", "0.1", "--steps", "10", "--delta", "1e-5"], "`noise_multiplier`"),
        (["--noise-multiplier", "1", "--sample-rate", "0.1", "--steps", "0", "--delta", "1e-5"], "`steps`"),
        (["--noise-multiplier", "1", "--sample-rate", "0.1", "--steps", "10", "--delta", "1"], "`delta`"),
        (["--noise-multiplier", "1", "--sample-rate", "0.1", "--steps", "10"], "--delta"),
        (["--sample-rate", "0.1", "--steps", "10", "--delta", "1e-5"], "exactly one of --noise-multiplier"),
        (
            [
                "--noise-multiplier",
                "1",
                "--sample-rate",
                "0.1",
                "--steps",
                "10",
                "--delta",
                "1e-5",
                "--accountant",
                "x",
            ],
            "unknown accountant 'x'",
        ),
        (["--target-epsilon", "1e-9", "--sample-rate", "1", "--steps", "1", "--delta", "1e-5"], "unreachable"),
    ],
)
def test_theory_bad_input_exits_2_with_one_line(cli, args, needle):
    code, out, err = cli("epsilon", *args)
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1


def _scores(path, *, mu, m=400, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, m)
    scores = rng.normal(size=m) + mu * labels
    return write_scores_csv(path, [f"c{i}" for i in range(m)], labels, scores)


def test_empirical(cli, tmp_path):
    path = _scores(tmp_path / "loss.csv", mu=2.0)
    code, out, err = cli("epsilon", "empirical", "--scores", path, "--delta", "1e-5", "--json", "--seed", "3")
    assert code == 0, err
    data = json.loads(out)
    assert set(data["results"]) == {"clopper-pearson", "one-run", "gdp"}
    assert data["results"]["one-run"]["ceiling"] > data["results"]["one-run"]["epsilon_lb"] > 0
    assert data["results"]["gdp"]["kind"] == "estimate"
    code, out, _ = cli("epsilon", "empirical", "--scores", path, "--delta", "1e-5", "--method", "one-run")
    assert code == 0 and "one-run" in out and "clopper" not in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--delta", "1e-5", "--method", "magic"], "`--method`"),
        (["--delta", "0"], "`delta`"),
        (["--delta", "1e-5", "--confidence", "1.5"], "`confidence`"),
    ],
)
def test_empirical_bad_input(cli, tmp_path, args, needle):
    path = _scores(tmp_path / "loss.csv", mu=1.0)
    code, _, err = cli("epsilon", "empirical", "--scores", path, *args)
    assert code == 2 and needle in err


def test_empirical_bad_file(cli, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,member,score\na,1,0.3\nb,0,inf\n")
    code, _, err = cli("epsilon", "empirical", "--scores", bad, "--delta", "1e-5")
    assert code == 2 and "bad.csv:3 field 'score'" in err
    code, _, err = cli("epsilon", "empirical", "--scores", tmp_path / "none.csv", "--delta", "1e-5")
    assert code == 2 and "dpaudit attack --save-scores" in err


def _adapter(tmp_path, *, sigma, q, steps, dp=True):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    ledger = PrivacyLedger([Composed(PoissonSampledGaussian(sigma, q), steps)])
    card = {"method": "lora", "dp": None}
    if dp:
        card["dp"] = {
            "noise_multiplier": sigma,
            "max_grad_norm": 1.0,
            "sample_rate": q,
            "steps": steps,
            "delta": 1e-5,
            "accountant": "prv",
            "epsilon": ledger.epsilon(1e-5),
            "clipping": "flat",
            "events": ledger.to_json(),
        }
    (adapter / "dpaudit.json").write_text(json.dumps(card))
    return adapter


def test_compare_consistent_exits_0(cli, tmp_path):
    adapter = _adapter(tmp_path, sigma=1.0, q=0.01, steps=1000)
    scores = tmp_path / "scores"
    _scores(scores / "loss.csv", mu=0.3)
    code, out, err = cli("epsilon", "compare", "--adapter", adapter, "--scores", scores, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["verdict"] == "consistent"
    assert data["epsilon_theory"] == pytest.approx(1.83, abs=0.02)
    code, out, _ = cli("epsilon", "compare", "--adapter", adapter, "--scores", scores)
    assert code == 0 and "verdict: consistent" in out


def test_compare_violation_exits_1_after_printing(cli, tmp_path):
    adapter = _adapter(tmp_path, sigma=50.0, q=0.01, steps=10)
    scores = tmp_path / "scores"
    _scores(scores / "loss.csv", mu=10.0)
    code, out, err = cli("epsilon", "compare", "--adapter", adapter, "--scores", scores, "--json")
    assert code == 1
    assert json.loads(out)["verdict"] == "VIOLATION"
    assert "exceeds the theoretical" in err
    code, out, err = cli("epsilon", "compare", "--adapter", adapter, "--scores", scores)
    assert code == 1 and "VIOLATION" in out


def test_compare_no_guarantee(cli, tmp_path):
    adapter = _adapter(tmp_path, sigma=1.0, q=0.1, steps=1, dp=False)
    scores = tmp_path / "scores"
    _scores(scores / "loss.csv", mu=3.0)
    code, out, err = cli("epsilon", "compare", "--adapter", adapter, "--scores", scores, "--delta", "1e-5", "--json")
    assert code == 0, err
    assert json.loads(out)["verdict"] == "no-guarantee"


def test_compare_bad_input_exits_2(cli, tmp_path):
    scores = tmp_path / "scores"
    _scores(scores / "loss.csv", mu=1.0)
    code, _, err = cli("epsilon", "compare", "--adapter", tmp_path / "missing", "--scores", scores)
    assert code == 2 and "dpaudit train" in err
    adapter = tmp_path / "a"
    adapter.mkdir()
    (adapter / "dpaudit.json").write_text("{not json")
    code, _, err = cli("epsilon", "compare", "--adapter", adapter, "--scores", scores)
    assert code == 2 and "dpaudit.json:1" in err
    (adapter / "dpaudit.json").write_text(json.dumps({"dp": {"sample_rate": 0.1, "steps": 3, "delta": 1e-5}}))
    code, _, err = cli("epsilon", "compare", "--adapter", adapter, "--scores", scores)
    assert code == 2 and "noise_multiplier" in err and "dpaudit.json" in err
    good = _adapter(tmp_path / "g", sigma=1.0, q=0.1, steps=3) if (tmp_path / "g").mkdir() is None else None
    code, _, err = cli("epsilon", "compare", "--adapter", good, "--scores", tmp_path / "empty")
    assert code == 2 and "--save-scores" in err


def test_unparsable_option_exits_2(cli):
    code, _, _ = cli("epsilon", "--noise-multiplier", "1", "--sample-rate", "0.1", "--steps", "abc", "--delta", "1e-5")
    assert code == 2
