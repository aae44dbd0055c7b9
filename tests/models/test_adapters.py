"""Adapters written by plain peft load through dpaudit with identical logits; bad ones fail clearly."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from peft import LoraConfig, get_peft_model

from dpaudit.errors import InputError, MissingFileError
from dpaudit.models.adapters import (
    adapter_base_spec,
    adapter_sha256,
    attach_adapter,
    detach_adapter,
    load_adapter,
    read_card,
    use_adapter,
)
from dpaudit.models.base import load_base
from dpaudit.models.tiny import init_tiny_model
from tests.conftest import MICRO
from tests.models.conftest import logits

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")


def make_adapter(base_dir, micro_tokenizer, out, *, seed=0, safe=True, targets=("q_proj", "v_proj"), base_name=None, **lora):
    """What anyone does with peft: wrap a base, (pretend to) train, save_pretrained. Returns the in-memory PeftModel."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    if base_name is not None:
        model.name_or_path = base_name
    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=list(targets), task_type="CAUSAL_LM", init_lora_weights=False, **lora)
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(out, safe_serialization=safe)
    return peft_model.eval()


@pytest.fixture()
def adapter(tmp_path, micro_base_dir, micro_tokenizer):
    out = tmp_path / "adapter"
    return out, make_adapter(micro_base_dir, micro_tokenizer, out)


def test_plain_peft_adapter_gives_identical_logits(adapter, micro_base_dir, batch):
    path, reference = adapter
    assert json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"] == str(micro_base_dir)
    loaded = load_adapter(path)  # base from base_model_name_or_path
    assert loaded.base.spec == str(micro_base_dir) and loaded.path == path and loaded.card is None
    assert not loaded.model.training and loaded.active == "default"
    assert torch.equal(logits(loaded.model, batch), logits(reference, batch))
    bare = load_base(str(micro_base_dir))
    assert not torch.allclose(logits(loaded.model, batch), logits(bare.model, batch))  # the adapter does something


def test_base_override_and_card(tmp_path, adapter, micro_base_dir, batch):
    path, reference = adapter
    config = json.loads((path / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "moved-away")
    (path / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(MissingFileError, match="moved-away"):
        load_adapter(path)
    assert torch.equal(logits(load_adapter(path, base=str(micro_base_dir)).model, batch), logits(reference, batch))

    (path / "dpaudit.json").write_text(json.dumps({"base": str(micro_base_dir), "seed": 0}))
    assert read_card(path)["base"] == str(micro_base_dir)
    assert adapter_base_spec(path) == str(micro_base_dir)
    assert adapter_base_spec(path, base="tiny") == "tiny"
    assert torch.equal(logits(load_adapter(path).model, batch), logits(reference, batch))


def test_already_loaded_base_is_accepted(adapter, micro_base_dir, batch):
    path, reference = adapter
    base = load_base(str(micro_base_dir))
    loaded = load_adapter(path, base=base)
    assert loaded.base is base and loaded.tokenizer is base.tokenizer
    assert torch.equal(logits(loaded.model, batch), logits(reference, batch))


def test_adapters_on_our_bases_record_the_spec(tmp_path, micro_base_dir):
    base = load_base(str(micro_base_dir))
    base.model.name_or_path = "tiny"  # what load_base("tiny") sets
    peft_model = get_peft_model(base.model, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    peft_model.save_pretrained(tmp_path / "a", save_embedding_layers=False)
    assert json.loads((tmp_path / "a" / "adapter_config.json").read_text())["base_model_name_or_path"] == "tiny"
    assert adapter_base_spec(tmp_path / "a") == "tiny"


def test_legacy_bin_loads_with_weights_only(tmp_path, micro_base_dir, micro_tokenizer, batch):
    path = tmp_path / "legacy"
    reference = make_adapter(micro_base_dir, micro_tokenizer, path, safe=False)
    assert (path / "adapter_model.bin").is_file() and not (path / "adapter_model.safetensors").exists()
    assert torch.equal(logits(load_adapter(path).model, batch), logits(reference, batch))
    assert adapter_sha256(path) == hashlib.sha256((path / "adapter_model.bin").read_bytes()).hexdigest()


class Payload:
    """Anything that is not a tensor must never be unpickled."""

    def __reduce__(self):
        return (print, ("unpickled!",))


def test_legacy_bin_with_objects_is_refused(tmp_path, adapter, capsys):
    path, _ = adapter
    (path / "adapter_model.safetensors").unlink()
    torch.save({"base_model.model.x.lora_A.weight": Payload()}, path / "adapter_model.bin")
    with pytest.raises(InputError, match="refusing to unpickle"):
        load_adapter(path)
    assert "unpickled!" not in capsys.readouterr().out


def test_missing_files(tmp_path, adapter):
    with pytest.raises(MissingFileError, match=r"no-such-adapter.*dpaudit train"):
        load_adapter(tmp_path / "no-such-adapter")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingFileError, match=r"adapter_config\.json.*dpaudit train"):
        load_adapter(tmp_path / "empty")
    path, _ = adapter
    (path / "adapter_model.safetensors").unlink()
    with pytest.raises(MissingFileError, match=r"adapter_model\.safetensors.*dpaudit train"):
        load_adapter(path)


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (lambda c: c.update(r="four"), "r", "must be int"),
        (lambda c: c.update(r=0), "r", "must be > 0"),
        (lambda c: c.pop("peft_type"), "peft_type", "missing"),
        (lambda c: c.update(peft_type="NOT_A_TYPE"), "peft_type", "unknown peft type"),
        (lambda c: c.update(target_modules=[1, 2]), "target_modules", "list of module names"),
        (lambda c: c.update(target_modules=["no_such_proj"]), "target_modules", "does not fit the base"),
    ],
)
def test_malformed_config_names_file_and_field(adapter, edit, field, message):
    path, _ = adapter
    config_path = path / "adapter_config.json"
    config = json.loads(config_path.read_text())
    edit(config)
    config_path.write_text(json.dumps(config))
    with pytest.raises(InputError, match=message) as info:
        load_adapter(path)
    assert info.value.field == field and info.value.path == str(config_path)


