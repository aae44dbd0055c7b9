"""End-to-end trainer behaviour on micro models: learning, privacy numbers, outputs, resume."""

from __future__ import annotations

import json

import pytest
import torch
from opacus.accountants import PRVAccountant, RDPAccountant

from dpaudit.errors import ConfigError, InputError
from dpaudit.privacy.accountants import compute_epsilon
from dpaudit.train import DPConfig, TrainConfig, run_training, train_adapter
from dpaudit.train import loop as loop_mod
from dpaudit.train.loop import TrainingRun, per_example_loss, plan_run
from tests.conftest import make_records
from tests.train.conftest import batch_of, encode, fresh_micro, snapshot

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.fixture(scope="session")
def pretrained_micro(micro_tokenizer):
    """The micro Llama after a short full fine-tuning on public records (a random base's frozen output
    layer caps what LoRA can learn: its logits stay near uniform)."""
    public = make_records(64, seed=7, prefix="p")
    config = TrainConfig(method="full", lr=1e-2, max_steps=40, batch_size=16, seed=1)
    return train_adapter(base_model=fresh_micro(micro_tokenizer), tokenizer=micro_tokenizer, members=public,
                         config=config, progress=False).model


def mean_loss(model, records, tokenizer) -> float:
    model.eval()
    with torch.no_grad():
        return float(per_example_loss(model, batch_of(encode(records, tokenizer), tokenizer)).mean())


def test_without_dp_a_small_set_is_memorised(pretrained_micro, micro_tokenizer):
    records = make_records(16, seed=3)
    members, held_out = records[:8], records[8:]
    before = snapshot(pretrained_micro)
    config = TrainConfig(target_modules=ALL_LINEAR, lr=2e-2, rank=16, max_steps=50, batch_size=8)
    result = train_adapter(base_model=pretrained_micro, tokenizer=micro_tokenizer, members=members, config=config, progress=False)
    assert all(torch.equal(before[k], v) for k, v in pretrained_micro.state_dict().items()), "base changed"
    with result.attach(pretrained_micro) as model:
        train_loss, held_loss = mean_loss(model, members, micro_tokenizer), mean_loss(model, held_out, micro_tokenizer)
    assert train_loss < 0.6 * held_loss
    assert result.card["dp"] is None


def test_with_huge_noise_nothing_is_learned(pretrained_micro, micro_tokenizer):
    members = make_records(8, seed=3)
    base_loss = mean_loss(pretrained_micro, members, micro_tokenizer)
    common = dict(target_modules=ALL_LINEAR, lr=2e-3, rank=16, max_steps=30, batch_size=8)
    noisy = train_adapter(base_model=pretrained_micro, tokenizer=micro_tokenizer, members=members, progress=False,
                          config=TrainConfig(**common, dp=DPConfig(noise_multiplier=1e4, delta=1e-3)))
    clean = train_adapter(base_model=pretrained_micro, tokenizer=micro_tokenizer, members=members, progress=False,
                          config=TrainConfig(**common))
    with noisy.attach(pretrained_micro) as model:
        noisy_loss = mean_loss(model, members, micro_tokenizer)
    with clean.attach(pretrained_micro) as model:
        clean_loss = mean_loss(model, members, micro_tokenizer)
    assert clean_loss < base_loss - 0.2  # the same recipe without noise learns
    assert abs(noisy_loss - base_loss) < 0.1  # with σ = 10⁴ the loss stays at the base's level


@pytest.mark.parametrize("accountant", ["prv", "rdp"])
def test_card_epsilon_is_the_accountants_for_the_recorded_run(micro_model, micro_tokenizer, records, accountant):
    config = TrainConfig(max_steps=7, batch_size=6, dp=DPConfig(noise_multiplier=1.3, accountant=accountant))
    dp = train_adapter(base_model=micro_model, tokenizer=micro_tokenizer, members=records, config=config, progress=False).card["dp"]
    n = len(records)
    assert dp["steps"] == 7 and dp["sample_rate"] == pytest.approx(6 / n) and dp["delta"] == pytest.approx(1 / (10 * n))
    assert dp["epsilon"] == pytest.approx(
        compute_epsilon(noise_multiplier=1.3, sample_rate=dp["sample_rate"], steps=7, delta=dp["delta"], accountant=accountant)
    )
    # Independently, straight from opacus's accountant.
    reference = PRVAccountant() if accountant == "prv" else RDPAccountant()
    reference.history = [(1.3, dp["sample_rate"], 7)]
    opacus_eps = reference.get_epsilon(delta=dp["delta"])
    if accountant == "rdp":
        assert dp["epsilon"] == pytest.approx(opacus_eps, rel=1e-9)
    else:  # opacus's PRV ε is an upper bound within eps_error = 0.01; dpaudit refines it
        assert opacus_eps - 0.01 <= dp["epsilon"] <= opacus_eps + 1e-9


