"""report.md: a short Markdown summary for a CI job summary or a pull-request comment.

No record text goes here (PR comments are often public): only numbers, attack names and the
verdict. The full picture is in report.html.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dpaudit.report import display as fmt

_VERDICT_ICON = {"consistent": "✅", "VIOLATION": "❌", "no-guarantee": "⚠️"}


def cell(value: Any) -> str:
    """Table-safe text: pipes escaped, newlines flattened."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, right: Sequence[int] = ()) -> str:
    """A GitHub-flavoured Markdown table; ``right`` lists right-aligned (numeric) columns."""
    align = ["---:" if i in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def with_ci(value: str, interval: str) -> str:
    return f"{value} {interval}" if interval else value


def render_markdown(report: Mapping[str, Any]) -> str:
    """The Markdown summary: headline, attack table, ε line with verdict, utility line."""
    s = fmt.headline(report)
    lines = [f"## dpaudit: {s['adapter']} ({s['method']})", ""]
    lines.append(
        f"**Highest AUC:** **{s['auc']}** {s['auc_ci']} (`{s['auc_attack']}`) · "
        f"**{s['worst_title']}:** `{s['worst_attack']}`, TPR **{s['tpr']}** {s['tpr_ci']}, "
        f"AUC {s['worst_auc']}".rstrip()
    )
    lines.append("")
    fpr_columns, rows = fmt.attack_rows(report)
    if rows:
        header = ["Attack", "AUC (95% CI)", *[f"TPR@{c} FPR" for c in fpr_columns], "Bal. acc."]
        body = [
            [
                f"**{r['name']}** (worst)" if r["worst"] else r["name"],
                with_ci(r["auc"], r["auc_ci"]),
                *r["tprs"],
                r["balanced_accuracy"],
            ]
            for r in rows
        ]
        lines += [table(header, body, right=range(1, len(header))), ""]
    else:
        lines += ["No attack was run.", ""]
    if report.get("epsilon"):
        icon = _VERDICT_ICON.get(s["verdict"], "")
        source = f" ({s['epsilon_empirical_source']})" if s["epsilon_empirical_source"] else ""
        accountant = f", {s['epsilon_accountant']}" if s["epsilon_accountant"] else ""
        lines.append(
            f"**ε:** theory {s['epsilon_theory']}{accountant} · empirical lower bound {s['epsilon_empirical']}{source} · "
            f"δ = {s['delta']} · verdict: {icon} **{s['verdict']}**"
        )
        lines += [f"- {note}" for note in s["epsilon_notes"]]
    else:
        lines.append("**ε:** not compared in this audit.")
    lines.append("")
    utility = []
    if s["adherence"] != fmt.MISSING:
        base = f" (base {s['adherence_base']})" if s["adherence_base"] != fmt.MISSING else ""
        utility.append(f"adherence (prompt, strict) {with_ci(s['adherence'], s['adherence_ci'])}{base}")
    if s["ppl_heldout"] != fmt.MISSING:
        utility.append(f"perplexity held-out {s['ppl_heldout']}, members {s['ppl_member']} (gap ×{s['ppl_gap']})")
    lines.append("**Utility:** " + (" · ".join(utility) if utility else "not evaluated in this audit."))
    exposure = report.get("exposure")
    if exposure and exposure.get("per_repeat"):
        parts = [f"{k}×: {fmt.num(v, 1)} bits" for k, v in exposure["per_repeat"].items()]
        lines += ["", "**Canary exposure:** " + " · ".join(parts)]
    pii = report.get("pii_extraction")
    if pii:
        lines += ["", pii_line(pii)]
    lines += ["", "_AUC 0.5 and TPR equal to the FPR mean an attacker does no better than guessing. "
              "Full report with ROC curves: report.html._", ""]
    return "\n".join(lines)


def pii_line(pii: Mapping[str, Any]) -> str:
    """PII extraction in one line: rates only (never a value: report.md may be posted publicly)."""
    parts = []
    for model in ("adapter", "base"):
        members, nonmembers = (_best_of_n(pii[model][side]) for side in ("members", "nonmembers"))
        parts.append(f"{model} {fmt.num(members.get('rate'))} of members' spans ({members.get('k')}/{members.get('n')}) "
                     f"vs {fmt.num(nonmembers.get('rate'))} of non-members' "
                     f"(gap {fmt.num((pii[model].get('gap') or {}).get('best_of_n'))})")
    return f"**PII extraction** (best of {(pii.get('config') or {}).get('samples')}): " + " · ".join(parts)


def _best_of_n(side: Mapping[str, Any]) -> Mapping[str, Any]:
    return (side.get("overall") or {}).get("best_of_n") or {}
