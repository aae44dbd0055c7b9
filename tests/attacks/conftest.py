"""Fixtures for attack tests: a micro base on disk, a memorising LoRA, an untrained plain-peft adapter."""

from __future__ import annotations

import json

import pytest

from dpaudit.train import TrainConfig, run_training
from tests.conftest import make_records

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Many epochs on 64 records: enough for the micro model to memorise their random digits.
MEMORISE = TrainConfig(
    epochs=25, lr=1e-2, rank=16, alpha=32, max_length=64, batch_size=16, checkpoint_every=0, target_modules=ALL_LINEAR
)


@pytest.fixture(autouse=True)
def isolated_cache(isolated_cache):
    """Shadow adapters go to a per-test cache (tests/conftest.py's fixture, made automatic here)."""
    return isolated_cache


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r.to_json()) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def attack_world(tmp_path_factory, micro_base_dir):
    """A micro base directory and 128 records (a data file); trained adapters are added by fixtures below."""
    root = tmp_path_factory.mktemp("attack-world")
    data = write_jsonl(root / "data.jsonl", make_records(128, seed=1))
    return root, micro_base_dir, data


@pytest.fixture(scope="session")
def memorising_adapter(attack_world):
    """A non-DP LoRA trained 25 epochs on 64 of the 128 records (card + members/non-members lists)."""
    root, base, data = attack_world
    out = root / "memorising"
    run_training(data_file=data, base=str(base), out_dir=out, config=MEMORISE, progress=False)
    return out


@pytest.fixture(scope="session")
def quick_adapter(attack_world):
    """A cheap dpaudit adapter (a few steps) whose recipe makes shadow training fast."""
    root, base, data = attack_world
    out = root / "quick"
    config = TrainConfig(max_steps=2, rank=4, alpha=8, max_length=64, batch_size=16, checkpoint_every=0)
    run_training(data_file=data, base=str(base), out_dir=out, config=config, progress=False)
    return out


@pytest.fixture(scope="session")
def plain_peft_adapter(attack_world):
    """An adapter written by plain peft (no dpaudit.json), untrained: LoRA's B is zero-initialised."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root, base, _ = attack_world
    model = AutoModelForCausalLM.from_pretrained(base)  # name_or_path = base: the adapter config names it
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    out = root / "plain-peft"
    peft_model.save_pretrained(out)
    return out

