"""Hand-made reports shared by the report tests (built once per session: they are read-only)."""

from __future__ import annotations

import pytest

from tests.report.reports import make_example_report, make_minimal_report


@pytest.fixture(scope="session")
def full_report():
    """A non-DP adapter that leaks (worst-case AUC ≈ 0.9), with every section."""
    return make_example_report(name="lora", most_exposed_text="<script>alert('pwned')</script> account 1234-5678")


@pytest.fixture(scope="session")
def dp_report():
    """A DP adapter (ε = 8) that barely leaks, with lower adherence."""
    return make_example_report(name="dp-lora", dp_epsilon=8.0, leakage=0.1, adherence=0.55, seed=5)


@pytest.fixture(scope="session")
def minimal_report():
    return make_minimal_report()
