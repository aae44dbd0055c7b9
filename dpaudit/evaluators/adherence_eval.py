"""Instruction adherence of an adapter against its bare base, on the same prompts.

1. **Prompts**: the records that carry ``constraints`` (the synthetic generator gives half of them
   one to three). With ``augment=True`` the others get constraints too: one to
   :data:`~dpaudit.data.synth.MAX_CONSTRAINTS` mutually compatible ones from
   :func:`~dpaudit.data.constraints.sample_constraints`, drawn from a generator seeded by
   ``(seed, record id)`` so a record's constraints do not depend on which others are selected.
   As in the synthetic generator, their instruction texts are appended to the last user message
   and the reference answer is rewritten to obey them (:func:`~dpaudit.data.constraints.enforce`),
   so that ROUGE-L is measured against an answer that follows the instructions. ``limit`` keeps a
   seeded random subset (in file order).
2. **Responses**: batched greedy decoding (:mod:`dpaudit.evaluators.generation`) with the adapter,
   then with the adapter switched off (``disable_adapter()``: the same base weights, no copy).
3. **Judging**: the deterministic checkers (:func:`dpaudit.evaluators.adherence.score_responses`),
   strict and loose, prompt and instruction level with bootstrap CIs; an exact McNemar test on
   prompt-level strict passes (paired: the same prompt under both models).
4. **Side metrics** that expose degenerate (for instance over-noised DP) outputs: empty-response
   rate, distinct-2, mean length ratio to the reference, ROUGE-L F1 against the reference.
5. Optionally a **model judge** (:mod:`dpaudit.evaluators.model_judge`): its agreement with the
   checkers first (on the reference, base and adapter responses), then its own pass rates.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dpaudit.data import constraints as constraint_lib
from dpaudit.data.records import Message, Record
from dpaudit.data.synth import MAX_CONSTRAINTS
from dpaudit.errors import ConfigError, InputError
from dpaudit.evaluators.adherence import AdherenceResult, mcnemar, score_responses, side_metrics
from dpaudit.evaluators.defaults import ADHERENCE_LIMIT, GENERATION_BATCH_SIZE, MAX_NEW_TOKENS
from dpaudit.evaluators.generation import generate_responses
from dpaudit.evaluators.model_judge import JudgeItem, ModelJudge, agreement
from dpaudit.evaluators.perplexity import adapter_disabled

N_EXAMPLES = 3  # responses shown per model in the result, for a look at what the numbers mean


# --------------------------------------------------------------------------- prompts


def augment_record(record: Record, constraints: Sequence[dict[str, Any]]) -> Record:
    """``record`` with ``constraints`` appended to its last user message and obeyed by its last answer."""
    messages = list(record.messages)
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    if not users:
        raise InputError(f"record {record.id!r} has no user message to add instructions to")
    user = users[-1]
    instruction = messages[user].content
    sep = "\n\n" if "\n" in instruction else " "
    instruction = instruction + sep + " ".join(constraint_lib.describe(c) for c in constraints)
    messages[user] = Message("user", instruction)
    answers = [i for i, m in enumerate(messages) if m.role == "assistant"]
    if answers:
        answer = answers[-1]
        messages[answer] = Message(
            "assistant", constraint_lib.enforce(messages[answer].content, constraints, prompt=instruction)
        )
    return Record(id=record.id, messages=tuple(messages), category=record.category, constraints=tuple(constraints))


def select_prompts(records: Sequence[Record], *, augment: bool, limit: int | None, seed: int) -> tuple[list[Record], int]:
    """The records to evaluate (augmented where asked) and how many were augmented.

    Records without a user turn are skipped; ``limit`` picks a seeded subset, kept in input order.
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"`limit` must be >= 1, got {limit}")
    eligible = [r for r in records if any(m.role == "user" for m in r.messages) and (r.constraints or augment)]
    if not eligible:
        if augment:
            raise InputError("no record has a user message to generate a response to")
        raise InputError(
            "no record has constraints to judge; pass --augment to add sampled instructions to any prompt"
        )
    if limit is not None and len(eligible) > limit:
        keep = sorted(random.Random(seed).sample(range(len(eligible)), limit))
        eligible = [eligible[i] for i in keep]
    out, n_augmented = [], 0
    for record in eligible:
        if record.constraints:
            out.append(record)
            continue
        rng = random.Random(f"{seed}:{record.id}")
        k = rng.randint(1, MAX_CONSTRAINTS)
        out.append(augment_record(record, constraint_lib.sample_constraints(rng, k, enforceable_only=True)))
        n_augmented += 1
    return out, n_augmented


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class ModelResponses:
    """One model's responses to the prompts, judged."""

    responses: list[str]
    adherence: AdherenceResult
    side_metrics: dict[str, Any]


@dataclass(frozen=True)
class AdherenceReport:
    prompts: list[Record]
    n_augmented: int
    adapter: ModelResponses
    base: ModelResponses | None
    mcnemar: dict[str, Any] | None
    model_judge: dict[str, Any] | None
    settings: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The report schema's ``utility.adherence`` (``adapter``, ``base``, ``mcnemar_p``) plus details."""
        return {
            "adapter": self.adapter.adherence.to_json(),
            "base": self.base.adherence.to_json() if self.base else None,
            "mcnemar_p": self.mcnemar["p_value"] if self.mcnemar else None,
            "mcnemar": self.mcnemar,
            "n_prompts": len(self.prompts),
            "n_augmented": self.n_augmented,
            "model_judge": self.model_judge,
            "settings": self.settings,
            "examples": self.examples(),
        }

    def side_metrics_json(self) -> dict[str, Any]:
        """The report schema's ``utility.side_metrics``: ``{"adapter": {...}, "base": {...}}``."""
        return {"adapter": self.adapter.side_metrics, "base": self.base.side_metrics if self.base else None}

    def examples(self, n: int = N_EXAMPLES) -> list[dict[str, Any]]:
        out = []
        for i, record in enumerate(self.prompts[:n]):
            out.append(
                {
                    "id": record.id,
                    "prompt": record.prompt,
                    "reference": record.response,
                    "adapter": self.adapter.responses[i],
                    "base": self.base.responses[i] if self.base else None,
                }
            )
        return out


