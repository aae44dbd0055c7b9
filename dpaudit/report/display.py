"""Numbers → short strings, and the headline facts of a report, shared by HTML, Markdown and compare.

One place decides how an AUC, a TPR, an ε or a missing value is written, so the three renderings
never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from dpaudit.evaluators.mia_metrics import WORST_CASE_FPR, fpr_key

MISSING = "—"
NOT_DP = "∞ (not DP)"
VERDICT_CLASS = {"consistent": "ok", "VIOLATION": "bad", "no-guarantee": "warn"}


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def num(value: Any, digits: int = 3) -> str:
    """``0.71234 -> "0.712"``; None/NaN → "—"; ∞ → "∞"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.{digits}f}" if is_number(value) else MISSING


def pct(value: Any, digits: int = 1) -> str:
    """A rate in [0, 1] as a percentage: ``0.295 -> "29.5%"``."""
    return f"{100 * value:.{digits}f}%" if is_number(value) else MISSING


def ci(interval: Any, fmt: Any = num) -> str:
    """``[0.61, 0.74] -> "[0.610, 0.740]"``; missing or undefined → ""."""
    if not interval or len(interval) != 2 or not all(is_number(v) for v in interval):
        return ""
    return f"[{fmt(interval[0])}, {fmt(interval[1])}]"


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested metrics as (label, text) rows: ``{"adapter": {"distinct_2": 0.7}} -> [("adapter: distinct_2", "0.700")]``."""
    rows: list[tuple[str, str]] = []
    for key, value in mapping.items():
        label = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows += flatten(value, prefix=f"{label}: ")
        elif not isinstance(value, (list, tuple)):
            rows.append((label, num(value) if is_number(value) else MISSING if value is None else str(value)))
    return rows


def fpr_label(key: str) -> str:
    """JSON FPR key → column label: ``"0.001" -> "0.1%"``."""
    return f"{100 * float(key):g}%"


def fpr_keys(attacks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The target FPRs present in any attack, smallest first."""
    keys = {key for metrics in attacks.values() for key in (metrics.get("tpr_at_fpr") or {})}
    return sorted(keys, key=float)


def adapter_label(report: Mapping[str, Any]) -> str:
    adapter = report.get("adapter") or {}
    name = adapter.get("name")
    if name:
        return str(name)
    path = str(adapter.get("path") or "adapter").rstrip("/")
    return path.rsplit("/", 1)[-1] or path


def method(report: Mapping[str, Any]) -> str | None:
    card = (report.get("adapter") or {}).get("card") or {}
    return card.get("method")


def theory_epsilon(report: Mapping[str, Any]) -> float | None:
    """The ε the training promises: the card's accountant if given, else the largest (most cautious).

    ``math.inf`` for a non-DP adapter (no theory); None when the report has no ε section.
    """
    epsilon = report.get("epsilon")
    if epsilon is None:
        return None
    theory = epsilon.get("theory")
    if not theory:
        return math.inf
    accountant = epsilon.get("accountant")
    if accountant in theory and is_number(theory[accountant]):
        return float(theory[accountant])
    values = [float(v) for v in theory.values() if is_number(v)]
    return max(values) if values else math.inf


def strongest_empirical(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """The largest empirical ε lower bound that is a bound (not an estimate such as gdp)."""
    entries = [
        e for e in ((report.get("epsilon") or {}).get("empirical") or []) if e.get("is_bound") and is_number(e.get("epsilon_lb"))
    ]
    return max(entries, key=lambda e: e["epsilon_lb"]) if entries else None


def epsilon_text(value: float | None) -> str:
    if value is None:
        return MISSING
    return NOT_DP if math.isinf(value) else num(value, 2)


def adherence_rates(report: Mapping[str, Any], who: str = "adapter") -> Mapping[str, Any] | None:
    adherence = (report.get("utility") or {}).get("adherence") or {}
    return adherence.get(who)


def perplexity(report: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return (report.get("utility") or {}).get("perplexity")


def headline(report: Mapping[str, Any]) -> dict[str, Any]:
    """The summary-card facts, as display strings (plus the raw numbers under ``*_value``)."""
    attacks = report.get("attacks") or {}
    worst = report.get("worst_case_attack")
    metrics = attacks.get(worst) or {}
    key = fpr_key(WORST_CASE_FPR)
    theory = theory_epsilon(report)
    empirical = strongest_empirical(report)
    epsilon = report.get("epsilon") or {}
    rates = adherence_rates(report)
    base_rates = adherence_rates(report, "base")
    ppl = perplexity(report)
    return {
        "adapter": adapter_label(report),
        "method": method(report) or "unknown method",
        "worst_attack": worst or MISSING,
        "auc": num(metrics.get("auc")),
        "auc_value": metrics.get("auc"),
        "auc_ci": ci(metrics.get("auc_ci95")),
        "tpr": pct(metrics.get("tpr_at_fpr", {}).get(key)),
        "tpr_ci": ci((metrics.get("tpr_at_fpr_ci95") or {}).get(key), pct),
        "tpr_fpr": fpr_label(key),
        "epsilon_theory": epsilon_text(theory),
        "epsilon_accountant": epsilon.get("accountant") or "",
        "epsilon_empirical": num(empirical["epsilon_lb"], 2) if empirical else MISSING,
        "epsilon_empirical_source": (
            f"{empirical['attack']}, {empirical['method']}, {pct(empirical['confidence'], 1)} conf."
            if empirical else ""
        ),
        "delta": f"{epsilon['delta']:g}" if is_number(epsilon.get("delta")) else MISSING,
        "verdict": epsilon.get("verdict") or MISSING,
        "verdict_class": VERDICT_CLASS.get(epsilon.get("verdict") or "", "muted"),
        "adherence": pct(rates.get("prompt_strict")) if rates else MISSING,
        "adherence_ci": ci(((rates or {}).get("ci95") or {}).get("prompt_strict"), pct),
        "adherence_base": pct(base_rates.get("prompt_strict")) if base_rates else MISSING,
        "ppl_heldout": num((ppl or {}).get("heldout"), 2),
        "ppl_member": num((ppl or {}).get("member"), 2),
        "ppl_gap": num((ppl or {}).get("gap"), 2),
    }


def attack_rows(report: Mapping[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """(FPR column labels, one display row per attack), the worst-case attack flagged."""
    attacks = report.get("attacks") or {}
    keys = fpr_keys(attacks)
    rows = []
    for name, metrics in attacks.items():
        tprs = metrics.get("tpr_at_fpr") or {}
        tpr_cis = metrics.get("tpr_at_fpr_ci95") or {}
        rows.append({
            "name": name,
            "worst": name == report.get("worst_case_attack"),
            "auc": num(metrics.get("auc")),
            "auc_ci": ci(metrics.get("auc_ci95")),
            "tprs": [pct(tprs.get(k)) for k in keys],
            "tpr_cis": [ci(tpr_cis.get(k), pct) for k in keys],
            "balanced_accuracy": num(metrics.get("balanced_accuracy")),
            "n_members": metrics.get("n_members"),
            "n_nonmembers": metrics.get("n_nonmembers"),
            "n_nonfinite": metrics.get("n_nonfinite") or 0,
        })
    return [fpr_label(k) for k in keys], rows
