"""Audit reports: the report.json schema, HTML/Markdown rendering, compare, and the CI gate.

Modules (import what you need; plotting is only loaded by the renderers):
``schema`` (build/validate/load report.json), ``write`` (``write_report``), ``html``, ``markdown``,
``plots``, ``display`` (shared number formatting and headline facts), ``compare`` (``compare_reports``,
``write_comparison``), ``gate`` (``evaluate_gate``).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SCHEMA_VERSION": "dpaudit.report.schema",
    "build_report": "dpaudit.report.schema",
    "validate_report": "dpaudit.report.schema",
    "load_report": "dpaudit.report.schema",
    "write_report": "dpaudit.report.write",
    "render_html": "dpaudit.report.html",
    "render_markdown": "dpaudit.report.markdown",
    "compare_reports": "dpaudit.report.compare",
    "write_comparison": "dpaudit.report.compare",
    "evaluate_gate": "dpaudit.report.gate",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Lazy exports, so that `dpaudit gate` does not pay for importing matplotlib."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dpaudit.report' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