def evaluate_adherence(
    *,
    model,
    tokenizer,
    records: Sequence[Record],
    augment: bool = False,
    limit: int | None = ADHERENCE_LIMIT,
    max_new_tokens: int = MAX_NEW_TOKENS,
    max_length: int = 512,
    batch_size: int = GENERATION_BATCH_SIZE,
    seed: int = 0,
    with_base: bool = True,
    judge: ModelJudge | None = None,
    n_bootstrap: int | None = None,
    progress: bool = False,
) -> AdherenceReport:
    """Generate with the adapter (and the bare base), judge both, compare (see the module doc).

    ``model`` is the adapter's ``PeftModel``; a model without ``disable_adapter`` gets no base run.
    """
    prompts, n_augmented = select_prompts(records, augment=augment, limit=limit, seed=seed)
    gen = {"tokenizer": tokenizer, "records": prompts, "max_new_tokens": max_new_tokens, "max_length": max_length,
           "batch_size": batch_size, "progress": progress}
    score_kwargs: dict[str, Any] = {"seed": seed}
    if n_bootstrap is not None:
        score_kwargs["n_bootstrap"] = n_bootstrap
    adapter = _judged(generate_responses(model=model, **gen), prompts, score_kwargs)
    base = None
    if with_base and hasattr(model, "disable_adapter"):
        with adapter_disabled(model):
            base = _judged(generate_responses(model=model, **gen), prompts, score_kwargs)
    test = None
    if base is not None:
        a_pass, b_pass = adapter.adherence.prompt_pass(), base.adherence.prompt_pass()
        statistic, p_value = mcnemar(a_pass, b_pass)
        test = {
            "level": "prompt_strict",
            "statistic": statistic,
            "p_value": p_value,
            "adapter_only": int(np.sum(a_pass & ~b_pass)),
            "base_only": int(np.sum(~a_pass & b_pass)),
            "both": int(np.sum(a_pass & b_pass)),
            "neither": int(np.sum(~a_pass & ~b_pass)),
        }
    judged = _model_judge(judge, prompts, adapter, base) if judge is not None else None
    settings = {
        "augment": augment,
        "limit": limit,
        "max_new_tokens": max_new_tokens,
        "max_length": max_length,
        "decoding": "greedy",
        "seed": seed,
    }
    return AdherenceReport(prompts, n_augmented, adapter, base, test, judged, settings)


def _judged(responses: list[str], prompts: Sequence[Record], score_kwargs: dict[str, Any]) -> ModelResponses:
    items = [
        {"id": r.id, "prompt": r.prompt, "constraints": [dict(c) for c in r.constraints], "response": text}
        for r, text in zip(prompts, responses)
    ]
    result = score_responses(items, **score_kwargs)
    metrics = side_metrics(responses=responses, references=[r.response for r in prompts])
    return ModelResponses(responses=responses, adherence=result, side_metrics=_jsonable(metrics))


def _jsonable(metrics: Any) -> dict[str, Any]:
    if hasattr(metrics, "to_json"):
        return metrics.to_json()
    return dict(metrics)


# --------------------------------------------------------------------------- model judge


def _model_judge(
    judge: ModelJudge, prompts: Sequence[Record], adapter: ModelResponses, base: ModelResponses | None
) -> dict[str, Any]:
    """Agreement with the checkers on every (response, instruction) item, then the judge's pass rates.

    Items come from the reference answers (which obey their instructions by construction, so the
    set holds passes as well as the generated responses' typical failures), the adapter's and the
    base's responses. The checkers' strict verdicts are the ground truth.
    """
    sources = {"reference": [r.response for r in prompts], "adapter": adapter.responses}
    if base is not None:
        sources["base"] = base.responses
    items: list[JudgeItem] = []
    truth: list[bool] = []
    owner: list[tuple[str, int]] = []  # (source, prompt index) of each item
    for name, responses in sources.items():
        # Every selected prompt has constraints, so the verdicts line up with the prompts.
        verdicts = score_responses(
            [{"prompt": r.prompt, "constraints": [dict(c) for c in r.constraints], "response": text}
             for r, text in zip(prompts, responses)],
            n_bootstrap=0,
        ).verdicts
        for index, (record, response, verdict) in enumerate(zip(prompts, responses, verdicts)):
            for constraint, checked in zip(record.constraints, verdict.results):
                items.append(JudgeItem(prompt=record.prompt, response=response, constraint=constraint))
                truth.append(bool(checked.strict))
                owner.append((name, index))
    yes = judge.verdicts(items)
    out: dict[str, Any] = {"agreement": agreement(yes, truth), "n_items": len(items), "rates": {}}
    for name in ("adapter", "base"):
        picks = [i for i, (src, _) in enumerate(owner) if src == name]
        if not picks:
            continue
        by_prompt: dict[int, list[bool]] = {}
        for i in picks:
            by_prompt.setdefault(owner[i][1], []).append(bool(yes[i]))
        out["rates"][name] = {
            "prompt": float(np.mean([all(v) for v in by_prompt.values()])),
            "instruction": float(np.mean([yes[i] for i in picks])),
        }
    return out
