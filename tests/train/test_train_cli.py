"""`dpaudit train` from the command line: it trains, and bad input is one line with exit 2."""

from __future__ import annotations

import json

import pytest


def test_train_with_dp_writes_adapter_and_card(cli, data_file, micro_base_dir, tmp_path):
    out = tmp_path / "dp"
    code, stdout, stderr = cli("train", "--data", data_file, "--base", micro_base_dir, "--out", out, "--dp",
                               "--target-epsilon", "8", "--max-steps", "3", "--batch-size", "5", "--json")
    assert code == 0, stderr
    card = json.loads(stdout)["card"]
    assert card["dp"]["epsilon"] <= 8.0 and card["dp"]["steps"] == 3
    assert json.loads((out / "dpaudit.json").read_text()) == card
    assert (out / "adapter_model.safetensors").is_file() and (out / "members.txt").is_file()


def test_train_without_dp_prints_a_summary(cli, data_file, micro_base_dir, tmp_path):
    code, stdout, stderr = cli("train", "--data", data_file, "--base", micro_base_dir, "--out", tmp_path / "plain",
                               "--method", "dylora", "--rank", "4", "--max-steps", "2", "--batch-size", "5")
    assert code == 0, stderr
    assert "no DP" in stdout and "dylora" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dp", "--noise-multiplier", "1", "--delta", "0.1"], "must be < 1/N"),
        (["--dp", "--noise-multiplier", "1", "--sampler", "shuffle"], "Poisson"),
        (["--noise-multiplier", "1"], "--noise-multiplier needs --dp"),
        (["--dp"], "exactly one of `noise_multiplier` and `target_epsilon`"),
        (["--dp", "--noise-multiplier", "1", "--max-grad-norm", "0"], "`max_grad_norm` must be > 0, got 0.0"),
        (["--method", "qlora"], "`method` must be one of"),
        (["--canary-repeats", "1,x"], "comma-separated integers"),
        (["--canary-inclusion", "0.5"], "need --canaries"),
        (["--target-modules", "nope"], "not found in the base model"),
        (["--gradient-canaries", "10"], "`gradient_canaries` need DP"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, data_file, micro_base_dir, tmp_path, args, message):
    out = tmp_path / "out"
    code, stdout, stderr = cli("train", "--data", data_file, "--base", micro_base_dir, "--out", out, "--max-steps", "1",
                               "--batch-size", "5", *args)
    assert code == 2
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], stderr
    assert errors[0] == stderr.strip().splitlines()[-1]
    assert not out.exists() or not (out / "dpaudit.json").exists()


def test_missing_data_file(cli, tmp_path):
    code, _, stderr = cli("train", "--data", tmp_path / "nope.jsonl", "--out", tmp_path / "out")
    assert code == 2 and "nope.jsonl" in stderr and len(stderr.strip().splitlines()) == 1
