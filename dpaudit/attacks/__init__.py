"""Membership-inference attacks on adapters: one attack per module, all registered in ``ATTACKS``.

Every attack turns per-record signals from one scoring pass (``dpaudit.models.scoring``) into
scores of shape (n,), higher = more likely a member. :func:`dpaudit.attacks.suite.run_attacks`
runs them against an adapter and measures them with ``dpaudit.evaluators.mia_metrics``.
"""

from dpaudit.attacks.base import ATTACKS, Attack, AttackInputs, PopulationScores, ShadowScores

# Importing the modules registers the attacks (in the order the report lists them).
from dpaudit.attacks import loss, ref, zlib, mink, minkpp, shadow, lira, rmia  # noqa: E402, F401  isort: skip

__all__ = ["ATTACKS", "Attack", "AttackInputs", "PopulationScores", "ShadowScores"]
