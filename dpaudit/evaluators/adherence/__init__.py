"""Deterministic instruction-adherence judge (IFEval-style verifiable instructions, our own checkers).

- :mod:`.checkers`: ``CHECKERS``, one checker per type id of :data:`dpaudit.data.constraints.CONSTRAINT_TYPES`;
- :mod:`.judge`: ``judge_response`` (strict and loose verdicts for one response);
- :mod:`.scoring`: ``score_responses`` (prompt/instruction × strict/loose, per type, bootstrap CIs), ``mcnemar``;
- :mod:`.side_metrics`: empty-response rate, distinct-2, length ratio, ROUGE-L;
- :mod:`.items`: responses files (JSONL) and ``judge_file`` behind ``dpaudit judge``.
"""

from dpaudit.evaluators.adherence.checkers import CHECKERS, CheckContext
from dpaudit.evaluators.adherence.items import AdherenceItem, JudgeReport, judge_file, load_items
from dpaudit.evaluators.adherence.judge import ConstraintVerdict, ResponseVerdict, judge_response, loose_variants
from dpaudit.evaluators.adherence.scoring import AdherenceResult, TypeAccuracy, aggregate, mcnemar, score_responses
from dpaudit.evaluators.adherence.side_metrics import SideMetrics, rouge_l_f1, side_metrics

__all__ = [
    "CHECKERS",
    "AdherenceItem",
    "AdherenceResult",
    "CheckContext",
    "ConstraintVerdict",
    "JudgeReport",
    "ResponseVerdict",
    "SideMetrics",
    "TypeAccuracy",
    "aggregate",
    "judge_file",
    "judge_response",
    "load_items",
    "loose_variants",
    "mcnemar",
    "rouge_l_f1",
    "score_responses",
    "side_metrics",
]
