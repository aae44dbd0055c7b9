"""The ε a setting needs for a fixed utility: the DP-LoRA paper's Figure 5 axis, read off an ε ladder.

A grid with a ``[budget]`` table runs every setting at each ε of an ``target_epsilon`` axis (which
must include ``inf``, the non-DP run of the same setting). For each setting (the labels of the other
axes) the utility target is the non-DP value relaxed by ``within``: at most (1 + within) × the non-DP
perplexity, or at least (1 − within) × the non-DP adherence. The ε needed is the smallest ε on the
ladder whose mean over seeds meets it; ``None`` when none does (more than the ladder's largest finite
ε is needed). Reading it off a ladder bounds the answer between two rungs: say so where it is shown::

    [budget]
    axis = "target_epsilon"   # the ε ladder (an axis of the grid, with inf)
    metric = "ppl_heldout"    # or "adherence_strict"
    within = 0.05             # 5% of the non-DP value
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from dpaudit.report import display as fmt

#: Metrics a budget can target, and whether lower values are better.
LOWER_IS_BETTER = {"ppl_heldout": True, "adherence_strict": False}


def epsilon_needed(summary: Sequence[Mapping[str, Any]], *, budget: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per setting: ``{"labels", "reference", "target", "epsilon", "worst_auc", "ladder"}`` (see module doc)."""
    axis, metric, within = budget["axis"], budget["metric"], float(budget["within"])
    lower = LOWER_IS_BETTER[metric]
    settings: dict[tuple[tuple[str, str], ...], dict[float, Mapping[str, Any]]] = {}
    for entry in summary:
        key = tuple((k, v) for k, v in entry["labels"].items() if k != axis)
        settings.setdefault(key, {})[float(entry["labels"][axis])] = entry
    out = []
    for key, ladder in settings.items():
        reference = _mean(ladder.get(math.inf), metric)
        target = None if reference is None else reference * (1 + within if lower else 1 - within)
        needed = None
        for epsilon in sorted(e for e in ladder if math.isfinite(e)):
            value = _mean(ladder[epsilon], metric)
            if target is not None and value is not None and (value <= target if lower else value >= target):
                needed = epsilon
                break
        out.append({
            "labels": dict(key), "reference": reference, "target": target, "epsilon": needed,
            "worst_auc": _mean(ladder.get(needed), "worst_auc") if needed is not None else None,
            "ladder": sorted(e for e in ladder if math.isfinite(e)),
        })
    return out


def budget_table(needed: Sequence[Mapping[str, Any]], *, budget: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the ε-needed table, shared by sweep.md and sweep.html."""
    metric = budget["metric"]
    name = {"ppl_heldout": "perplexity, held-out", "adherence_strict": "adherence, strict"}[metric]
    show = fmt.pct if metric == "adherence_strict" else (lambda v: fmt.num(v, 2))
    axes = list(needed[0]["labels"]) if needed else []
    bound = "≤" if LOWER_IS_BETTER[metric] else "≥"
    header = [*axes, f"{name} without DP", f"target ({bound})", "ε needed", "worst-case AUC at that ε"]
    body = []
    for row in needed:
        if row["epsilon"] is not None:
            epsilon = f"{row['epsilon']:g}"
        elif row["target"] is None:
            epsilon = fmt.MISSING
        else:
            epsilon = f"> {max(row['ladder']):g}" if row["ladder"] else fmt.MISSING
        body.append([*row["labels"].values(), show(row["reference"]), show(row["target"]), epsilon,
                     fmt.num(row["worst_auc"])])
    return header, body


def budget_section(summary: Sequence[Mapping[str, Any]], *, budget: Mapping[str, Any]) -> dict[str, Any]:
    """What sweep.md and sweep.html show: ``header``, ``body``, ``n_axes`` (the label columns), ``note``."""
    header, body = budget_table(epsilon_needed(summary, budget=budget), budget=budget)
    return {"header": header, "body": body, "n_axes": len(header) - 4, "note": describe(budget)}


def describe(budget: Mapping[str, Any]) -> str:
    """One sentence for under the table."""
    bound = "at most" if LOWER_IS_BETTER[budget["metric"]] else "at least"
    factor = 1 + float(budget["within"]) if LOWER_IS_BETTER[budget["metric"]] else 1 - float(budget["within"])
    return (f"ε needed: the smallest ε of the `{budget['axis']}` ladder whose {budget['metric']} is {bound} "
            f"{factor:g} × the same setting's value without DP (the true value lies between that rung and the one below).")


def _mean(entry: Mapping[str, Any] | None, metric: str) -> float | None:
    stat = (entry or {}).get("metrics", {}).get(metric) if entry and entry.get("done") else None
    return None if stat is None or not math.isfinite(stat[0]) else float(stat[0])
