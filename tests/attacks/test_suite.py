"""run_attacks end to end on the micro base: memorisation is detected, an untrained adapter is not."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from dpaudit.attacks import suite
from dpaudit.attacks.suite import finite_ranks, run_attacks
from dpaudit.data.loaders import load_records
from dpaudit.data.records import Message, Record
from dpaudit.errors import ConfigError, InputError
from dpaudit.privacy.scores_io import SCORES_MARKER, read_scores_csv
from tests.attacks.conftest import write_jsonl

CHEAP = ["loss", "ref", "zlib", "mink", "minkpp"]


def quick(**kw):
    return run_attacks(progress=False, n_bootstrap=50, **kw)


@pytest.mark.slow
def test_memorising_lora_is_detected_by_the_loss_attack(memorising_adapter):
    result = quick(adapter_dir=memorising_adapter, attacks=CHEAP, shadows=0)
    assert (result.n_members, result.n_nonmembers) == (64, 64)  # from the training card
    assert result.attacks["loss"]["auc"] > 0.9
    for name in CHEAP:
        metrics = result.attacks[name]
        assert metrics["n_nonfinite"] == 0
        assert set(metrics["tpr_at_fpr"]) == {"0.001", "0.01", "0.1"}
        assert metrics["auc_ci95"][0] <= metrics["auc"] <= metrics["auc_ci95"][1]
    assert result.worst_case in CHEAP
    json.dumps(result.to_json())  # JSON-ready as it is


def _split_files(tmp_path, data, seed=0):
    records = load_records(data)
    order = np.random.default_rng(seed).permutation(len(records))
    half = len(records) // 2
    members = write_jsonl(tmp_path / "members.jsonl", [records[i] for i in order[:half]])
    nonmembers = write_jsonl(tmp_path / "nonmembers.jsonl", [records[i] for i in order[half:]])
    return members, nonmembers


def test_untrained_plain_peft_adapter_is_at_chance(plain_peft_adapter, attack_world, tmp_path):
    """No dpaudit.json: members come from files; a zero-init adapter knows nothing about them."""
    members, nonmembers = _split_files(tmp_path, attack_world[2])
    result = quick(adapter_dir=plain_peft_adapter, members=members, nonmembers=nonmembers, attacks=["loss", "ref"], shadows=0)
    assert (result.n_members, result.n_nonmembers) == (64, 64)
    assert abs(result.attacks["loss"]["auc"] - 0.5) <= 0.1
    # B = 0: the adapter is the base, so adapter and reference losses agree and `ref` scores are all 0.
    np.testing.assert_allclose(result.scores["ref"], 0.0, atol=1e-6)


def test_plain_peft_adapter_needs_member_files(plain_peft_adapter):
    with pytest.raises(InputError, match="--members FILE --nonmembers FILE"):
        quick(adapter_dir=plain_peft_adapter, attacks=["loss"], shadows=0)


def test_members_and_nonmembers_come_together(plain_peft_adapter, attack_world):
    with pytest.raises(ConfigError, match="both --members and --nonmembers"):
        quick(adapter_dir=plain_peft_adapter, members=attack_world[2], attacks=["loss"], shadows=0)


def test_overlapping_sets_are_refused(plain_peft_adapter, attack_world, tmp_path):
    records = load_records(attack_world[2])
    same_text = Record(id="other-id", messages=records[0].messages)
    members = write_jsonl(tmp_path / "m.jsonl", records[:10])
    nonmembers = write_jsonl(tmp_path / "n.jsonl", [same_text, *records[10:20]])
    with pytest.raises(InputError, match="both members and non-members"):
        quick(adapter_dir=plain_peft_adapter, members=members, nonmembers=nonmembers, attacks=["loss"], shadows=0)


@pytest.mark.slow
def test_changed_data_file_is_refused(memorising_adapter, tmp_path):
    adapter = shutil.copytree(memorising_adapter, tmp_path / "adapter")
    card = json.loads((adapter / "dpaudit.json").read_text())
    data = tmp_path / "data.jsonl"
    data.write_text(open(card["data_file"]).read() + "\n")
    card["data_file"] = str(data)
    (adapter / "dpaudit.json").write_text(json.dumps(card))
    with pytest.raises(InputError, match="changed since the adapter was trained"):
        quick(adapter_dir=adapter, attacks=["loss"], shadows=0)


def test_nonfinite_scores_are_reported_and_kept(plain_peft_adapter, attack_world, tmp_path, monkeypatch):
    members, nonmembers = _split_files(tmp_path, attack_world[2])
    real = suite.ATTACKS.get("loss").score

    def with_holes(self, inputs):
        scores = real(self, inputs)
        scores[:3] = [np.nan, np.inf, -np.inf]
        return scores

    monkeypatch.setattr(suite.ATTACKS.get("loss"), "score", with_holes)
    out = tmp_path / "scores"
    result = quick(
        adapter_dir=plain_peft_adapter, members=members, nonmembers=nonmembers, attacks=["loss"], shadows=0, save_scores=out
    )
    assert result.attacks["loss"]["n_nonfinite"] == 3
    assert result.n_members + result.n_nonmembers == 128  # nothing dropped
    ids, labels, scores = read_scores_csv(out / "loss.csv")
    assert ids == result.ids and labels.tolist() == result.labels.tolist()
    finite = scores[3:]
    assert scores[0] < finite.min() and scores[2] < finite.min() and scores[1] > finite.max()


def test_finite_ranks_keeps_order_and_finite_values():
    values = np.array([0.5, np.nan, -np.inf, np.inf, -2.0])
    out = finite_ranks(values)
    assert np.isfinite(out).all()
    assert out[0] == 0.5 and out[4] == -2.0
    assert out[1] == out[2] < -2.0 and out[3] > 0.5


@pytest.mark.slow
def test_save_scores_writes_one_csv_per_attack(memorising_adapter, tmp_path):
    out = tmp_path / "scores"
    result = quick(adapter_dir=memorising_adapter, attacks=["loss", "mink"], shadows=0, save_scores=out)
    assert sorted(p.name for p in out.iterdir()) == ["loss.csv", "mink.csv", SCORES_MARKER]
    ids, labels, scores = read_scores_csv(out / "mink.csv")
    assert ids == result.ids
    np.testing.assert_array_equal(labels, result.labels)
    np.testing.assert_allclose(scores, result.scores["mink"])


@pytest.mark.slow
def test_reference_model_option_matches_the_disabled_adapter(memorising_adapter, attack_world):
    own = quick(adapter_dir=memorising_adapter, attacks=["ref"], shadows=0)
    other = quick(adapter_dir=memorising_adapter, attacks=["ref"], shadows=0, reference=str(attack_world[1]))
    assert other.reference == str(attack_world[1])
    np.testing.assert_allclose(other.scores["ref"], own.scores["ref"], atol=1e-5)


def test_shadow_attacks_need_shadows():
    with pytest.raises(ConfigError, match="needs shadow models"):
        suite.select_attacks(["lira"], shadows=0)
    assert "lira" not in suite.select_attacks(None, shadows=0)
    assert "lira" in suite.select_attacks(None, shadows=4)
    with pytest.raises(ConfigError, match="`shadows` must be 0"):
        suite.select_attacks(None, shadows=1)


@pytest.mark.slow
def test_shadows_are_cached_shared_and_grown(quick_adapter, isolated_cache, monkeypatch):
    names = ["shadow", "lira", "lira_offline"]
    # 2 shadows are too few to fit LiRA's variances: a fixed one keeps the scores finite.
    fixed = {"lira": {"fixed_variance": 0.05}, "lira_offline": {"fixed_variance": 0.05}}
    first = quick(adapter_dir=quick_adapter, attacks=names, shadows=2, attack_options=fixed)
    assert (first.shadows, first.shadows_trained) == (2, 2)
    assert len(list((isolated_cache / "shadows").iterdir())) == 2  # one set of shadows serves all three attacks
    grown = quick(adapter_dir=quick_adapter, attacks=names, shadows=4)
    assert (grown.shadows, grown.shadows_trained) == (4, 2)  # the first two come from the cache

    import dpaudit.train

    def no_training(**kwargs):
        raise AssertionError("a cached shadow was trained again")

    monkeypatch.setattr(dpaudit.train, "train_adapter", no_training)
    again = quick(adapter_dir=quick_adapter, attacks=names, shadows=4)
    assert again.shadows_trained == 0
    for name in names:
        np.testing.assert_allclose(again.scores[name], grown.scores[name], rtol=1e-6, equal_nan=True)
    assert again.lira_gaussian_fit["n_tested"] == 0  # 2 values per side: too few to test normality


def test_records_can_be_passed_in_memory(plain_peft_adapter):
    make = lambda i: Record(id=f"x{i}", messages=(Message("user", f"q {i}"), Message("assistant", f"answer {i}")))  # noqa: E731
    result = quick(
        adapter_dir=plain_peft_adapter,
        members=[make(i) for i in range(4)],
        nonmembers=[make(i) for i in range(4, 8)],
        attacks=["loss"],
        shadows=0,
    )
    assert result.ids == [f"x{i}" for i in range(8)]
