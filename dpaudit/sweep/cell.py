"""One sweep cell: train, audit, keep the numbers. Identified by the hash of everything it ran with.

:func:`run_cell` is the task the runner fans out (a module-level function of one plain, picklable
payload, as :func:`dpaudit.scale.tasks.run_tasks` requires). It writes the adapter and the report
under ``SWEEP_DIR/cells/<hash>/`` and, last, ``result.json``: a cell is finished exactly when that
file exists, so a killed sweep resumes at the first unfinished cell (a cell killed mid-training
resumes from its training checkpoint). A cell never raises: its error goes to ``error.json`` and
the others carry on.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dpaudit import __version__
from dpaudit.errors import InputError
from dpaudit.io import read_json_object, write_json_atomic

CELLS_DIR = "cells"
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
CONFIG_FILE = "cell.json"
ADAPTER_DIR = "adapter"
REPORT_DIR = "report"

# The tidy table's metric columns, in order (None when a cell did not measure it).
METRICS = (
    "ppl_heldout", "ppl_members", "worst_auc", "worst_attack", "tpr_at_0.1%", "tpr_at_1%", "tpr_at_10%",
    "adherence_strict", "adherence_loose", "epsilon", "epsilon_lb", "verdict", "exposure_bits", "bytes_sent",
    "wall_time_s",
)
_TPR_COLUMNS = {"tpr_at_0.1%": 0.001, "tpr_at_1%": 0.01, "tpr_at_10%": 0.1}


def cell_hash(config: Mapping[str, Any], *, data_sha256: str) -> str:
    """16 hex digits of sha256 over the resolved configs (:func:`~dpaudit.sweep.grid.identity_json`),
    the data file's hash and dpaudit's version."""
    identity = {"config": config, "data_sha256": data_sha256, "dpaudit_version": __version__}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def cell_dir(sweep_dir: str | Path, key: str) -> Path:
    return Path(sweep_dir) / CELLS_DIR / key


def read_result(directory: Path) -> dict[str, Any] | None:
    """The finished cell's result, or None (missing or damaged files count as unfinished)."""
    try:
        return read_json_object(directory / RESULT_FILE)
    except (OSError, InputError):
        return None


def read_error(directory: Path) -> str | None:
    try:
        return str(read_json_object(directory / ERROR_FILE).get("error"))
    except (OSError, InputError):
        return None


def run_cell(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Train and audit one cell; returns ``{"key", "status": "done"|"failed", ...}`` and never raises.

    ``payload``: ``key``, ``dir`` (the cell directory), ``base``, ``data_file``, ``canaries_file``
    (or None), ``train`` (``TrainConfig.to_dict()``), ``audit`` (``AuditConfig`` fields), ``fed``
    (``FedConfig`` fields but ``train``, or None: a federated cell, ``train`` being the local training).
    """
    directory = Path(payload["dir"])
    done = read_result(directory)
    if done is not None:
        return done
    start = time.perf_counter()
    try:
        result = _train_and_audit(payload, directory)
    except Exception as exc:  # noqa: BLE001 - a failed cell is a result, recorded for `sweep status`
        error = f"{type(exc).__name__}: {exc}"
        write_json_atomic(directory / ERROR_FILE, {"key": payload["key"], "error": error,
                                                   "traceback": traceback.format_exc()})
        return {"key": payload["key"], "status": "failed", "error": error}
    result["metrics"]["wall_time_s"] = round(time.perf_counter() - start + result.pop("reused_s", 0.0), 2)
    write_json_atomic(directory / RESULT_FILE, result)
    (directory / ERROR_FILE).unlink(missing_ok=True)
    return result


def _train_and_audit(payload: Mapping[str, Any], directory: Path) -> dict[str, Any]:
    from dpaudit.report.audit import AuditConfig, audit_adapter
    from dpaudit.train import run_training
    from dpaudit.train.card import CARD_FILE
    from dpaudit.train.checkpoint import CHECKPOINT_DIR
    from dpaudit.train.config import TrainConfig

    adapter = directory / ADAPTER_DIR
    reused = 0.0
    if (adapter / CARD_FILE).is_file():  # trained before the sweep was interrupted: audit only
        reused = float((read_json_object(adapter / CARD_FILE)).get("wall_time_s") or 0.0)
    elif payload.get("fed") is not None:
        from dpaudit.federated.config import FedConfig
        from dpaudit.federated.runner import run_fedtrain

        run_fedtrain(data_file=Path(payload["data_file"]), base=payload["base"], out_dir=adapter,
                     config=FedConfig.from_dict({**payload["fed"], "train": dict(payload["train"])}), progress=False)
    else:
        run_training(
            data_file=Path(payload["data_file"]),
            base=payload["base"],
            out_dir=adapter,
            config=TrainConfig.from_dict(dict(payload["train"])),
            canaries_file=Path(payload["canaries_file"]) if payload.get("canaries_file") else None,
            resume=(adapter / CHECKPOINT_DIR).is_dir(),
            progress=False,
        )
    audit = dict(payload["audit"])
    audit["attacks"] = tuple(audit["attacks"])
    report = audit_adapter(adapter=adapter, out=directory / REPORT_DIR, base=payload["base"],
                           config=AuditConfig(**audit), progress=False)
    return {"key": payload["key"], "status": "done", "metrics": metrics_of(report), "reused_s": reused}


def metrics_of(report: Mapping[str, Any]) -> dict[str, Any]:
    """The tidy-table numbers of one audit report (the reading rules of ``dpaudit compare``)."""
    from dpaudit.evaluators.mia_metrics import fpr_key
    from dpaudit.report import display as fmt

    worst_name = report.get("worst_case_attack")
    worst = (report.get("attacks") or {}).get(worst_name) or {}
    tprs = worst.get("tpr_at_fpr") or {}
    ppl = fmt.perplexity(report) or {}
    adherence = fmt.adherence_rates(report) or {}
    exposure = ((report.get("exposure") or {}).get("per_repeat")) or {}
    theory = fmt.theory_epsilon(report)
    empirical = fmt.strongest_empirical(report)
    top_repeat = max(exposure, key=float) if exposure else None
    federated = (((report.get("adapter") or {}).get("card") or {}).get("federated")) or {}
    out = {
        "ppl_heldout": ppl.get("heldout"),
        "ppl_members": ppl.get("member"),
        "worst_auc": worst.get("auc"),
        "worst_attack": worst_name,
        **{column: tprs.get(fpr_key(fpr)) for column, fpr in _TPR_COLUMNS.items()},
        "adherence_strict": adherence.get("prompt_strict"),
        "adherence_loose": adherence.get("prompt_loose"),
        "epsilon": theory if theory is None or math.isfinite(theory) else math.inf,
        "epsilon_lb": empirical["epsilon_lb"] if empirical else None,
        "verdict": (report.get("epsilon") or {}).get("verdict"),
        "exposure_bits": exposure.get(top_repeat) if top_repeat is not None else None,
        "bytes_sent": federated.get("bytes_sent"),  # federated cells: every client's uploads, all rounds
        "wall_time_s": None,
    }
    return {k: (None if isinstance(v, float) and math.isinf(v) and k != "epsilon" else v) for k, v in out.items()}
