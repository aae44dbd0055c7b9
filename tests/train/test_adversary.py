"""Issue #10: the trainer's privacy claims hold against an adversary who knows --seed and the card.

Secret DP randomness (and its opt-out), resume with secret state, group privacy for repeated
records, the base check on --resume, the gradient-shape check after an empty first batch, the
recorded σ_b of adaptive clipping, and calibration that answers for any target. Durations are CPU
time (``time.process_time``): on a shared test machine the wall clock says little.
"""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
import torch

from dpaudit.errors import InputError
from dpaudit.privacy.comparator import NO_GUARANTEE, SEEDED_NOISE, compare_epsilon, theory_from_card
from dpaudit.train import DPConfig, TrainConfig, train_adapter
from dpaudit.train import loop as loop_mod
from dpaudit.train.dp import default_unclipped_num_std
from dpaudit.train.loop import TrainingRun
from tests.conftest import make_records
from tests.train.conftest import fresh_micro

DP = dict(max_steps=3, batch_size=6, seed=5)


def _train(model, tokenizer, records, config, **kwargs):
    return train_adapter(base_model=model, tokenizer=tokenizer, members=records, config=config, progress=False, **kwargs)


def _same(a, b) -> bool:
    return a.adapter_state.keys() == b.adapter_state.keys() and all(
        torch.equal(v, b.adapter_state[k]) for k, v in a.adapter_state.items()
    )


def test_two_dp_runs_with_the_same_seed_give_different_adapters(micro_model, micro_tokenizer, records):
    config = TrainConfig(**DP, dp=DPConfig(noise_multiplier=1.0))
    first, second = (_train(micro_model, micro_tokenizer, records, config) for _ in range(2))
    assert not _same(first, second)  # the seed in the card no longer replays the noise
    assert first.card["dp"]["randomness"] == "secure"
    assert first.card["seed"] == 5  # --seed still recorded: it controls the split, init and canaries


def test_non_dp_runs_still_follow_the_seed(micro_model, micro_tokenizer, records):
    config = TrainConfig(**DP)
    first, second = (_train(micro_model, micro_tokenizer, records, config) for _ in range(2))
    assert _same(first, second)


def test_insecure_reproducible_noise_replays_and_voids_the_guarantee(micro_model, micro_tokenizer, records):
    config = TrainConfig(**DP, dp=DPConfig(noise_multiplier=1.0, insecure_reproducible_noise=True))
    first, second = (_train(micro_model, micro_tokenizer, records, config) for _ in range(2))
    assert _same(first, second)
    card = first.card
    assert card["dp"]["randomness"] == "insecure-reproducible"
    theory = theory_from_card(card)
    assert theory.no_guarantee_reason == SEEDED_NOISE and theory.epsilon == float("inf")
    labels = torch.tensor([1, 0] * 20).numpy()
    scores = torch.linspace(0, 1, 40).numpy()
    comparison = compare_epsilon(card=card, scores={"loss": (scores, labels)})
    assert comparison.verdict == NO_GUARANTEE
    assert comparison.to_json()["no_guarantee_reason"] == "noise derived from a recorded seed"


def test_secure_resume_restores_the_secret_state_from_the_checkpoint(
    micro_model, micro_tokenizer, records, tmp_path, monkeypatch
):
    """The uninterrupted twin and the interrupted run share a secret (pinned here); the resumed process
    draws a *different* one, so it matches the twin only if the generators come from the checkpoint."""
    config = TrainConfig(max_steps=7, batch_size=6, checkpoint_every=2, dp=DPConfig(noise_multiplier=0.8))
    monkeypatch.setattr(loop_mod.secrets, "randbits", lambda bits: 1234)
    twin = _train(micro_model, micro_tokenizer, records, config, out_dir=tmp_path / "twin")
    real = TrainingRun.logical_step

    def interrupted(self, *args, **kwargs):
        if self.step == 5:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    out = tmp_path / "resumed"
    with monkeypatch.context() as patch:
        patch.setattr(TrainingRun, "logical_step", interrupted)
        with pytest.raises(KeyboardInterrupt):
            _train(micro_model, micro_tokenizer, records, config, out_dir=out)
    monkeypatch.setattr(loop_mod.secrets, "randbits", lambda bits: 98765)
    resumed = _train(micro_model, micro_tokenizer, records, config, out_dir=out, resume=True)
    assert _same(twin, resumed)
    assert not (out / ".checkpoint").exists()  # the private state is gone with the run