def test_target_epsilon_lands_within_5_percent_below(micro_model, micro_tokenizer, records):
    config = TrainConfig(max_steps=12, batch_size=6, dp=DPConfig(target_epsilon=3.0))
    dp = train_adapter(base_model=micro_model, tokenizer=micro_tokenizer, members=records, config=config, progress=False).card["dp"]
    assert 0.95 * 3.0 <= dp["epsilon"] <= 3.0
    assert dp["target_epsilon"] == 3.0 and dp["steps"] == 12


def test_delta_at_least_one_over_n_is_refused():
    with pytest.raises(ConfigError, match=r"must be < 1/N"):
        plan_run(50, TrainConfig(dp=DPConfig(noise_multiplier=1.0, delta=0.02)))
    assert plan_run(50, TrainConfig(dp=DPConfig(noise_multiplier=1.0))).delta == pytest.approx(1 / 500)


def test_non_poisson_sampling_is_refused_with_dp():
    with pytest.raises(ConfigError, match="Poisson"):
        TrainConfig(sampler="shuffle", dp=DPConfig(noise_multiplier=1.0))
    TrainConfig(sampler="shuffle")  # fine without DP


@pytest.mark.parametrize("method", ["dora", "dylora"])
def test_dora_and_dylora_train(pretrained_micro, micro_tokenizer, method):
    members = make_records(8, seed=3)
    base_loss = mean_loss(pretrained_micro, members, micro_tokenizer)
    for dp in (None, DPConfig(noise_multiplier=0.5, max_grad_norm=1.0, delta=1e-3)):
        config = TrainConfig(method=method, target_modules=ALL_LINEAR, lr=1e-2, rank=8, max_steps=20, batch_size=8, dp=dp)
        result = train_adapter(base_model=pretrained_micro, tokenizer=micro_tokenizer, members=members, config=config, progress=False)
        with result.attach(pretrained_micro) as model:
            assert mean_loss(model, members, micro_tokenizer) < base_loss - (0.2 if dp is None else 0.02)
    if method == "dora":
        assert any("lora_magnitude_vector" in k for k in result.adapter_state)


def test_dylora_samples_ranks_and_masks_the_tail(micro_model, micro_tokenizer, records, monkeypatch):
    seen = []
    real = TrainingRun.logical_step

    def spy(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        seen.append(self.rank_sampler.current)
        return out

    monkeypatch.setattr(TrainingRun, "logical_step", spy)
    config = TrainConfig(method="dylora", rank=4, max_steps=12, batch_size=8, optimizer="sgd", lr=0.1)
    result = train_adapter(base_model=micro_model, tokenizer=micro_tokenizer, members=records, config=config, progress=False)
    assert set(seen) <= {1, 2, 3, 4} and len(set(seen)) > 1
    if max(seen) < 4:  # rank 4 never drawn: B's last column never received a gradient
        b = next(v for k, v in result.adapter_state.items() if "lora_B" in k)
        assert torch.count_nonzero(b[:, max(seen):]) == 0


def _interrupt_after(monkeypatch, step: int):
    real = TrainingRun.logical_step

    def interrupted(self, *args, **kwargs):
        if self.step == step:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(TrainingRun, "logical_step", interrupted)


@pytest.mark.parametrize(
    "config",
    [
        TrainConfig(max_steps=9, batch_size=6, physical_batch_size=4, checkpoint_every=2, optimizer="sgd", lr=0.5,
                    gradient_canaries=50, dp=DPConfig(noise_multiplier=0.8)),
        TrainConfig(method="dylora", max_steps=9, batch_size=5, dropout=0.1, checkpoint_every=2, lr=1e-2),
    ],
    ids=["dp-lora-canaries", "dylora-shuffle-dropout"],
)
def test_resume_gives_the_same_adapter(micro_model, micro_tokenizer, records, tmp_path, monkeypatch, config):
    # DP noise comes from a secret seed: pinned here so that the uninterrupted twin shares it
    # (tests/train/test_adversary.py checks that the resumed process does not need it).
    monkeypatch.setattr(loop_mod.secrets, "randbits", lambda bits: 4321)
    full = train_adapter(base_model=micro_model, tokenizer=micro_tokenizer, members=records, config=config,
                         out_dir=tmp_path / "full", progress=False)
    out = tmp_path / "resumed"
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 5)
        with pytest.raises(KeyboardInterrupt):
            train_adapter(base_model=micro_model, tokenizer=micro_tokenizer, members=records, config=config, out_dir=out, progress=False)
    assert (out / ".checkpoint").is_dir() and not (out / "dpaudit.json").exists()
    resumed = train_adapter(base_model=micro_model, tokenizer=micro_tokenizer, members=records, config=config, out_dir=out,
                            progress=False, resume=True)
    assert full.adapter_state.keys() == resumed.adapter_state.keys()
    for key, value in full.adapter_state.items():
        assert torch.equal(value, resumed.adapter_state[key]), key
    assert full.losses == resumed.losses
    assert not (out / ".checkpoint").exists()
    if config.dp is not None:
        assert full.card["dp"]["epsilon"] == resumed.card["dp"]["epsilon"]
        assert (full.gradient_canary_scores[2] == resumed.gradient_canary_scores[2]).all()


