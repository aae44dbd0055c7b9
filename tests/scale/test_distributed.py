"""`train --dp --nproc 2`: two gloo processes give the single-process σ, q, T and ε, and a trained adapter."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from dpaudit.errors import ConfigError
from dpaudit.train import DPConfig, TrainConfig
from dpaudit.train.distributed import check_distributed_config, run_distributed_training
from dpaudit.train.trainer import run_training
from tests.conftest import make_records


@pytest.fixture()
def data_file(tmp_path):
    path = tmp_path / "private.jsonl"
    path.write_text("".join(json.dumps(r.to_json()) + "\n" for r in make_records(40)), encoding="utf-8")
    return path


CONFIG = TrainConfig(max_steps=4, batch_size=6, seed=3, checkpoint_every=0, dp=DPConfig(noise_multiplier=1.0))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (TrainConfig(), "needs --dp"),
        (TrainConfig(dp=DPConfig(noise_multiplier=1.0, clipping="adaptive")), "clipping"),
        (TrainConfig(dp=DPConfig(noise_multiplier=1.0), gradient_canaries=2), "gradient_canaries"),
    ],
)
def test_unsupported_distributed_configs_are_refused(config, message):
    with pytest.raises(ConfigError, match=message):
        check_distributed_config(config, nproc=2)
    check_distributed_config(config, nproc=1)  # one process: anything goes


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_accounting(data_file, micro_base_dir, tmp_path, isolated_cache):
    single = run_training(data_file=data_file, base=str(micro_base_dir), out_dir=tmp_path / "one", config=CONFIG, progress=False).card
    run_distributed_training(nproc=2, data_file=data_file, base=str(micro_base_dir), out_dir=tmp_path / "two", config=CONFIG, progress=False)
    card = json.loads((tmp_path / "two" / "dpaudit.json").read_text())
    for key in ("noise_multiplier", "sample_rate", "steps", "delta", "epsilon", "expected_batch_size"):
        assert card["dp"][key] == single["dp"][key], key
    assert card["placement"]["processes"] == 2 and single["placement"]["processes"] == 1
    assert card["dp"]["realised_noise_std"] == pytest.approx(1.0, rel=0.3)  # rank 0's first-step noise check ran
    weights = load_file(str(tmp_path / "two" / "adapter_model.safetensors"))
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    assert lora_b and all(float(t.abs().sum()) > 0 for t in lora_b)  # B starts at zero: training moved it
    assert sorted(p.name for p in (tmp_path / "two").iterdir() if p.name.startswith(".")) == []  # no checkpoint
