"""Numbers → short strings, and the headline facts of a report, shared by HTML, Markdown and compare.

One place decides how an AUC, a TPR, an ε or a missing value is written, so the three renderings
never disagree. It also holds the one definition of the headline numbers: the *worst-case attack* is
the one with the highest TPR at :data:`WORST_CASE_FPR` (ties by AUC; :func:`worst_case_label` names
that criterion wherever it is shown), and the *highest AUC* is the largest AUC of any attack, shown
as such (it is what ``gate --max-auc`` checks).
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


def confidence(value: Any) -> str:
    """A confidence level with every digit it has: ``0.95 -> "95%"``, ``0.995 -> "99.5%"`` (never "100%")."""
    return f"{100 * value:.10g}%" if is_number(value) else MISSING


def count(value: Any) -> str:
    """A count as an integer (``16.0 -> "16"``); anything else as a number."""
    if is_number(value) and float(value).is_integer():
        return str(int(value))
    return num(value)


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
            shown = (count(value) if isinstance(value, int) else num(value)) if is_number(value) else None
            rows.append((label, shown or (MISSING if value is None else str(value))))
    return rows


def tpr_text(metrics: Mapping[str, Any], key: str) -> str:
    """TPR at FPR ``key`` as a percentage, or why it is not reported ("needs ≥ 500 non-members")."""
    needs = (metrics.get("tpr_at_fpr_needs") or {}).get(key)
    if needs is not None:
        return f"needs ≥ {needs} non-members"
    return pct((metrics.get("tpr_at_fpr") or {}).get(key))


def fpr_label(key: str) -> str:
    """JSON FPR key → column label: ``"0.001" -> "0.1%"``."""
    return f"{100 * float(key):g}%"


def fpr_keys(attacks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The target FPRs present in any attack, smallest first."""
    keys = {key for metrics in attacks.values() for key in (metrics.get("tpr_at_fpr") or {})}
    return sorted(keys, key=float)


def worst_case_label() -> str:
    """How the worst-case attack is chosen, for every label that shows it."""
    return f"worst case (highest TPR at {fpr_label(fpr_key(WORST_CASE_FPR))} FPR)"


def highest_auc(report: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any]]:
    """(attack, metrics) of the attack with the largest finite AUC; ties go to the first name alphabetically."""
    attacks = report.get("attacks") or {}
    scored = [(name, m) for name, m in sorted(attacks.items()) if is_number(m.get("auc"))]
    if not scored:
        return None, {}
    return max(scored, key=lambda item: item[1]["auc"])


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


def epsilon_text(value: float | None, reason: str | None = None) -> str:
    """An ε for display; ∞ carries the reason there is no guarantee (default: not DP)."""
    if value is None:
        return MISSING
    if math.isinf(value):
        return f"∞ ({reason})" if reason else NOT_DP
    return num(value, 2)


def epsilon_notes(report: Mapping[str, Any]) -> list[str]:
    """Lines under the ε figures: accountants that could not answer, and the group-privacy guarantee."""
    from dpaudit.privacy.group import GroupGuarantee

    epsilon = report.get("epsilon") or {}
    notes = [f"{name}: n/a ({why})" for name, why in (epsilon.get("accountants_unavailable") or {}).items()]
    group = epsilon.get("group_privacy")
    if group:
        notes.append(f"group privacy: {GroupGuarantee(**group).describe()}")
    return notes


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
    top_attack, top = highest_auc(report)
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
        "worst_label": worst_case_label(),
        "worst_title": worst_case_label()[:1].upper() + worst_case_label()[1:],
        "worst_attack": worst or MISSING,
        "worst_auc": num(metrics.get("auc")),
        "auc_attack": top_attack or MISSING,
        "auc": num(top.get("auc")),
        "auc_value": top.get("auc"),
        "auc_ci": ci(top.get("auc_ci95")),
        "tpr": tpr_text(metrics, key),
        "tpr_ci": ci((metrics.get("tpr_at_fpr_ci95") or {}).get(key), pct),
        "tpr_fpr": fpr_label(key),
        "epsilon_theory": epsilon_text(theory, epsilon.get("no_guarantee_reason")),
        "epsilon_notes": epsilon_notes(report),
        "epsilon_accountant": epsilon.get("accountant") or "",
        "epsilon_empirical": num(empirical["epsilon_lb"], 2) if empirical else MISSING,
        "epsilon_empirical_source": (
            f"{empirical['attack']}, {empirical['method']}, {confidence(empirical['confidence'])} conf."
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
            "tprs": [tpr_text(metrics, k) for k in keys],
            "tpr_cis": [ci(tpr_cis.get(k), pct) for k in keys],
            "balanced_accuracy": num(metrics.get("balanced_accuracy")),
            "n_members": metrics.get("n_members"),
            "n_nonmembers": metrics.get("n_nonmembers"),
            "n_nonfinite": metrics.get("n_nonfinite") or 0,
        })
    return [fpr_label(k) for k in keys], rows
