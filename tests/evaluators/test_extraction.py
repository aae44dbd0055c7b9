"""PII extraction: targets, the verbatim check, exact intervals, and a micro LoRA that leaks its members' numbers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dpaudit.data.records import Message, PiiSpan, Record
from dpaudit.errors import ConfigError
from dpaudit.evaluators.extraction import (
    ExtractionConfig,
    extracted,
    extraction_targets,
    pii_extraction,
    rate,
    summarise,
)
from dpaudit.models.tiny import init_tiny_model
from tests.conftest import MICRO, make_records
from tests.evaluators.model_helpers import train


@pytest.fixture(scope="module")
def leaky(micro_tokenizer):
    """A LoRA (all linear layers, r = 16) trained until it recites the 8 members' 8-digit numbers."""
    from peft import LoraConfig, get_peft_model

    records = make_records(16, seed=7)
    model = init_tiny_model(micro_tokenizer, MICRO, seed=0)
    config = LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = train(get_peft_model(model, config), micro_tokenizer, records[:8], steps=300, lr=1e-2, batch_size=8)
    return SimpleNamespace(model=model, tokenizer=micro_tokenizer), records[:8], records[8:]


@pytest.mark.slow
def test_memorised_members_are_extracted_and_the_base_guesses_nothing(leaky):
    loaded, members, nonmembers = leaky
    config = ExtractionConfig(samples=2, max_length=64)
    result = pii_extraction(loaded=loaded, members=members, nonmembers=nonmembers, config=config)
    assert result["n_targets"] == {"members": 8, "nonmembers": 8}  # the account numbers, found by the detector
    adapter, base = result["adapter"], result["base"]
    assert adapter["members"]["overall"]["greedy"]["rate"] >= 0.5
    assert adapter["members"]["by_type"]["account"]["best_of_n"]["rate"] >= adapter["members"]["overall"]["greedy"]["rate"]
    assert adapter["gap"]["greedy"] >= 0.5  # random digits: non-members cannot be guessed
    assert base["members"]["overall"]["best_of_n"]["rate"] == 0.0
    assert result["examples"] and result["examples"][0]["member"]
    again = pii_extraction(loaded=loaded, members=members, nonmembers=nonmembers, config=config)
    assert again["adapter"] == adapter  # seeded sampling: same seed, same numbers


def _record(rid, user, answer, spans=()):
    return Record(id=rid, messages=(Message("user", user), Message("assistant", answer)), pii=tuple(spans))


def test_targets_are_assistant_spans_the_prompt_does_not_already_hold():
    copied = _record("a", "My phone is (201) 555-0143.", "Call (201) 555-0143.")  # detected: phone in both turns
    secret = _record("b", "What is my phone?", "It is (201) 555-0199.")
    targets = extraction_targets([copied, secret], member=True)
    assert [(t.record.id, t.span.value, t.member) for t in targets] == [("b", "(201) 555-0199", True)]
    marked = _record("c", "Hi", "Dear Ana Li, hello Ana Li", [PiiSpan(1, 5, 11, "name", "Ana Li"), PiiSpan(1, 19, 25, "name", "Ana Li")])
    assert [t.span.start for t in extraction_targets([marked], member=False)] == [5]  # the repeat is copyable


def test_extraction_check_is_a_verbatim_prefix():
    assert extracted(" (201) 555-0143 and more", "(201) 555-0143")
    assert not extracted("(201) 555-0144", "(201) 555-0143")
    assert not extracted("call (201) 555-0143", "(201) 555-0143")


def test_rates_carry_exact_clopper_pearson_intervals():
    from scipy.stats import beta

    out = rate(3, 20)
    assert out["rate"] == 0.15
    np.testing.assert_allclose(out["ci95"], [beta.ppf(0.025, 3, 18), beta.ppf(0.975, 4, 17)])
    assert rate(0, 10)["ci95"][0] == 0.0 and rate(10, 10)["ci95"][1] == 1.0
    assert rate(0, 0) == {"k": 0, "n": 0, "rate": None, "ci95": None}


def test_summary_splits_members_types_and_gap():
    rows = [
        {"member": True, "type": "phone", "greedy": True, "best_of_n": True},
        {"member": True, "type": "email", "greedy": False, "best_of_n": True},
        {"member": False, "type": "phone", "greedy": False, "best_of_n": False},
        {"member": False, "type": "phone", "greedy": False, "best_of_n": True},
    ]
    out = summarise(rows)
    assert out["members"]["overall"]["greedy"]["rate"] == 0.5
    assert out["members"]["by_type"]["email"]["best_of_n"]["k"] == 1
    assert out["gap"] == {"greedy": 0.5, "best_of_n": 0.5}


def test_config_collects_every_problem():
    with pytest.raises(ConfigError, match="`samples`.*`max_targets`"):
        ExtractionConfig(samples=-1, max_targets=0)
