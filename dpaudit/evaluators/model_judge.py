"""An optional model judge: checklist questions answered YES or NO by a language model.

For each (response, instruction) pair the judge model is asked, in one user turn,

    Here is a request and a response to it.
    Request: <prompt>
    Response: <response>
    Does the response follow this instruction: "<instruction text>"? Answer YES or NO.

and its verdict is read from the next-token distribution after the generation header, not from
sampled text: P(YES) is the total probability of the first tokens of ``"YES"``, ``" YES"``,
``"Yes"``, ``" Yes"`` (deduplicated), P(NO) that of ``"NO"``, ``" NO"``, ``"No"``, ``" No"``; a token
that starts both a YES and a NO variant (a bare space, say) is dropped from both. The verdict is
``P(YES) > P(NO)``; ``p_yes`` = P(YES) / (P(YES) + P(NO)) is reported as the judge's confidence.
Deterministic (no sampling) and one forward pass per batch, with the head run on the last
position only.

A model judge can be wrong in ways the deterministic checkers cannot, so before its numbers are
used :func:`agreement` measures it against the checkers on items where they know the answer
(accuracy and Cohen's kappa; kappa near 0 means chance-level agreement).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dpaudit.data.records import Message, Record
from dpaudit.data.tokenize import encode_prompt
from dpaudit.errors import ConfigError
from dpaudit.evaluators.generation import left_pad
from dpaudit.models.scoring import _accepts_logits_to_keep

YES_VARIANTS = ("YES", " YES", "Yes", " Yes")
NO_VARIANTS = ("NO", " NO", "No", " No")
DEFAULT_JUDGE_MAX_LENGTH = 1024
DEFAULT_JUDGE_BATCH_SIZE = 8


@dataclass(frozen=True)
class JudgeItem:
    """One checklist question: does ``response`` (to ``prompt``) obey ``constraint``?"""

    prompt: str
    response: str
    constraint: Mapping[str, Any]


def checklist_question(item: JudgeItem, instruction: str) -> str:
    """The user turn put to the judge model (``instruction`` is the constraint's text)."""
    return (
        "Here is a request and a response to it.\n\n"
        f"Request:\n{item.prompt}\n\n"
        f"Response:\n{item.response}\n\n"
        f'Does the response follow this instruction: "{instruction}"? Answer YES or NO.'
    )


def answer_token_ids(tokenizer) -> tuple[list[int], list[int]]:
    """First-token ids of the YES variants and of the NO variants, with shared ids removed."""

    def firsts(variants: Sequence[str]) -> list[int]:
        ids: list[int] = []
        for text in variants:
            encoded = tokenizer(text, add_special_tokens=False)["input_ids"]
            if encoded and encoded[0] not in ids:
                ids.append(int(encoded[0]))
        return ids

    yes, no = firsts(YES_VARIANTS), firsts(NO_VARIANTS)
    shared = set(yes) & set(no)
    yes, no = [i for i in yes if i not in shared], [i for i in no if i not in shared]
    if not yes or not no:
        raise ConfigError("the judge's tokenizer cannot tell YES from NO by their first tokens")
    return yes, no


class ModelJudge:
    """Answers checklist questions with a causal LM (``model``, ``tokenizer`` as from ``load_base``).

    ``describe`` turns a constraint into its instruction text
    (:func:`dpaudit.data.constraints.describe` by default).
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        batch_size: int = DEFAULT_JUDGE_BATCH_SIZE,
        max_length: int = DEFAULT_JUDGE_MAX_LENGTH,
        describe=None,
    ) -> None:
        if batch_size <= 0:
            raise ConfigError(f"`batch_size` must be > 0, got {batch_size}")
        if max_length <= 0:
            raise ConfigError(f"`max_length` must be > 0, got {max_length}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length
        self.describe = describe

    def p_yes(self, items: Sequence[JudgeItem]) -> np.ndarray:
        """(n,) P(YES) / (P(YES) + P(NO)) for each item; the verdict is ``p_yes > 0.5``."""
        if not items:
            return np.zeros(0)
        describe = self.describe or _default_describe()
        yes_ids, no_ids = answer_token_ids(self.tokenizer)
        prompts = [self._encode(checklist_question(item, describe(dict(item.constraint)))) for item in items]
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        out = np.empty(len(items))
        device = next(self.model.parameters()).device
        keep = _accepts_logits_to_keep(self.model)
        was_training = self.model.training
        self.model.eval()
        try:
            order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                input_ids, mask = left_pad([prompts[i] for i in rows], pad_id=int(pad_id or 0))
                position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
                kwargs = {"logits_to_keep": 1} if keep else {}
                with torch.inference_mode():
                    logits = self.model(
                        input_ids=input_ids.to(device),
                        attention_mask=mask.to(device),
                        position_ids=position_ids.to(device),
                        use_cache=False,
                        **kwargs,
                    ).logits[:, -1].float()
                logp = torch.log_softmax(logits, dim=-1)
                log_yes = torch.logsumexp(logp[:, yes_ids], dim=-1)
                log_no = torch.logsumexp(logp[:, no_ids], dim=-1)
                p = torch.sigmoid(log_yes - log_no)  # P(YES) / (P(YES) + P(NO))
                for row, value in zip(rows, p.tolist()):
                    out[row] = value
        finally:
            self.model.train(was_training)
        return out

    def verdicts(self, items: Sequence[JudgeItem]) -> np.ndarray:
        """(n,) bool: P(YES) > P(NO)."""
        return self.p_yes(items) > 0.5

    def _encode(self, question: str) -> list[int]:
        record = Record(id="judge", messages=(Message("user", question),))
        return encode_prompt(record, self.tokenizer, max_length=self.max_length)


def agreement(judge: Sequence[bool] | np.ndarray, reference: Sequence[bool] | np.ndarray) -> dict[str, Any]:
    """Accuracy and Cohen's kappa of the judge's verdicts against the reference (the checkers).

    kappa = (p_o − p_e) / (1 − p_e), with p_o the observed agreement and p_e the agreement expected
    by chance from the two YES rates. When p_e = 1 (both always say the same one answer) kappa is
    undefined: a warning is issued and it is NaN.
    """
    j = np.asarray(judge, dtype=bool)
    r = np.asarray(reference, dtype=bool)
    if j.shape != r.shape or j.ndim != 1:
        raise ValueError(f"judge and reference must be 1-D of the same length, got {j.shape} and {r.shape}")
    n = int(j.size)
    if n == 0:
        return {"n": 0, "accuracy": float("nan"), "kappa": float("nan"), "judge_yes_rate": None, "reference_yes_rate": None}
    p_o = float(np.mean(j == r))
    pj, pr = float(j.mean()), float(r.mean())
    p_e = pj * pr + (1 - pj) * (1 - pr)
    if math.isclose(p_e, 1.0):
        warnings.warn("Cohen's kappa is undefined when both raters give one answer only", RuntimeWarning, stacklevel=2)
        kappa = float("nan")
    else:
        kappa = (p_o - p_e) / (1 - p_e)
    return {"n": n, "accuracy": p_o, "kappa": kappa, "judge_yes_rate": pj, "reference_yes_rate": pr}


def _default_describe():
    from dpaudit.data.constraints import describe

    return describe
