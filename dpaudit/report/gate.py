"""The CI gate: check a report against leakage and utility thresholds, one check per threshold.

A gate fails closed: a metric the report cannot measure (NaN AUC, no CI when ``use_upper_ci``
asks for one) fails its check. A threshold on a section the audit did not run (``min_adherence``
without adherence, ``max_empirical_epsilon`` without an ε comparison) is an input error: the
user asked for something this report cannot answer.

``attack="worst"`` (the default) checks every attack and reports the one with the highest value,
so "no attack reaches AUC 0.6" is what a passing ``max_auc=0.6`` means. ``use_upper_ci`` takes the
pessimistic end of each 95% CI (upper for AUC/TPR, lower for adherence): the safer gate. Empirical
ε lower bounds are already one-sided bounds at their confidence and are compared as they are.
"""

from __future__ import annotations

import math
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from dpaudit.errors import (
    ConfigError,
    InputError,
    MissingDependencyError,
    MissingFileError,
)
from dpaudit.evaluators.mia_metrics import fpr_key
from dpaudit.io import write_text_atomic
from dpaudit.report import display as fmt

WORST = "worst"
CONFIG_TABLE = ("tool", "dpaudit", "gate")
PYPROJECT = "pyproject.toml"
_NUMBER_SETTINGS = {"max_auc", "max_epsilon", "max_empirical_epsilon", "min_adherence", "max_pii_extraction"}