def test_resume_refuses_a_different_base(micro_tokenizer, records, tmp_path, monkeypatch):
    config = TrainConfig(max_steps=6, batch_size=6, checkpoint_every=2)
    real = TrainingRun.logical_step
    with monkeypatch.context() as patch:
        patch.setattr(TrainingRun, "logical_step",
                      lambda self, *a, **k: (_ for _ in ()).throw(KeyboardInterrupt) if self.step == 3 else real(self, *a, **k))
        with pytest.raises(KeyboardInterrupt):
            _train(fresh_micro(micro_tokenizer), micro_tokenizer, records, config, out_dir=tmp_path)
    other = fresh_micro(micro_tokenizer)
    with torch.no_grad():
        next(other.parameters()).add_(0.01)  # same architecture and spec, other weights
    with pytest.raises(InputError, match="different base model"):
        _train(other, micro_tokenizer, records, config, out_dir=tmp_path, resume=True)
    resumed = _train(fresh_micro(micro_tokenizer), micro_tokenizer, records, config, out_dir=tmp_path, resume=True)
    assert resumed.card["training"]["steps"] == 6


def test_gradient_shapes_are_checked_on_the_first_non_empty_batch(micro_model, micro_tokenizer, records, monkeypatch):
    calls = []
    monkeypatch.setattr(loop_mod, "check_grad_sample_shapes", lambda params, batch_size: calls.append(batch_size))
    batches = iter([[], [], [0, 1, 2], [3], [4, 5]])
    monkeypatch.setattr(TrainingRun, "batches", lambda self: batches)
    config = TrainConfig(max_steps=5, batch_size=2, physical_batch_size=8, dp=DPConfig(noise_multiplier=1.0))
    _train(micro_model, micro_tokenizer, records, config)
    assert calls == [3]  # the first non-empty batch, once


def test_adaptive_clipping_records_the_count_noise_it_used(micro_model, micro_tokenizer, records):
    config = TrainConfig(max_steps=2, batch_size=8, dp=DPConfig(noise_multiplier=1.0, clipping="adaptive"))
    dp = _train(micro_model, micro_tokenizer, records, config).card["dp"]
    expected = default_unclipped_num_std(expected_batch_size=dp["expected_batch_size"], noise_multiplier=1.0)
    assert dp["unclipped_num_std"] == pytest.approx(expected)


def test_repeated_records_get_a_group_privacy_guarantee(micro_model, micro_tokenizer, capsys):
    records = make_records(20)
    repeated = [dataclasses.replace(records[0], id=f"copy{i}") for i in range(2)]
    config = TrainConfig(**DP, dp=DPConfig(target_epsilon=8.0, accountant="rdp"))
    result = train_adapter(base_model=micro_model, tokenizer=micro_tokenizer, members=records + repeated,
                           config=config, progress=True)
    card = result.card
    assert card["duplicates"] == {"max_multiplicity": 3, "groups": 1, "ids": [records[0].id, "copy0", "copy1"]}
    group = card["dp"]["group_privacy"]
    assert group["k"] == 3 and group["meaningful"] is False  # 3·e^(2·8)·δ ≥ 1/N
    assert "no meaningful DP guarantee" in " ".join(capsys.readouterr().err.split())
    theory = theory_from_card(json.loads(json.dumps(card)))
    assert theory.group is not None and theory.group.k == 3


@pytest.mark.parametrize("accountant", ["prv", "rdp"])
def test_calibration_to_epsilon_1000_answers_in_seconds(micro_model, micro_tokenizer, records, accountant):
    config = TrainConfig(max_steps=4, batch_size=6, dp=DPConfig(target_epsilon=1000.0, accountant=accountant))
    start = time.process_time()
    dp = _train(micro_model, micro_tokenizer, records, config).card["dp"]
    assert time.process_time() - start < 60
    assert 990 <= dp["epsilon"] <= 1000
    assert dp["calibration"]["accountant"] in ("prv", "rdp")


def test_cli_calibrates_epsilon_1000_within_a_minute(cli, data_file, micro_base_dir, tmp_path):
    start = time.process_time()
    code, out, err = cli("train", "--data", data_file, "--base", micro_base_dir, "--out", tmp_path / "e1000", "--dp",
                         "--target-epsilon", "1000", "--max-steps", "3", "--batch-size", "5", "--json")
    assert code == 0, err
    assert time.process_time() - start < 60
    dp = json.loads(out)["card"]["dp"]
    assert 990 <= dp["epsilon"] <= 1000 and dp["randomness"] == "secure"


def test_cli_insecure_flag_says_there_is_no_guarantee(cli, data_file, micro_base_dir, tmp_path):
    code, out, err = cli("train", "--data", data_file, "--base", micro_base_dir, "--out", tmp_path / "seeded", "--dp",
                         "--noise-multiplier", "1", "--max-steps", "2", "--batch-size", "5",
                         "--insecure-reproducible-noise")
    assert code == 0, err
    assert "no DP guarantee" in out and "noise derived from a recorded seed" in " ".join(out.split())
    code, _, err = cli("train", "--data", data_file, "--base", micro_base_dir, "--out", tmp_path / "x",
                       "--insecure-reproducible-noise")
    assert code == 2 and "--insecure-reproducible-noise needs --dp" in err
