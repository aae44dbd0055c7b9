"""Privacy accounting (theoretical ε) and empirical ε from attack scores; arrays in, numbers out.

- :mod:`~dpaudit.privacy.events`: privacy events and the :class:`PrivacyLedger` the trainer fills.
- :mod:`~dpaudit.privacy.accountants`: ε from opacus's PRV/RDP accountants, σ calibration, and the
  no-amplification reference bound.
- :mod:`~dpaudit.privacy.empirical`: Clopper–Pearson and one-run lower bounds, μ-GDP estimate.
- :mod:`~dpaudit.privacy.comparator`: the promise (card) against the evidence (scores): a verdict.
- :mod:`~dpaudit.privacy.group`: what ε promises for a record repeated k times (group privacy).
- :mod:`~dpaudit.privacy.scores_io`: the ``id,member,score`` CSV.

opacus (and so torch) is imported only when an ε is actually computed.
"""

from dpaudit.privacy.accountants import (
    ACCOUNTANTS,
    AccountantUnavailable,
    answer_epsilon,
    calibrate,
    calibrate_noise_multiplier,
    compute_epsilon,
    compute_epsilons,
    no_amplification_epsilon,
)
from dpaudit.privacy.comparator import (
    EpsilonComparison,
    compare_epsilon,
    theory_from_card,
)
from dpaudit.privacy.empirical import (
    METHODS,
    clopper_pearson_bound,
    empirical_epsilons,
    gdp_estimate,
    one_run_bound,
    one_run_ceiling,
)
from dpaudit.privacy.events import (
    Composed,
    NonPrivate,
    NoOp,
    PoissonSampledGaussian,
    PrivacyLedger,
)
from dpaudit.privacy.group import GroupGuarantee, group_privacy
from dpaudit.privacy.scores_io import read_scores, read_scores_csv, write_scores_csv

__all__ = [
    "ACCOUNTANTS",
    "METHODS",
    "AccountantUnavailable",
    "Composed",
    "EpsilonComparison",
    "GroupGuarantee",
    "NoOp",
    "NonPrivate",
    "PoissonSampledGaussian",
    "PrivacyLedger",
    "answer_epsilon",
    "calibrate",
    "calibrate_noise_multiplier",
    "clopper_pearson_bound",
    "compare_epsilon",
    "compute_epsilon",
    "compute_epsilons",
    "empirical_epsilons",
    "gdp_estimate",
    "group_privacy",
    "no_amplification_epsilon",
    "one_run_bound",
    "one_run_ceiling",
    "read_scores",
    "read_scores_csv",
    "theory_from_card",
    "write_scores_csv",
]
