"""Model judge: YES/NO from next-token probabilities, batched like one at a time, agreement maths."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from sklearn.metrics import cohen_kappa_score

from dpaudit.data.constraints import describe, sample_constraints
from dpaudit.data.records import Message, Record
from dpaudit.data.tokenize import encode_prompt
from dpaudit.evaluators.adherence import judge_response
from dpaudit.evaluators.model_judge import JudgeItem, ModelJudge, agreement, answer_token_ids, checklist_question
from tests.evaluators.model_helpers import varied_model


def _items(n: int = 12) -> list[JudgeItem]:
    rng = random.Random(0)
    responses = ["hello there", "HELLO THERE", "- one\n- two\n- three", "", "word " * 30, "a, b, c", "Café ☕ ok"]
    items = []
    for i in range(n):
        for constraint in sample_constraints(rng, 2, enforceable_only=False):
            items.append(JudgeItem(prompt=f"Write something about topic {i}.", response=responses[i % len(responses)],
                                   constraint=constraint))
    return items


@pytest.fixture()
def judge(micro_tokenizer):
    return ModelJudge(varied_model(micro_tokenizer), micro_tokenizer, batch_size=5)


def test_answer_tokens_are_distinct(micro_tokenizer):
    yes, no = answer_token_ids(micro_tokenizer)
    assert yes and no and not set(yes) & set(no)
    assert micro_tokenizer.decode(yes[0]).strip().upper().startswith("Y")
    assert micro_tokenizer.decode(no[0]).strip().upper().startswith("N")


def test_p_yes_is_the_normalised_next_token_probability(judge, micro_tokenizer):
    items = _items(3)
    got = judge.p_yes(items)
    yes, no = answer_token_ids(micro_tokenizer)
    for item, value in zip(items, got):
        question = checklist_question(item, describe(dict(item.constraint)))
        ids = encode_prompt(Record(id="q", messages=(Message("user", question),)), micro_tokenizer, max_length=1024)
        with torch.no_grad():
            probs = torch.softmax(judge.model(input_ids=torch.tensor([ids])).logits[0, -1].double(), -1)
        p_yes, p_no = float(probs[yes].sum()), float(probs[no].sum())
        assert value == pytest.approx(p_yes / (p_yes + p_no), abs=1e-5)
    assert set(judge.verdicts(items)) <= {True, False}


def test_batched_equals_one_by_one(judge):
    items = _items()
    batched = judge.p_yes(items)
    single = np.array([judge.p_yes([item])[0] for item in items])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert judge.p_yes([]).shape == (0,)


def test_agreement_with_the_checkers_is_computed_correctly(judge):
    items = _items()
    truth = [
        judge_response(prompt=i.prompt, constraints=[i.constraint], response=i.response).results[0].strict for i in items
    ]
    verdicts = judge.verdicts(items)
    got = agreement(verdicts, truth)
    assert got["n"] == len(items)
    assert got["accuracy"] == pytest.approx(np.mean(np.array(verdicts) == np.array(truth)))
    if len(set(verdicts)) > 1 or len(set(truth)) > 1:
        assert got["kappa"] == pytest.approx(cohen_kappa_score(truth, verdicts))
    assert got["reference_yes_rate"] == pytest.approx(np.mean(truth))


@pytest.mark.parametrize(
    "judge_says, truth",
    [([1, 1, 0, 0, 1, 0], [1, 0, 0, 1, 1, 0]), ([1, 1, 1, 0], [0, 0, 0, 1]), ([1, 0, 1, 0], [1, 0, 1, 0])],
)
def test_agreement_matches_sklearn(judge_says, truth):
    got = agreement(np.array(judge_says, bool), np.array(truth, bool))
    assert got["kappa"] == pytest.approx(cohen_kappa_score(truth, judge_says))
    assert got["accuracy"] == pytest.approx(np.mean(np.array(judge_says) == np.array(truth)))


def test_degenerate_agreement():
    with pytest.warns(RuntimeWarning, match="undefined"):
        got = agreement([True, True], [True, True])
    assert got["accuracy"] == 1.0 and math.isnan(got["kappa"])
    assert agreement([], [])["n"] == 0
    with pytest.raises(ValueError):
        agreement([True], [True, False])
