"""--device/--dtype/--quantize: resolution on CPU and (mocked) CUDA machines, loading, cards, CLI errors.

No GPU is needed: the CUDA branches are exercised with torch.cuda mocked, and the real loading
paths run on the CPU (float32 and bfloat16).
"""

from __future__ import annotations

import json
import sys

import pytest
import torch

from dpaudit.errors import ConfigError, MissingDependencyError
from dpaudit.models.base import load_base
from dpaudit.scale import FanOut
from dpaudit.scale.device import CPU_FLOAT32, Placement, ResolvedPlacement, current_placement, placement_scope, placement_of
from dpaudit.scale.tasks import default_gpus_per_task
from dpaudit.train.loop import resolve_device
from tests.conftest import make_records


@pytest.fixture()
def fake_cuda(monkeypatch):
    """A machine with two bf16-capable GPUs, as far as the resolution code can tell."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"device": "gpu"}, "device"), ({"device": "cuda:x"}, "device"), ({"dtype": "float8"}, "dtype"), ({"quantize": "2bit"}, "quantize")],
)
def test_bad_requests_fail_at_construction(kwargs, field):
    with pytest.raises(ConfigError, match=f"`{field}`"):
        Placement(**kwargs)


def test_auto_is_cpu_float32_without_a_gpu():
    assert Placement().resolve(cuda_available=False) == CPU_FLOAT32
    assert Placement(dtype="bfloat16").resolve(cuda_available=False) == ResolvedPlacement("cpu", "bfloat16", None)
    with pytest.raises(ConfigError, match="no CUDA device is visible"):
        Placement(device="cuda").resolve(cuda_available=False)


def test_auto_is_cuda_bfloat16_with_a_gpu(fake_cuda):
    assert Placement().resolve() == ResolvedPlacement("cuda:0", "bfloat16", None)
    assert Placement(device="cuda:1", dtype="float16").resolve().device == "cuda:1"
    with pytest.raises(ConfigError, match="2 CUDA device"):
        Placement(device="cuda:2").resolve()


def test_quantize_is_refused_on_cpu_and_needs_bitsandbytes_on_cuda(fake_cuda, monkeypatch):
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        Placement(device="cpu", quantize="4bit").resolve()
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r"pip install 'dpaudit\[gpu\]'"):
        Placement(quantize="4bit").resolve()


def test_load_kwargs_put_the_weights_on_the_device_in_the_dtype():
    cpu = CPU_FLOAT32.load_kwargs()
    assert cpu["dtype"] is torch.float32 and "device_map" not in cpu and "quantization_config" not in cpu
    gpu = ResolvedPlacement("cuda:1", "bfloat16", None).load_kwargs()
    assert gpu["dtype"] is torch.bfloat16 and gpu["device_map"] == {"": "cuda:1"}
    qlora = ResolvedPlacement("cuda:0", "bfloat16", "4bit")
    config = qlora.load_kwargs()["quantization_config"]
    assert config.load_in_4bit and config.bnb_4bit_compute_dtype == torch.bfloat16
    assert ResolvedPlacement("cuda:0", "float16", "8bit").load_kwargs()["quantization_config"].load_in_8bit
    assert qlora.precision_tag == "bfloat16/4bit" and CPU_FLOAT32.precision_tag is None


def test_placement_scope_is_what_load_base_uses(micro_base_dir):
    assert current_placement() == Placement()
    with placement_scope(Placement(dtype="bfloat16")) as resolved:
        assert resolved == ResolvedPlacement("cpu", "bfloat16", None)
        loaded = load_base(str(micro_base_dir))
    assert current_placement() == Placement()  # the scope ends with the block
    assert loaded.placement == resolved and placement_of(loaded.model) == resolved
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}  # loaded in bf16, not cast from a float32 copy
    assert load_base(str(micro_base_dir)).placement == CPU_FLOAT32


def test_training_runs_where_the_base_is(micro_model):
    assert resolve_device("auto", model=micro_model) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device("cuda:0", model=micro_model)


def test_a_quantized_base_is_not_moved(fake_cuda, micro_model, micro_tokenizer):
    from dpaudit.train import TrainConfig, train_adapter

    micro_model.is_quantized = True  # what transformers sets on a bitsandbytes model
    with pytest.raises(ConfigError, match="quantized base stays on the device it was loaded on"):
        train_adapter(base_model=micro_model, tokenizer=micro_tokenizer, members=make_records(4),
                      config=TrainConfig(max_steps=1, checkpoint_every=0, device="cuda:1"), progress=False)


def test_gpus_per_task_share_a_local_gpu(fake_cuda, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert default_gpus_per_task(FanOut(workers=2)) == 0.5
    assert default_gpus_per_task(FanOut(workers=2, ray_address="auto")) == 1.0
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert default_gpus_per_task(FanOut(workers=2)) == 1.0


def test_no_gpu_means_no_gpus_per_task():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert default_gpus_per_task(FanOut(workers=2)) == 0.0


def test_bfloat16_training_keeps_lora_weights_in_float32(micro_model, micro_tokenizer):
    from dpaudit.train import DPConfig, TrainConfig, train_adapter

    result = train_adapter(base_model=micro_model.to(torch.bfloat16), tokenizer=micro_tokenizer, members=make_records(16),
                           config=TrainConfig(max_steps=2, batch_size=8, checkpoint_every=0, dp=DPConfig(noise_multiplier=1.0)),
                           progress=False)
    assert {t.dtype for t in result.adapter_state.values()} == {torch.float32}
    assert result.card["placement"] == {"device": "cpu", "dtype": "bfloat16", "quantize": None, "processes": 1}
    assert result.card["dp"]["realised_noise_std"] is not None  # the DP checks ran


@pytest.fixture()
def data_file(tmp_path):
    path = tmp_path / "private.jsonl"
    path.write_text("".join(json.dumps(r.to_json()) + "\n" for r in make_records(20)), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--device", "cuda"), "no CUDA device is visible"),
        (("--quantize", "4bit"), "needs a CUDA GPU"),
        (("--dtype", "float8"), "`dtype` must be one of"),
    ],
)
def test_train_refuses_what_this_machine_cannot_do_in_one_line(cli, data_file, micro_base_dir, tmp_path, args, message):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, _, stderr = cli("train", "--data", data_file, "--base", micro_base_dir, "--out", tmp_path / "o", *args)
    assert code == 2 and message in stderr and "Traceback" not in stderr


def test_attack_with_workers_but_without_ray_names_the_extra(cli, monkeypatch, tmp_path, micro_base_dir, data_file):
    from dpaudit.train import TrainConfig, run_training

    run_training(data_file=data_file, base=str(micro_base_dir), out_dir=tmp_path / "a", progress=False,
                 config=TrainConfig(max_steps=1, batch_size=4, checkpoint_every=0))
    monkeypatch.setitem(sys.modules, "ray", None)
    code, _, stderr = cli("attack", "--adapter", tmp_path / "a", "--attacks", "lira", "--shadows", "2",
                          "--lira-fixed-variance", "0.05", "--workers", "2")
    assert code == 2 and "pip install 'dpaudit[scale]'" in stderr


def test_every_model_command_takes_the_placement_options(cli):
    for command in (("train",), ("attack",), ("eval",), ("audit",), ("compare",), ("gate",), ("demo",), ("data", "stats")):
        code, out, _ = cli(*command, "--help")
        assert code == 0 and all(option in out for option in ("--device", "--dtype", "--quantize")), command
