"""Adherence of an adapter vs its base on the micro model: prompts, augmentation, counts, McNemar."""

from __future__ import annotations

import random

import numpy as np
import pytest

from dpaudit.data.constraints import describe, sample_constraints
from dpaudit.data.records import Record
from dpaudit.errors import InputError
from dpaudit.evaluators.adherence import mcnemar, score_responses, side_metrics
from dpaudit.evaluators.adherence_eval import augment_record, evaluate_adherence, select_prompts
from dpaudit.evaluators.model_judge import ModelJudge
from tests.conftest import make_records
from tests.evaluators.model_helpers import lora_model, varied_model


def _constrained(records, seed=0):
    rng = random.Random(seed)
    return [augment_record(r, sample_constraints(rng, 1 + i % 2)) for i, r in enumerate(records)]


def test_augment_appends_instructions_and_obeys_them():
    record = make_records(1)[0]
    constraints = sample_constraints(random.Random(3), 2)
    augmented = augment_record(record, constraints)
    assert augmented.prompt.startswith(record.prompt)
    assert all(describe(c) in augmented.prompt for c in constraints)
    assert list(augmented.constraints) == constraints
    verdict = score_responses([{"prompt": augmented.prompt, "constraints": constraints, "response": augmented.response}])
    assert verdict.prompt_strict == 1.0  # the reference was rewritten to follow them


def test_select_prompts():
    plain = make_records(10, prefix="p")
    constrained = _constrained(make_records(4, prefix="c", seed=9))
    chosen, n_aug = select_prompts(plain + constrained, augment=False, limit=None, seed=0)
    assert [r.id for r in chosen] == [r.id for r in constrained] and n_aug == 0
    chosen, n_aug = select_prompts(plain + constrained, augment=True, limit=6, seed=0)
    assert len(chosen) == 6 and all(r.constraints for r in chosen)
    assert n_aug == sum(r.id.startswith("p") for r in chosen)
    again, _ = select_prompts(plain + constrained, augment=True, limit=6, seed=0)
    assert again == chosen  # seeded
    # A record's sampled constraints do not depend on which other records are selected.
    alone, _ = select_prompts([plain[3]], augment=True, limit=None, seed=0)
    everyone, _ = select_prompts(plain, augment=True, limit=None, seed=0)
    assert alone[0] == everyone[3]
    with pytest.raises(InputError, match="--augment"):
        select_prompts(plain, augment=False, limit=None, seed=0)


def test_end_to_end_counts_are_consistent(micro_tokenizer):
    records = _constrained(make_records(6, seed=2)) + make_records(3, prefix="plain")
    model = lora_model(varied_model(micro_tokenizer, scale=0.1))
    report = evaluate_adherence(
        model=model, tokenizer=micro_tokenizer, records=records, augment=True, limit=8, max_new_tokens=12,
        max_length=128, batch_size=3, seed=0, n_bootstrap=50,
        judge=ModelJudge(varied_model(micro_tokenizer), micro_tokenizer),
    )
    n = len(report.prompts)
    assert n == 8
    n_instructions = sum(len(r.constraints) for r in report.prompts)
    for side in (report.adapter, report.base):
        assert len(side.responses) == n
        assert side.adherence.n_prompts == n and side.adherence.n_instructions == n_instructions
    assert report.adapter.responses != report.base.responses  # the adapter changes what is generated

    a, b = report.adapter.adherence.prompt_pass(), report.base.adherence.prompt_pass()
    test = report.mcnemar
    assert test["adapter_only"] + test["base_only"] + test["both"] + test["neither"] == n
    assert test["both"] == int(np.sum(a & b))
    assert (test["statistic"], test["p_value"]) == mcnemar(a, b)
    rescored = score_responses(
        [{"prompt": r.prompt, "constraints": list(r.constraints), "response": t}
         for r, t in zip(report.prompts, report.adapter.responses)], n_bootstrap=0)
    assert rescored.prompt_strict == report.adapter.adherence.prompt_strict
    assert report.adapter.side_metrics == side_metrics(
        responses=report.adapter.responses, references=[r.response for r in report.prompts]).to_json()

    judged = report.model_judge
    assert judged["n_items"] == judged["agreement"]["n"] == 3 * n_instructions  # reference, adapter, base
    assert 0 <= judged["agreement"]["accuracy"] <= 1
    assert set(judged["rates"]) == {"adapter", "base"}

    data = report.to_json()
    assert data["mcnemar_p"] == test["p_value"] and data["n_prompts"] == n
    assert data["adapter"]["prompt_strict"] == report.adapter.adherence.prompt_strict
    assert report.side_metrics_json()["base"]["n"] == n
    assert len(data["examples"]) == 3


def test_deterministic(micro_tokenizer):
    records = _constrained(make_records(4, seed=6))
    model = lora_model(varied_model(micro_tokenizer, scale=0.1))
    kwargs = dict(model=model, tokenizer=micro_tokenizer, records=records, max_new_tokens=8, max_length=128, n_bootstrap=0)
    first, second = evaluate_adherence(**kwargs), evaluate_adherence(**kwargs)
    assert first.adapter.responses == second.adapter.responses and first.base.responses == second.base.responses
    assert isinstance(first.prompts[0], Record)
