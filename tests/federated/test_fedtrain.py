"""`dpaudit fedtrain` end to end on the micro base: the card, equivalence with `train`, the client-level attack."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from dpaudit.federated.runner import run_fedtrain
from dpaudit.train import TrainConfig, run_training
from tests.federated.conftest import LOCAL, fed_config


def test_one_client_one_round_without_dp_equals_dpaudit_train(tmp_path, fed_data, micro_base_dir):
    local = TrainConfig(epochs=2.0, batch_size=4, max_length=48, seed=3)
    run_fedtrain(data_file=fed_data, base=str(micro_base_dir), out_dir=tmp_path / "fed",
                 config=fed_config(clients=1, rounds=1, train=local), progress=False)
    run_training(data_file=fed_data, base=str(micro_base_dir), out_dir=tmp_path / "train", config=local, progress=False)
    fed = load_file(tmp_path / "fed" / "adapter_model.safetensors")
    plain = load_file(tmp_path / "train" / "adapter_model.safetensors")
    assert fed.keys() == plain.keys()
    assert any(v.abs().sum() > 0 for k, v in plain.items() if "lora_B" in k)  # it trained
    for key in plain:
        torch.testing.assert_close(fed[key], plain[key], rtol=1e-5, atol=1e-6)
    assert (tmp_path / "fed" / "members.txt").read_text() == (tmp_path / "train" / "members.txt").read_text()


@pytest.mark.parametrize("mode", ["none", "local", "central", "record"])
def test_each_mode_writes_an_adapter_whose_card_states_unit_adversary_and_epsilon(cli, tmp_path, fed_data, micro_base_dir, mode):
    out = tmp_path / "fed"
    # rdp: calibration in seconds (this test is about the card, not the accountant's tightness).
    dp = [] if mode == "none" else ["--dp", mode, "--target-epsilon", "8", "--accountant", "rdp"]
    code, stdout, stderr = cli("fedtrain", "--data", fed_data, "--base", micro_base_dir, "--clients", 4, "--rounds", 3,
                               "--clients-per-round", 2, "--partition", "category", "--batch-size", 4, "--max-length", 48,
                               "--backend", "plain", "--bandwidth", 3000, *dp, "--out", out)
    assert code == 0, stderr
    card = json.loads((out / "dpaudit.json").read_text())
    fed = card["federated"]
    assert fed["mode"] == mode and len(fed["clients"]) == 4 and fed["held_out_clients"]
    assert len(fed["log"]) == 3 and all(v <= 3000 for r in fed["log"] for v in r["bytes_sent"].values())
    assert fed["bytes_sent"] == sum(sum(r["bytes_sent"].values()) for r in fed["log"])
    assert "round 3/3" in stdout
    if mode == "none":
        assert card["dp"] is None and "no DP" in stdout
        return
    unit = "record" if mode == "record" else "client"
    assert fed["unit"] == unit and fed["guarantees"][unit]["epsilon"] <= 8.0
    assert card["dp"]["epsilon"] <= 8.0 and card["dp"]["events"]
    assert f"per {unit}, against" in stdout
    if mode == "central":
        assert card["dp"]["sample_rate"] == 0.5 and card["dp"]["steps"] == 3  # q = M/K, T = R
    if mode == "local":
        joined = fed["rounds_joined"]
        assert max(fed["epsilon_per_client"].values()) == pytest.approx(card["dp"]["epsilon"])
        assert all(fed["epsilon_per_client"][c] <= card["dp"]["epsilon"] for c in joined)


def test_attack_on_a_federated_adapter_adds_the_client_level_attack(cli, tmp_path, fed_data, micro_base_dir):
    # 10 clients: the MIA metrics need at least 10 units per class (fewer give NaN, with a warning).
    out = tmp_path / "fed"
    run_fedtrain(data_file=fed_data, base=str(micro_base_dir), out_dir=out, config=fed_config(clients=10, rounds=1),
                 progress=False)
    code, stdout, stderr = cli("attack", "--adapter", out, "--base", micro_base_dir, "--attacks", "loss,zlib",
                               "--shadows", 0, "--unit", "client", "--json")
    assert code == 0, stderr
    result = json.loads(stdout)
    client = result["client_level"]
    assert result["unit"] == "client" and set(client["attacks"]) == {"loss", "zlib"}
    assert client["labels"].count(1) == 10 and client["labels"].count(0) == 10
    assert 0.0 <= client["attacks"]["loss"]["auc"] <= 1.0
    assert client["worst_case"] in {"loss", "zlib"}


def test_audit_with_unit_client_compares_client_level_bounds_with_the_client_epsilon(cli, tmp_path, fed_data, micro_base_dir):
    out = tmp_path / "fed"
    run_fedtrain(data_file=fed_data, base=str(micro_base_dir), out_dir=out, progress=False,
                 config=fed_config(clients=10, rounds=1, dp="central", noise_multiplier=1.0,
                                   insecure_reproducible_noise=False))  # seeded noise: no guarantee to compare
    code, stdout, stderr = cli("audit", "--adapter", out, "--base", micro_base_dir, "--attacks", "loss,zlib", "--quick",
                               "--unit", "client", "--out", tmp_path / "report")
    assert code == 0, stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    card = json.loads((out / "dpaudit.json").read_text())
    assert report["unit"] == "client" and report["client_level"]["worst_case"] in {"loss", "zlib"}
    assert report["epsilon"]["theory"] is not None
    client_eps = card["federated"]["guarantees"]["client"]["epsilon"]
    assert min(report["epsilon"]["theory"].values()) <= client_eps * 1.05
    assert "central DP protects each client against anyone who sees the released adapter" in " ".join(stdout.split())


def test_unit_client_on_a_plain_adapter_is_refused(cli, tmp_path, fed_data, micro_base_dir):
    run_training(data_file=fed_data, base=str(micro_base_dir), out_dir=tmp_path / "plain", config=LOCAL, progress=False)
    code, _, stderr = cli("attack", "--adapter", tmp_path / "plain", "--base", micro_base_dir, "--attacks", "loss",
                          "--shadows", 0, "--unit", "client")
    assert code == 2 and "federated adapter" in stderr


def test_without_flower_fedtrain_says_how_to_install_it(cli, tmp_path, fed_data, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "flwr" else real(name, *a))
    code, _, stderr = cli("fedtrain", "--data", fed_data, "--out", tmp_path / "fed")
    assert code == 2
    assert "pip install 'dpaudit[fed]'" in stderr and len(stderr.strip().splitlines()) == 1


def test_bad_options_fail_in_one_line(cli, tmp_path, fed_data):
    code, _, stderr = cli("fedtrain", "--data", fed_data, "--dp", "central", "--backend", "plain", "--out", tmp_path / "f")
    assert code == 2 and "exactly one of `noise_multiplier` and `target_epsilon`" in stderr


def test_deployment_backend_prepares_the_plan_for_flwr_run(cli, tmp_path, fed_data, micro_base_dir):
    pytest.importorskip("flwr", reason="needs the [fed] extra: pip install 'dpaudit[fed]'")
    from dpaudit.federated.plan import FedPlan

    out = tmp_path / "fed"
    code, stdout, stderr = cli("fedtrain", "--data", fed_data, "--base", micro_base_dir, "--clients", 3,
                               "--backend", "deployment", "--out", out, "--json")
    assert code == 0, stderr
    shown = json.loads(stdout)
    plan = FedPlan.load(shown["plan"])
    assert plan.out == str(out.resolve()) and len(plan.clients) == 3
    assert sum("partition-id=" in c for c in shown["commands"]) == 3
    assert any(c.startswith("flwr run examples/federated") and shown["plan"] in c for c in shown["commands"])
    assert not out.exists()  # the ServerApp writes it at the end of the `flwr run`