def test_resume_refuses_other_options(micro_model, micro_tokenizer, records, tmp_path, monkeypatch):
    config = TrainConfig(max_steps=6, batch_size=6, checkpoint_every=2)
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 3)
        with pytest.raises(KeyboardInterrupt):
            train_adapter(base_model=micro_model, tokenizer=micro_tokenizer, members=records, config=config, out_dir=tmp_path, progress=False)
    with pytest.raises(InputError, match="different options"):
        train_adapter(base_model=micro_model, tokenizer=micro_tokenizer, members=records, out_dir=tmp_path, progress=False,
                      resume=True, config=TrainConfig(max_steps=6, batch_size=6, checkpoint_every=2, lr=0.1))
    with pytest.raises(InputError, match="nothing to resume"):
        train_adapter(base_model=micro_model, tokenizer=micro_tokenizer, members=records, out_dir=tmp_path / "none",
                      progress=False, resume=True, config=config)


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")  # raised inside peft
def test_run_training_writes_a_standard_peft_adapter(micro_base_dir, micro_tokenizer, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r.to_json()) + "\n" for r in make_records(30)), encoding="utf-8")
    out = tmp_path / "adapter"
    config = TrainConfig(max_steps=3, batch_size=5, seed=4, dp=DPConfig(noise_multiplier=1.0))
    result = run_training(data_file=data, base=str(micro_base_dir), out_dir=out, config=config, progress=False)

    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(micro_base_dir)
    assert (out / "adapter_model.safetensors").is_file()
    members = (out / "members.txt").read_text().split()
    nonmembers = (out / "nonmembers.txt").read_text().split()
    assert len(members) == 15 and len(nonmembers) == 15 and not set(members) & set(nonmembers)

    card = json.loads((out / "dpaudit.json").read_text())
    for key in ("dpaudit_version", "base", "base_resolved", "data_file", "data_sha256", "members_file", "nonmembers_file",
                "method", "hyperparameters", "dp", "canaries", "seed", "wall_time_s", "versions"):
        assert key in card, key
    for key in ("noise_multiplier", "max_grad_norm", "sample_rate", "steps", "delta", "accountant", "epsilon", "clipping", "events"):
        assert key in card["dp"], key
    assert card["hyperparameters"]["target_modules"] == ["q_proj", "v_proj"]
    assert card["members_file"] == "members.txt" and card["seed"] == 4 and card["method"] == "lora"

    base = AutoModelForCausalLM.from_pretrained(micro_base_dir)
    loaded = PeftModel.from_pretrained(base, out).eval()
    batch = batch_of(encode(make_records(2, seed=9), micro_tokenizer), micro_tokenizer)
    ids = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    other = AutoModelForCausalLM.from_pretrained(micro_base_dir)
    with torch.no_grad(), result.attach(other) as attached:
        torch.testing.assert_close(loaded(**ids).logits, attached(**ids).logits)


def test_full_fine_tuning_saves_a_model_directory(micro_base_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r.to_json()) + "\n" for r in make_records(20)), encoding="utf-8")
    out = tmp_path / "full"
    result = run_training(data_file=data, base=str(micro_base_dir), out_dir=out, progress=False,
                          config=TrainConfig(method="full", max_steps=2, batch_size=5))
    model = AutoModelForCausalLM.from_pretrained(out)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, result.adapter_state[name])
    assert json.loads((out / "dpaudit.json").read_text())["method"] == "full"


def test_record_canaries_inclusion_and_repeats(micro_base_dir, tmp_path, monkeypatch):
    import random

    from dpaudit.data.canaries import canaries_to_jsonl, make_canaries

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r.to_json()) + "\n" for r in make_records(20)), encoding="utf-8")
    canary_file = tmp_path / "canaries.jsonl"
    canaries = make_canaries(12, rng=random.Random(0), names=[f"Person {i}" for i in range(12)])
    canary_file.write_text(canaries_to_jsonl(canaries), encoding="utf-8")
    sizes = []
    real_plan = loop_mod.plan_run
    monkeypatch.setattr("dpaudit.train.trainer.plan_run", lambda n, config: sizes.append(n) or real_plan(n, config))

    card = run_training(data_file=data, base=str(micro_base_dir), out_dir=tmp_path / "a", canaries_file=canary_file,
                        config=TrainConfig(max_steps=1, batch_size=4, canary_inclusion=0.5), progress=False).card
    inclusion = card["canaries"]["inclusion"]
    assert card["canaries"]["mode"] == "inclusion" and set(inclusion) == {c.id for c in canaries}
    assert 0 < sum(inclusion.values()) < 12 and sizes[-1] == 10 + sum(inclusion.values())

    card = run_training(data_file=data, base=str(micro_base_dir), out_dir=tmp_path / "b", canaries_file=canary_file,
                        config=TrainConfig(max_steps=1, batch_size=4, canary_repeats=(1, 4, 16)), progress=False).card
    repeats = card["canaries"]["repeats"]
    assert sorted(repeats.values()) == [1] * 4 + [4] * 4 + [16] * 4 and sizes[-1] == 10 + 4 * (1 + 4 + 16)
