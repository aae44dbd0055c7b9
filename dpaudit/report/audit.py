"""`dpaudit audit`: attacks + utility + exposure + the ε comparator, written as one report.

The audit only orchestrates: each number comes from the layer that owns it
(:func:`dpaudit.attacks.suite.run_attacks`, :func:`dpaudit.evaluators.suite.evaluate`,
:func:`dpaudit.privacy.comparator.compare_epsilon`), and :func:`dpaudit.report.schema.build_report`
assembles and validates them. Attack scores are cached (keyed by the adapter's weights, the
candidate ids and the attack settings) so that a second audit of the same adapter reuses them;
shadow adapters are cached by the attack suite itself.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dpaudit.attacks.client_level import UNITS
from dpaudit.errors import ConfigError, InputError
from dpaudit.io import read_json_object, write_json_atomic
from dpaudit.outputs import prepare_output_dir
from dpaudit.paths import cache_dir
from dpaudit.scale.device import current_placement
from dpaudit.scale.tasks import FanOut

DEFAULT_ATTACKS = ("loss", "ref", "zlib", "mink", "minkpp", "lira")
SHADOW_ATTACKS = ("shadow", "lira", "lira_offline", "rmia_online")
DEFAULT_DELTA = 1e-5
"""δ for the empirical numbers of a non-DP adapter (a DP adapter's card carries its own δ)."""
MOST_EXPOSED = 10

Log = Callable[[str], None]


@dataclass(frozen=True)
class AuditConfig:
    """What an audit runs. ``quick`` drops the shadow attacks (no shadow training)."""

    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    shadows: int = 8
    quick: bool = False
    seed: int = 0
    confidence: float = 0.95
    delta: float | None = None
    adherence_limit: int = 32
    show_records: bool = False  # record text in the report files (redacted by default: ids and lengths)
    use_cache: bool = True
    show_pii: bool = False  # reveal extracted PII values in report.html (masked by default)
    population_size: int | None = None  # RMIA's population records (None: the attack suite's default)
    pii_samples: int | None = None  # best-of-n for PII extraction (None: the extraction default)
    unit: str = "record"  # federated adapters: what the worst case and the ε comparison are about

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ConfigError(f"`unit` must be one of {', '.join(UNITS)}, got {self.unit!r}")
        if not self.attacks:
            raise ConfigError("`attacks` must name at least one attack, got none")
        if not 0 < self.confidence < 1:
            raise ConfigError(f"`confidence` must be in (0, 1), got {self.confidence}")
        if self.delta is not None and not 0 < self.delta < 1:
            raise ConfigError(f"`delta` must be in (0, 1), got {self.delta}")
        if self.adherence_limit < 1:
            raise ConfigError(f"`adherence_limit` must be >= 1, got {self.adherence_limit}")

    @property
    def effective_attacks(self) -> tuple[str, ...]:
        if self.quick or self.shadows == 0:
            return tuple(a for a in self.attacks if a not in SHADOW_ATTACKS)
        return self.attacks

    @property
    def effective_shadows(self) -> int:
        return 0 if self.quick else self.shadows


def audit_adapter(
    *,
    adapter: str | Path,
    out: str | Path,
    base: str | None = None,
    members: str | Path | None = None,
    nonmembers: str | Path | None = None,
    config: AuditConfig | None = None,
    seed: int | None = None,
    progress: bool = True,
    log: Log | None = None,
    overwrite: bool = False,
    fanout: FanOut = FanOut(),
) -> dict[str, Any]:
    """Audit the adapter at ``adapter`` and write report.json/html/md into ``out`` (atomically).

    Returns the validated report dict. ``seed`` (if given) overrides ``config.seed``. ``out`` must
    be new, empty, or (with ``overwrite``) an earlier report: checked before any work is done.
    ``fanout``: where missing shadow adapters train (see :func:`dpaudit.attacks.suite.run_attacks`).
    """
    from dpaudit.attacks.client_level import client_level_for
    from dpaudit.attacks.pii import run_pii_extraction, split_pii
    from dpaudit.attacks.suite import resolve_candidates, run_attacks
    from dpaudit.evaluators.mia_metrics import score_histogram
    from dpaudit.evaluators.suite import evaluate
    from dpaudit.models.adapters import adapter_sha256, check_model_dir, read_card
    from dpaudit.report.schema import REPORT_FILE, build_report, fingerprint_ids
    from dpaudit.report.write import REPORT_FILES, write_report

    config = config or AuditConfig()
    if seed is not None and seed != config.seed:
        config = AuditConfig(**{**asdict(config), "seed": seed})
    say = log or (lambda message: None)
    start = time.perf_counter()
    adapter = Path(adapter)
    out = prepare_output_dir(out, marker=REPORT_FILE, own_files=REPORT_FILES, overwrite=overwrite,
                             inputs=[p for p in (adapter, members, nonmembers) if p is not None])
    check_model_dir(adapter)  # fails early, with a clear message, on anything but an adapter (or full model) dir
    card = read_card(adapter)
    member_records, nonmember_records = resolve_candidates(adapter, card, members=members, nonmembers=nonmembers)
    weights_sha = adapter_sha256(adapter)

    attacks, want_pii = split_pii(config.effective_attacks)
    key = _cache_key(weights_sha, member_records, nonmember_records, base, attacks, config)
    suite = _cached_suite(key) if config.use_cache else None
    if suite is None:
        say(f"attacks: {', '.join(attacks)}" + (f" ({config.effective_shadows} shadows)" if config.effective_shadows else ""))
        result = run_attacks(
            adapter_dir=adapter,
            base=base,
            members=member_records,
            nonmembers=nonmember_records,
            attacks=list(attacks),
            shadows=config.effective_shadows,
            **({"population_size": config.population_size} if config.population_size else {}),
            seed=config.seed,
            progress=progress,
            fanout=fanout,
        )
        suite = {
            "attacks": result.attacks,
            "worst_case": result.worst_case,
            "ids": list(result.ids),
            "labels": [int(v) for v in result.labels],
            "scores": {name: [float(v) for v in values] for name, values in result.scores.items()},
            "base": result.base,
        }
        if config.use_cache:
            write_json_atomic(cache_dir("audits", key) / "attacks.json", suite)
    else:
        say("attacks: reusing cached scores")
    labels = np.asarray(suite["labels"], dtype=np.int8)
    scores = {name: np.asarray(values, dtype=np.float64) for name, values in suite["scores"].items()}
    attack_metrics = {
        name: {**metrics, "score_histogram": score_histogram(scores=scores[name], labels=labels)}
        for name, metrics in suite["attacks"].items()
    }

    has_constraints = any(r.constraints for r in nonmember_records)
    has_repeat_canaries = bool(card and (card.get("canaries") or {}).get("repeats"))
    say("utility: perplexity" + (", adherence" if has_constraints else "") + (", exposure" if has_repeat_canaries else ""))
    evaluation = evaluate(
        adapter,
        base=base,
        heldout=nonmember_records,
        members=member_records,
        adherence=has_constraints,
        limit=config.adherence_limit,
        exposure=has_repeat_canaries,
        seed=config.seed,
        log=say,
        progress=progress,
    )

    pii_extraction = None
    if want_pii:
        say("PII extraction: greedy and best-of-n continuations of members' and non-members' spans")
        pii_extraction = run_pii_extraction(adapter_dir=adapter, base=base, members=member_records,
                                            nonmembers=nonmember_records, samples=config.pii_samples, seed=config.seed,
                                            progress=progress)
    client_level = client_level_for(ids=suite["ids"], scores=scores, card=card, unit=config.unit, seed=config.seed)
    say("ε: accountant vs empirical lower bounds" + (" (client level)" if config.unit == "client" else ""))
    if config.unit == "client":
        client_scores = {name: np.asarray(values) for name, values in client_level["scores"].items()}
        client_labels = np.asarray(client_level["labels"], dtype=np.int8)
        epsilon = _epsilon_section(adapter, _client_card(card), client_scores, client_labels, config)
    else:
        epsilon = _epsilon_section(adapter, card, scores, labels, config)
    records_by_id = {r.id: r for r in member_records + nonmember_records}
    worst = suite["worst_case"]
    report = build_report(
        adapter={"path": str(adapter), "name": adapter.name, "weights_sha256": weights_sha, "card": card},
        base={"spec": evaluation["adapter"]["base"], "resolved": evaluation["adapter"]["base_resolved"],
              "placement": current_placement().resolve().to_json()},
        data={
            "members": fingerprint_ids(r.id for r in member_records),
            "nonmembers": fingerprint_ids(r.id for r in nonmember_records),
            "data_file": (card or {}).get("data_file"),
            "data_sha256": (card or {}).get("data_sha256"),
        },
        attacks=attack_metrics,
        epsilon=epsilon,
        utility=_utility_section(evaluation["utility"]),
        exposure=evaluation["exposure"],
        most_exposed=_most_exposed(suite["ids"], labels, scores[worst], records_by_id, attack=worst),
        seeds={"audit": config.seed, "train": (card or {}).get("seed")},
        wall_time_s=round(time.perf_counter() - start, 2),
        unit=config.unit if client_level is not None else None,
        client_level=client_level,
        pii_extraction=pii_extraction,
    )
    write_report(report, out, show_records=config.show_records, show_pii=config.show_pii)
    return report


def _client_card(card: dict) -> dict:
    """The card as the comparator should read it for clients: its client-level guarantee as ``dp``."""
    return {**card, "dp": card["federated"]["guarantees"]["client"]}


def _cache_key(weights_sha: str, members, nonmembers, base: str | None, attacks: Sequence[str], config: AuditConfig) -> str:
    payload = {
        "weights": weights_sha,
        "members": sorted(r.id for r in members),
        "nonmembers": sorted(r.id for r in nonmembers),
        "base": base,
        "attacks": list(attacks),
        "shadows": config.effective_shadows,
        "seed": config.seed,
    }
    if config.population_size:  # RMIA's scores depend on its population
        payload["population_size"] = config.population_size
    precision = current_placement().resolve().precision_tag  # bf16 / 4-bit scores are other numbers
    if precision is not None:
        payload["precision"] = precision
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def _cached_suite(key: str) -> dict[str, Any] | None:
    try:
        return read_json_object(cache_dir("audits", key) / "attacks.json")
    except (OSError, InputError):
        return None  # a missing or damaged cache entry is recomputed, never trusted


def _epsilon_section(adapter: Path, card: dict | None, scores: dict[str, np.ndarray], labels: np.ndarray,
                     config: AuditConfig) -> dict[str, Any]:
    """Theory from the card beside every attack's empirical bounds (Bonferroni over all of them)."""
    from dpaudit.privacy.comparator import compare_epsilon
    from dpaudit.privacy.scores_io import read_scores_csv
    from dpaudit.train import GRADIENT_CANARY_SCORES

    sources = {name: (values, labels) for name, values in scores.items()}
    canary_file = adapter / GRADIENT_CANARY_SCORES
    if canary_file.is_file():
        _, canary_labels, canary_scores = read_scores_csv(canary_file)
        sources["gradient-canaries"] = (canary_scores, canary_labels)
    delta = config.delta or (None if (card or {}).get("dp") else DEFAULT_DELTA)
    comparison = compare_epsilon(card=card, scores=sources, delta=delta, confidence=config.confidence,
                                 seed=config.seed).to_json()
    theory = comparison.get("epsilons_theory") or None
    guaranteed = comparison["dp"] and comparison.get("no_guarantee_reason") is None
    return {
        "theory": theory if guaranteed else None,
        "no_guarantee_reason": comparison.get("no_guarantee_reason"),
        "accountants_unavailable": comparison.get("accountants_unavailable") or {},
        "group_privacy": comparison.get("group_privacy"),
        "accountant": comparison.get("card_accountant") or comparison.get("epsilon_theory_accountant"),
        "delta": comparison["delta"],
        "empirical": [
            {
                "attack": row["source"],
                "method": row["method"],
                "epsilon_lb": row["epsilon"],
                "confidence": row["confidence"],
                "is_bound": row["kind"] == "bound",
                "ceiling": (row.get("details") or {}).get("ceiling"),
            }
            for row in comparison["rows"]
        ],
        "verdict": comparison["verdict"],
        "tightness": comparison.get("tightness"),
        "no_amplification_epsilon": comparison.get("no_amplification_epsilon"),
        "notes": comparison.get("notes", []),
    }


def _utility_section(utility: dict[str, Any]) -> dict[str, Any]:
    return {
        "perplexity": utility.get("perplexity"),
        "adherence": utility.get("adherence"),
        "side_metrics": utility.get("side_metrics"),
    }


def _most_exposed(ids: Sequence[str], labels: np.ndarray, scores: np.ndarray, records_by_id: dict,
                  *, attack: str) -> list[dict[str, Any]]:
    """The records the worst-case attack is most confident were trained on."""
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")[:MOST_EXPOSED]
    return [
        {
            "id": ids[i],
            "text": records_by_id[ids[i]].text if ids[i] in records_by_id else "",
            "score": float(scores[i]) if np.isfinite(scores[i]) else None,
            "member": bool(labels[i]),
            "attack": attack,
        }
        for i in order
    ]
