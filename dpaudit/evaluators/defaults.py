"""Defaults of the model-based evaluators, in one torch-free place (the CLI reads them for its help)."""

MAX_NEW_TOKENS = 128
"""Greedy decoding stops at end-of-turn or after this many new tokens."""

GENERATION_BATCH_SIZE = 16
"""Prompts decoded together (left-padded)."""

ADHERENCE_LIMIT = 32
"""Prompts judged by ``dpaudit eval --adherence`` (a seeded subset); about a minute on the tiny base."""

PII_SAMPLES = 8
"""n of best-of-n in PII extraction: top-k samples per target span (besides the greedy continuation)."""

EXPOSURE_ENUMERATE_LIMIT = 10_000
"""Score every candidate secret when the format has at most this many."""

EXPOSURE_SAMPLES = 1_000
"""Random candidates per canary when the space is larger (rank estimated from a fitted distribution)."""

EXPOSURE_BATCH_SIZE = 64
"""Candidate records per forward pass (canary records are short)."""
