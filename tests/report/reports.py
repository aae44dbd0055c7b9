"""Hand-made reports for the report-layer tests (synthetic scores, no model involved)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np

from dpaudit.evaluators.mia_metrics import mia_metrics, score_histogram
from dpaudit.report.schema import build_report, fingerprint_ids

ATTACK_SHIFTS = {"loss": 1.0, "ref": 1.6, "zlib": 0.7}


def attack_metrics(shift: float, *, seed: int, n: int = 200) -> dict[str, Any]:
    """Metrics of a synthetic attack whose member scores are shifted by ``shift`` standard deviations."""
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.ones(n, dtype=int), np.zeros(n, dtype=int)])
    scores = rng.normal(size=2 * n) + shift * labels
    metrics = mia_metrics(scores=scores, labels=labels, seed=seed, n_bootstrap=100)
    metrics["score_histogram"] = score_histogram(scores=scores, labels=labels, bins=20)
    return metrics


def make_example_report(
    *,
    name: str = "lora",
    leakage: float = 1.0,
    dp_epsilon: float | None = None,
    adherence: float | None = 0.62,
    perplexity: float | None = 12.5,
    exposure: bool = True,
    most_exposed_text: str = "The account number of client 7 is 1234-5678.",
    seed: int = 0,
) -> dict[str, Any]:
    """A complete, valid report. ``leakage`` scales every attack's member shift (0 → AUC ≈ 0.5)."""
    attacks = {
        attack: attack_metrics(leakage * shift, seed=seed + i) for i, (attack, shift) in enumerate(ATTACK_SHIFTS.items())
    }
    members = [f"r{i}" for i in range(200)]
    nonmembers = [f"h{i}" for i in range(200)]
    theory = {"prv": dp_epsilon, "rdp": dp_epsilon * 1.1} if dp_epsilon is not None else None
    empirical_lb = 0.4 * leakage
    epsilon = {
        "theory": theory,
        "accountant": "prv" if theory else None,
        "delta": 1e-5,
        "empirical": [
            {"attack": "ref", "method": "clopper-pearson", "epsilon_lb": empirical_lb, "confidence": 0.95, "is_bound": True},
            {"attack": "ref", "method": "gdp", "epsilon_lb": 2.5 * empirical_lb, "confidence": 0.95, "is_bound": False},
        ],
        "verdict": "consistent" if theory else "no-guarantee",
        "tightness": empirical_lb / dp_epsilon if dp_epsilon else None,
    }
    utility: dict[str, Any] = {"perplexity": None, "adherence": None, "side_metrics": {"adapter": {"empty_rate": 0.0, "distinct_2": 0.71}, "base": {"empty_rate": 0.1, "distinct_2": 0.5}}}
    if perplexity is not None:
        utility["perplexity"] = {"member": perplexity * 0.8, "heldout": perplexity, "base_heldout": 30.0, "gap": 1.25}
    if adherence is not None:
        rates = {"prompt_strict": adherence, "prompt_loose": adherence + 0.05,
                 "instruction_strict": adherence + 0.08, "instruction_loose": adherence + 0.1}
        utility["adherence"] = {
            "adapter": rates | {
                "ci95": {"prompt_strict": [adherence - 0.07, adherence + 0.07]},
                "per_type": {"keywords:include": adherence + 0.2, "length:words": adherence - 0.1, "case:lowercase": adherence},
                "n_prompts": 120,
            },
            "base": {"prompt_strict": 0.3, "per_type": {"keywords:include": 0.5, "length:words": 0.2, "case:lowercase": 0.3}},
            "mcnemar_p": 0.003,
        }
    card = {"method": "lora", "dp": None, "seed": seed}
    if dp_epsilon is not None:
        card = {"method": "dp-lora", "dp": {"epsilon": dp_epsilon, "delta": 1e-5, "accountant": "prv"}, "seed": seed}
    return build_report(
        adapter={"path": f"runs/{name}", "name": name, "weights_sha256": "ab" * 32, "card": card},
        base={"spec": "tiny", "resolved": "/cache/tiny"},
        data={"members": fingerprint_ids(members), "nonmembers": fingerprint_ids(nonmembers),
              "data_file": "data/private.jsonl", "data_sha256": "cd" * 32},
        attacks=attacks,
        epsilon=epsilon,
        utility=utility,
        exposure={"per_repeat": {"1": 2.0, "4": 5.5, "16": 11.0}, "max_exposure": 26.6,
                  "canaries": [{"id": "c0", "repeats": 16, "exposure": 11.0, "secret": "1234-5678"}]} if exposure else None,
        most_exposed=[
            {"id": "r7", "text": most_exposed_text, "score": 3.2, "member": True, "attack": "ref"},
            {"id": "h3", "text": "A harmless non-member record.", "score": 2.9, "member": False, "attack": "ref"},
        ],
        seeds={"audit": seed, "train": seed},
        wall_time_s=42.0,
        created="2026-01-01T00:00:00+00:00",
    )


def make_minimal_report(*, name: str = "quick") -> dict[str, Any]:
    """A partial audit: one attack, no ε, no utility, no exposure (as `--quick` on a plain peft adapter)."""
    return build_report(
        adapter={"path": f"runs/{name}", "weights_sha256": None, "card": None},
        data={"members": fingerprint_ids(["a", "b"]), "nonmembers": fingerprint_ids(["c", "d"])},
        attacks={"loss": attack_metrics(0.5, seed=1, n=50)},
        created="2026-01-01T00:00:00+00:00",
    )


def mutated(report: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``report`` with ``a.b.c`` set to ``value`` (for hand-made borderline cases)."""
    out = copy.deepcopy(report)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[key]
    node[last] = value
    return out


def save_report_json(report: dict[str, Any], out_dir: Path) -> Path:
    """Only report.json (what gate and compare read), skipping the slow HTML rendering."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report))
    return out_dir
