"""The training card (``<adapter>/dpaudit.json``): what was trained, on what, and with which guarantee.

Keys are the ones ARCHITECTURE.md lists; readers (``dpaudit.models.adapters.read_card``, the
comparator, reports) rely on them. ``dp.epsilon`` is the accountant's ε for exactly the steps
taken, computed from the privacy ledger whose events are stored beside it.
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

from dpaudit import __version__

CARD_FILE = "dpaudit.json"
MEMBERS_FILE = "members.txt"
NONMEMBERS_FILE = "nonmembers.txt"
VERSIONED_PACKAGES = ("torch", "transformers", "peft", "opacus", "safetensors", "numpy")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "dpaudit": __version__}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def build_card(
    *,
    base: str | None,
    base_resolved: str | None,
    data_file: str | None,
    data_sha256: str | None,
    has_nonmembers: bool,
    method: str,
    hyperparameters: dict[str, Any],
    dp: dict[str, Any] | None,
    duplicates: dict[str, Any] | None = None,
    canaries: dict[str, Any] | None,
    gradient_canaries: dict[str, Any] | None,
    training: dict[str, Any],
    seed: int,
    wall_time_s: float,
    placement: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "dpaudit_version": __version__,
        "base": base,
        "base_resolved": base_resolved,
        "data_file": data_file,
        "data_sha256": data_sha256,
        "members_file": MEMBERS_FILE,
        "nonmembers_file": NONMEMBERS_FILE if has_nonmembers else None,
        "method": method,
        "hyperparameters": hyperparameters,
        "dp": dp,
        "duplicates": duplicates,
        "canaries": canaries,
        "gradient_canaries": gradient_canaries,
        "training": training,
        "seed": seed,
        "wall_time_s": round(wall_time_s, 3),
        "placement": placement,  # {device, dtype, quantize} the base ran in while training
        "versions": library_versions(),
    }