@dataclass(frozen=True)
class GateThresholds:
    """What a report must satisfy; None (or empty) means "not checked".

    ``max_tpr_at_fpr`` holds (fpr, max_tpr) pairs, e.g. ((0.01, 0.05),): at most 5% of members
    identified at 1% FPR. ``max_pii_extraction``: the most the adapter's best-of-n extraction rate on
    members may exceed its rate on non-members (what training leaked, beyond guessing).
    """

    max_auc: float | None = None
    max_tpr_at_fpr: tuple[tuple[float, float], ...] = ()
    max_epsilon: float | None = None
    max_empirical_epsilon: float | None = None
    min_adherence: float | None = None
    max_pii_extraction: float | None = None
    attack: str = WORST
    use_upper_ci: bool = False

    def __post_init__(self) -> None:
        problems = []
        for name in ("max_auc", "min_adherence", "max_pii_extraction"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                problems.append(f"`{name}` must be in [0, 1], got {value}")
        for name in ("max_epsilon", "max_empirical_epsilon"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                problems.append(f"`{name}` must be >= 0, got {value}")
        for fpr, tpr in self.max_tpr_at_fpr:
            if not 0 < fpr <= 1:
                problems.append(f"`max_tpr_at_fpr` FPR must be in (0, 1], got {fpr}")
            if not 0 <= tpr <= 1:
                problems.append(f"`max_tpr_at_fpr` TPR must be in [0, 1], got {tpr}")
        if not self.attack:
            problems.append("`attack` must be an attack name or 'worst', got ''")
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def empty(self) -> bool:
        return (
            self.max_auc is None
            and not self.max_tpr_at_fpr
            and self.max_epsilon is None
            and self.max_empirical_epsilon is None
            and self.min_adherence is None
            and self.max_pii_extraction is None
        )

    def override(self, **changes: Any) -> GateThresholds:
        """A copy with every non-None change applied; TPR thresholds merge per FPR."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in changes.items():
            if name == "max_tpr_at_fpr":
                merged = dict(self.max_tpr_at_fpr) | dict(value or ())
                values[name] = tuple(sorted(merged.items()))
            elif value is not None:
                values[name] = value
        return GateThresholds(**values)


@dataclass(frozen=True)
class Check:
    """One threshold and what the report measured against it."""

    name: str  # "max-auc", "max-tpr-at-fpr[0.01]", ...
    metric: str  # human-readable metric
    attack: str | None  # the attack measured (the worst one under --attack worst)
    measured: float | None  # None: the report could not measure it (the check fails)
    threshold: float
    comparison: str  # "<=" or ">="
    passed: bool
    basis: str  # "point estimate", "upper 95% CI", ...

    def describe(self) -> str:
        """``max-auc: AUC (attack ref, upper 95% CI) = 0.734 > 0.6``."""
        where = f"attack {self.attack}, " if self.attack else ""
        if self.measured is None:
            return f"{self.name}: {self.metric} ({where}{self.basis}) not measured; threshold {self.threshold:g}"
        measured = fmt.epsilon_text(self.measured) if math.isinf(self.measured) else f"{self.measured:.4g}"
        relation = self.comparison if self.passed else {"<=": ">", ">=": "<"}[self.comparison]
        return f"{self.name}: {self.metric} ({where}{self.basis}) = {measured} {relation} {self.threshold:g}"


@dataclass(frozen=True)
class GateResult:
    checks: tuple[Check, ...]
    source: str | None = None

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "source": self.source,
            "checks": [
                asdict(c) | {"measured": c.measured if c.measured is None or math.isfinite(c.measured) else "inf"}
                for c in self.checks
            ],
        }


def evaluate_gate(report: Mapping[str, Any], thresholds: GateThresholds, *, source: str | None = None) -> GateResult:
    """Run every threshold of ``thresholds`` against a validated report, in a fixed order."""
    if thresholds.empty:
        raise InputError(
            "no gate thresholds given: pass --max-auc, --max-tpr-at-fpr, --max-epsilon, "
            "--max-empirical-epsilon, --min-adherence or --max-pii-extraction, or a [tool.dpaudit.gate] table"
        )
    checks: list[Check] = []
    if thresholds.max_auc is not None:
        checks.append(_max_auc(report, thresholds))
    checks += [_max_tpr(report, thresholds, fpr, limit) for fpr, limit in thresholds.max_tpr_at_fpr]
    if thresholds.max_epsilon is not None:
        checks.append(_max_epsilon(report, thresholds.max_epsilon))
    if thresholds.max_empirical_epsilon is not None:
        checks.append(_max_empirical_epsilon(report, thresholds.max_empirical_epsilon))
    if thresholds.min_adherence is not None:
        checks.append(_min_adherence(report, thresholds))
    if thresholds.max_pii_extraction is not None:
        checks.append(_max_pii_extraction(report, thresholds))
    return GateResult(checks=tuple(checks), source=source)


def _max_auc(report: Mapping[str, Any], thresholds: GateThresholds) -> Check:
    return _attack_check(
        report,
        thresholds,
        name="max-auc",
        metric="AUC",
        threshold=thresholds.max_auc,
        value=lambda m: m.get("auc"),
        upper=lambda m: _upper(m.get("auc_ci95")),
    )


def _max_tpr(report: Mapping[str, Any], thresholds: GateThresholds, fpr: float, limit: float) -> Check:
    key = _require_fpr(report, fpr)
    for attack, metrics in sorted((report.get("attacks") or {}).items()):
        needs = (metrics.get("tpr_at_fpr_needs") or {}).get(key)
        if needs is not None and thresholds.attack in (WORST, attack):  # never pass (or fail) on no evidence
            raise InputError(
                f"TPR at {fmt.fpr_label(key)} FPR is not reported for attack '{attack}': it needs ≥ {needs} "
                f"non-members, the audit had {metrics.get('n_nonmembers')}; audit with more non-members or gate "
                "a higher FPR",
                field="tpr_at_fpr",
            )
    return _attack_check(
        report,
        thresholds,
        name=f"max-tpr-at-fpr[{key}]",
        metric=f"TPR at {fmt.fpr_label(key)} FPR",
        threshold=limit,
        value=lambda m: (m.get("tpr_at_fpr") or {}).get(key),
        upper=lambda m: _upper((m.get("tpr_at_fpr_ci95") or {}).get(key)),
    )


def _max_epsilon(report: Mapping[str, Any], limit: float) -> Check:
    theory = fmt.theory_epsilon(report)
    if theory is None:
        raise InputError("the report has no ε section; drop --max-epsilon or audit with the ε comparator", field="epsilon")
    if math.isinf(theory):  # no guarantee: ∞, with the reason (not DP, or noise derived from a recorded seed)
        basis = report["epsilon"].get("no_guarantee_reason") or "not trained with DP"
    else:
        basis = f"accountant {report['epsilon'].get('accountant') or 'max'}"
    return _compare("max-epsilon", "theoretical ε", None, theory, limit, "<=", basis=basis)


def _max_empirical_epsilon(report: Mapping[str, Any], limit: float) -> Check:
    strongest = fmt.strongest_empirical(report)
    if strongest is None:
        raise InputError(
            "the report has no empirical ε lower bound; drop --max-empirical-epsilon or audit with the ε comparator",
            field="epsilon.empirical",
        )
    return _compare(
        "max-empirical-epsilon",
        f"empirical ε lower bound ({strongest['method']})",
        strongest["attack"],
        strongest["epsilon_lb"],
        limit,
        "<=",
        basis=f"{fmt.pct(strongest['confidence'], 0)} confidence bound",
    )


def _min_adherence(report: Mapping[str, Any], thresholds: GateThresholds) -> Check:
    rates = fmt.adherence_rates(report)
    if not rates:
        raise InputError(
            "the report has no adherence (its records carry no constraints); drop --min-adherence",
            field="utility.adherence",
        )
    if thresholds.use_upper_ci:  # the pessimistic end for a higher-is-better metric
        measured, basis = _lower((rates.get("ci95") or {}).get("prompt_strict")), "lower 95% CI"
    else:
        measured, basis = rates.get("prompt_strict"), "point estimate"
    return _compare("min-adherence", "adherence (prompt, strict)", None, measured, thresholds.min_adherence, ">=", basis=basis)


def _max_pii_extraction(report: Mapping[str, Any], thresholds: GateThresholds) -> Check:
    section = report.get("pii_extraction")
    if not section:
        raise InputError(
            "the report has no PII extraction; drop --max-pii-extraction or audit with --attacks ...,pii",
            field="pii_extraction",
        )
    members = section["adapter"]["members"]["overall"]["best_of_n"]
    nonmembers = section["adapter"]["nonmembers"]["overall"]["best_of_n"]
    if thresholds.use_upper_ci:  # the pessimistic ends: members' upper bound, non-members' lower
        high, low, basis = _upper(members.get("ci95")), _lower(nonmembers.get("ci95")), "95% CI ends"
    else:
        high, low, basis = members.get("rate"), nonmembers.get("rate"), "point estimate"
    measured = None if high is None or low is None else high - low
    metric = "PII extraction rate, members − non-members (best of n)"
    return _compare("max-pii-extraction", metric, None, measured, thresholds.max_pii_extraction, "<=", basis=basis)


def _require_fpr(report: Mapping[str, Any], fpr: float) -> str:
    key = fpr_key(fpr)
    available = fmt.fpr_keys(report.get("attacks") or {})
    if key not in available:
        raise InputError(f"the report has TPR at FPR {', '.join(available) or 'none'}; not at {key}", field="tpr_at_fpr")
    return key


MetricReader = Callable[[Mapping[str, Any]], Any]


def _attack_check(
    report: Mapping[str, Any],
    thresholds: GateThresholds,
    *,
    name: str,
    metric: str,
    threshold: float,
    value: MetricReader,
    upper: MetricReader,
) -> Check:
    """Check one attack, or under ``worst`` every attack, reporting the one with the highest value."""
    attacks = report.get("attacks") or {}
    if not attacks:
        raise InputError("the report has no attack results", field="attacks")
    if thresholds.attack == WORST:
        selected = dict(attacks)
    elif thresholds.attack in attacks:
        selected = {thresholds.attack: attacks[thresholds.attack]}
    else:
        raise InputError(f"no attack '{thresholds.attack}' in the report; it has: {', '.join(sorted(attacks))} (or 'worst')")
    read = upper if thresholds.use_upper_ci else value
    basis = "upper 95% CI" if thresholds.use_upper_ci else "point estimate"
    measured: dict[str, float | None] = {attack: _number(read(metrics)) for attack, metrics in selected.items()}
    missing = sorted(attack for attack, v in measured.items() if v is None)
    if missing:  # fail closed: an unmeasurable attack cannot be shown to pass
        reason = "no 95% CI in the report" if thresholds.use_upper_ci else "undefined (one class only?)"
        return Check(name, metric, missing[0], None, threshold, "<=", False, f"{basis}: {reason}")
    attack = max(sorted(measured), key=lambda a: measured[a])
    return _compare(name, metric, attack, measured[attack], threshold, "<=", basis=basis)


def _compare(name: str, metric: str, attack: str | None, measured: float | None, threshold: float, comparison: str, *,
             basis: str) -> Check:
    if measured is not None and math.isnan(measured):
        measured = None
    passed = measured is not None and (measured <= threshold if comparison == "<=" else measured >= threshold)
    return Check(name, metric, attack, measured, threshold, comparison, passed, basis)


def _number(value: Any) -> float | None:
    return float(value) if fmt.is_number(value) else None


def _upper(interval: Sequence[Any] | None) -> float | None:
    return interval[1] if interval and len(interval) == 2 else None


def _lower(interval: Sequence[Any] | None) -> float | None:
    return interval[0] if interval and len(interval) == 2 else None


# --------------------------------------------------------------------------- thresholds from TOML


def parse_tpr_threshold(text: str) -> tuple[float, float]:
    """``"0.01:0.05"`` → (0.01, 0.05): at FPR 1%, TPR at most 5%."""
    fpr, sep, tpr = str(text).partition(":")
    try:
        if not sep:
            raise ValueError
        return float(fpr), float(tpr)
    except ValueError:
        raise ConfigError(f"`max_tpr_at_fpr` must look like FPR:TPR (e.g. 0.01:0.05), got {text!r}") from None


def thresholds_from_table(table: Mapping[str, Any], *, source: str | Path | None = None) -> GateThresholds:
    """Thresholds from a ``[tool.dpaudit.gate]`` table (keys with ``-`` or ``_``).

    ``max_tpr_at_fpr`` may be a table ``{"0.01" = 0.05}``, a string ``"0.01:0.05"`` or a list of them.
    """
    known = {f.name for f in fields(GateThresholds)}
    values: dict[str, Any] = {}
    for raw_key, value in table.items():
        key = raw_key.replace("-", "_")
        if key not in known:
            raise InputError(f"unknown gate setting; known: {', '.join(sorted(known))}", path=source, field=raw_key)
        if key in _NUMBER_SETTINGS and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise InputError(f"must be a number, got {value!r}", path=source, field=raw_key)
        if key == "max_tpr_at_fpr":
            if isinstance(value, Mapping):
                value = tuple((float(f), float(t)) for f, t in value.items())
            else:
                value = tuple(parse_tpr_threshold(v) for v in ([value] if isinstance(value, str) else value))
        values[key] = value
    try:
        return GateThresholds(**values)
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc), path=source) from exc


def load_config_thresholds(config: str | Path | None, *, cwd: str | Path = ".") -> GateThresholds:
    """``[tool.dpaudit.gate]`` from ``config`` (must exist and hold the table) or from ./pyproject.toml if any."""
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise MissingFileError(f"No config file at {path}.")
        table = _gate_table(path)
        if table is None:
            raise InputError("has no [tool.dpaudit.gate] table", path=path)
        return thresholds_from_table(table, source=path)
    path = Path(cwd) / PYPROJECT
    table = _gate_table(path) if path.is_file() else None
    return thresholds_from_table(table, source=path) if table else GateThresholds()


def _gate_table(path: Path) -> Mapping[str, Any] | None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError as exc:
            raise MissingDependencyError("reading TOML on Python 3.10 needs tomli: pip install tomli") from exc
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", path=path) from exc
    node: Any = data
    for key in CONFIG_TABLE:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    if not isinstance(node, Mapping):
        raise InputError("[tool.dpaudit.gate] must be a table", path=path)
    return node


# --------------------------------------------------------------------------- JUnit


def junit_xml(result: GateResult) -> str:
    """A JUnit XML document with one testcase per threshold (CI systems show it as tests)."""
    suites = ET.Element("testsuites")
    suite = ET.SubElement(suites, "testsuite", name="dpaudit gate", tests=str(len(result.checks)),
                          failures=str(len(result.failures)), errors="0", skipped="0")
    if result.source:
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="report", value=result.source)
    for check in result.checks:
        case = ET.SubElement(suite, "testcase", classname="dpaudit.gate", name=check.name + (f"[{check.attack}]" if check.attack else ""))
        if not check.passed:
            failure = ET.SubElement(case, "failure", message=check.describe(), type="LeakageThresholdExceeded")
            failure.text = check.describe()
        else:
            ET.SubElement(case, "system-out").text = check.describe()
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def write_junit(result: GateResult, path: str | Path) -> Path:
    return write_text_atomic(path, junit_xml(result))


__all__ = [
    "Check",
    "GateResult",
    "GateThresholds",
    "evaluate_gate",
    "junit_xml",
    "load_config_thresholds",
    "parse_tpr_threshold",
    "thresholds_from_table",
    "write_junit",
]