def test_invalid_json_config(adapter):
    path, _ = adapter
    (path / "adapter_config.json").write_text('{\n  "peft_type": "LORA",\n  "r": 4,,\n}')
    with pytest.raises(InputError, match=r"adapter_config\.json:3.*not valid JSON") as info:
        load_adapter(path)
    assert info.value.line == 3


def test_corrupt_safetensors(adapter):
    path, _ = adapter
    (path / "adapter_model.safetensors").write_bytes(b"\x10\x00\x00\x00garbage")
    with pytest.raises(InputError, match="safetensors"):
        load_adapter(path)


def test_shape_mismatch_names_the_tensor(adapter, wide_base_dir):
    path, _ = adapter
    with pytest.raises(InputError, match=r"lora_A\.weight.*shape \(4, 32\).*expects \(4, 64\)") as info:
        load_adapter(path, base=str(wide_base_dir))
    assert info.value.field.endswith("lora_A.weight") and info.value.path.endswith("adapter_model.safetensors")


def test_failed_load_leaves_a_passed_base_usable(adapter, wide_base_dir, micro_tokenizer, batch):
    path, _ = adapter
    base = load_base(str(wide_base_dir))
    before = logits(base.model, batch)
    with pytest.raises(InputError):
        load_adapter(path, base=base)
    assert not any("lora" in name for name, _ in base.model.named_modules())
    assert torch.equal(logits(base.model, batch), before)


def test_multi_adapter_attach_and_switch(tmp_path, micro_base_dir, micro_tokenizer, batch):
    refs = {}
    for i, extra in enumerate([{}, {"targets": ("q_proj", "k_proj", "o_proj")}, {"use_dora": True}]):
        refs[f"a{i}"] = (tmp_path / f"a{i}", make_adapter(micro_base_dir, micro_tokenizer, tmp_path / f"a{i}", seed=i, **extra))
    expected = {name: logits(ref, batch) for name, (_, ref) in refs.items()}
    assert not torch.allclose(expected["a0"], expected["a1"])

    loaded = load_adapter(refs["a0"][0], adapter_name="a0")
    base_params = {id(p) for p in loaded.base.model.parameters()}
    for name in ("a1", "a2"):
        assert attach_adapter(loaded, refs[name][0], name) == name
    assert loaded.active == "a0" and set(loaded.adapters) == {"a0", "a1", "a2"}
    assert torch.equal(logits(loaded.model, batch), expected["a0"])  # attaching does not change the active one
    for name in ("a2", "a1", "a0", "a1"):
        use_adapter(loaded, name)
        assert loaded.active == name
        assert torch.allclose(logits(loaded.model, batch), expected[name], atol=1e-6), name
    assert base_params <= {id(p) for p in loaded.base.model.parameters()}  # one shared base

    with pytest.raises(InputError, match="already loaded"):
        attach_adapter(loaded, refs["a2"][0], "a2")
    with pytest.raises(InputError, match="no adapter named 'zz'"):
        use_adapter(loaded, "zz")
    with pytest.raises(InputError, match="is active"):
        detach_adapter(loaded, "a1")
    detach_adapter(loaded, "a2")
    assert set(loaded.adapters) == {"a0", "a1"} and "a2" not in loaded.model.peft_config


def test_attach_mismatched_adapter_is_rolled_back(tmp_path, adapter, wide_base_dir, micro_tokenizer, batch):
    wide = tmp_path / "wide-adapter"
    make_adapter(wide_base_dir, micro_tokenizer, wide)
    path, reference = adapter
    loaded = load_adapter(path)
    with pytest.raises(InputError, match="lora_A.weight"):
        attach_adapter(loaded, wide, "wide")
    assert "wide" not in loaded.model.peft_config and "wide" not in loaded.adapters
    assert torch.equal(logits(loaded.model, batch), logits(reference, batch))


def test_adapter_hash(adapter):
    path, _ = adapter
    digest = adapter_sha256(path)
    assert digest == hashlib.sha256((path / "adapter_model.safetensors").read_bytes()).hexdigest()


def test_read_card(tmp_path, adapter):
    path, _ = adapter
    assert read_card(path) is None
    (path / "dpaudit.json").write_text("[1, 2")
    with pytest.raises(InputError, match="dpaudit.json"):
        read_card(path)


def test_adapter_on_tiny_base(tmp_path, micro_tokenizer, batch, monkeypatch):
    """`tiny` in base_model_name_or_path resolves to dpaudit's cached tiny build."""
    from dpaudit.models import base as base_mod
    from tests.models.conftest import MICRO_BUILD

    monkeypatch.setattr(base_mod, "TinyBuildConfig", lambda: MICRO_BUILD)
    tiny = load_base("tiny")
    peft_model = get_peft_model(tiny.model, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM", init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "on-tiny", save_embedding_layers=False)
    ids = tiny.tokenizer(["hello there"], return_tensors="pt")
    expected = logits(peft_model, dict(ids))
    loaded = load_adapter(tmp_path / "on-tiny")
    assert loaded.base.spec == "tiny" and loaded.base.resolved == tiny.resolved
    assert torch.equal(logits(loaded.model, dict(ids)), expected)


def test_micro_model_fixture_unchanged(micro_tokenizer):
    """The conftest API other tests use keeps working."""
    assert init_tiny_model(micro_tokenizer, MICRO).config.hidden_size == MICRO.hidden_size
