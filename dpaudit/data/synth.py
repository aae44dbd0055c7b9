"""A synthetic, sensitive instruction dataset shaped like No Robots (which cannot be downloaded here).

Records are chat-schema conversations in the ten No Robots categories, mixed in No Robots'
proportions by default, filled with fictional people's names, addresses, emails, phone
numbers, dates of birth, account and record numbers, diagnoses and salaries, so that every
record is unique and the kind of thing a model should not memorise. About half carry one to
three verifiable constraints (``constraints`` field, :mod:`dpaudit.data.constraints`) that
their reference response obeys.

Splits (all text-disjoint; no person appears in two records):

- ``private``: ``n`` records, the pool from which training members and held-out non-members
  are drawn;
- ``public``: ``public_fraction`` of all non-canary records (default 0.5, i.e. as many public
  as private records: ``n=2000`` gives 2000 + 2000), for pretraining the tiny base and for
  reference models. Same templates and mix, other people;
- ``canaries``: ``canaries`` random-secret records (:mod:`dpaudit.data.canaries`).

Deterministic: one seeded ``Faker("en_US")`` instance and ``random.Random`` streams derived
from the seed, one per split, so the same config gives byte-identical files, and the private
records do not change with ``public_fraction`` or ``canaries``.

>>> ds = generate(SynthConfig(n=200, seed=1, canaries=4))   # doctest: +SKIP
>>> write_dataset(ds, "d/")                                  # doctest: +SKIP
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from faker import Faker

from dpaudit import __version__
from dpaudit.data import constraints as constraint_lib
from dpaudit.data.canaries import DEFAULT_SECRET_FORMAT, Canary, canaries_to_jsonl, make_canaries, secret_space_size
from dpaudit.data.records import Message, Record, to_jsonl
from dpaudit.data.synth_people import People, build_vocab, pii_spans
from dpaudit.data.synth_templates import CATEGORIES, TEMPLATES, Ctx
from dpaudit.errors import ConfigError, InputError
from dpaudit.io import atomic_dir, sha256_file, write_json_atomic

# No Robots' category shares (%), in CATEGORIES order.
NO_ROBOTS_MIX = (45.6, 12.4, 11.2, 8.5, 6.6, 4.2, 3.5, 3.5, 2.6, 1.9)
CONSTRAINED_SHARE = 0.5  # share of records that carry verifiable constraints
MAX_CONSTRAINTS = 3
# Constraint types that would make a category's reference answer absurd (upper-cased or comma-less code).
EXCLUDED_CONSTRAINTS: dict[str, frozenset[str]] = {
    "Coding": frozenset({"case:lowercase", "case:uppercase", "case:capital_frequency", "punctuation:no_comma"}),
}
FILES = ("public.jsonl", "private.jsonl", "canaries.jsonl", "manifest.json")


def canonical_category(name: str) -> str:
    """'open-qa', 'open_qa' and 'Open QA' all name the same category."""
    key = name.strip().lower().replace("-", " ").replace("_", " ")
    for category in CATEGORIES:
        if category.lower() == key:
            return category
    raise ConfigError(f"unknown category {name!r}; choose from {', '.join(CATEGORIES)}")


@dataclass(frozen=True)
class SynthConfig:
    """What to generate; validated at construction.

    ``mix`` weights align with ``categories`` (any positive scale, e.g. percentages); None
    uses No Robots' shares of the chosen categories.
    """

    n: int = 2000
    seed: int = 0
    categories: tuple[str, ...] = CATEGORIES
    mix: tuple[float, ...] | None = None
    canaries: int = 0
    public_fraction: float = 0.5
    canary_format: str = DEFAULT_SECRET_FORMAT

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ConfigError(f"`n` must be a positive integer, got {self.n!r}")
        if isinstance(self.categories, str):
            raise ConfigError("`categories` must be a sequence of names, not a string")
        categories = tuple(canonical_category(c) for c in self.categories)
        if not categories:
            raise ConfigError("`categories` must name at least one category")
        repeated = sorted({c for c in categories if categories.count(c) > 1})
        if repeated:
            raise ConfigError(f"`categories` lists {', '.join(repeated)} more than once")
        object.__setattr__(self, "categories", categories)
        if self.mix is not None:
            mix = tuple(float(w) for w in self.mix)
            if len(mix) != len(categories):
                raise ConfigError(f"`mix` has {len(mix)} weights for {len(categories)} categories")
            if any(not math.isfinite(w) or w < 0 for w in mix) or sum(mix) <= 0:
                raise ConfigError(f"`mix` weights must be finite, >= 0 and not all 0, got {list(mix)}")
            object.__setattr__(self, "mix", mix)
        if isinstance(self.canaries, bool) or not isinstance(self.canaries, int) or self.canaries < 0:
            raise ConfigError(f"`canaries` must be an integer >= 0, got {self.canaries!r}")
        if not 0.0 <= self.public_fraction < 1.0:
            raise ConfigError(f"`public_fraction` must be in [0, 1), got {self.public_fraction}")
        if self.canaries > secret_space_size(self.canary_format):
            raise ConfigError(f"`canary_format` {self.canary_format!r} has fewer than {self.canaries} distinct secrets")

    @property
    def weights(self) -> tuple[float, ...]:
        if self.mix is not None:
            return self.mix
        return tuple(NO_ROBOTS_MIX[CATEGORIES.index(c)] for c in self.categories)

    @property
    def n_public(self) -> int:
        """Public records: ``public_fraction`` of public + private."""
        return round(self.n * self.public_fraction / (1.0 - self.public_fraction))

    @property
    def total(self) -> int:
        """Records generated in all (for progress bars)."""
        return self.n + self.n_public + self.canaries


@dataclass(frozen=True)
class SynthDataset:
    public: list[Record]
    private: list[Record]
    canaries: list[Canary]
    config: SynthConfig | None = field(default=None, compare=False)


def allocate(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` into integer counts proportional to ``weights`` (largest remainder; ties to the first).

    >>> allocate(10, [45.6, 12.4, 42.0])
    [5, 1, 4]
    """
    scale = sum(weights)
    exact = [total * w / scale for w in weights]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def generate(config: SynthConfig, *, progress: Callable[[int], None] | None = None) -> SynthDataset:
    """Build the dataset in memory; ``progress(k)`` is called as ``k`` more records are done."""
    advance = progress or (lambda k: None)
    fake = Faker("en_US", use_weighting=False)  # uniform draws: 15x faster than weighted, more distinct names
    fake.seed_instance(f"dpaudit-synth:{config.seed}:vocab")
    people = People(fake, build_vocab(fake))
    seen: set[str] = set()
    private = _split(config, people, "private", config.n, seen, advance)
    public = _split(config, people, "public", config.n_public, seen, advance)
    rng = random.Random(f"dpaudit-synth:{config.seed}:canaries")
    fake.seed_instance(f"dpaudit-synth:{config.seed}:canaries")
    names = [" ".join(people.full_name(rng)) for _ in range(config.canaries)]
    canaries = make_canaries(config.canaries, rng=rng, names=names, secret_format=config.canary_format)
    advance(len(canaries))
    return SynthDataset(public=public, private=private, canaries=canaries, config=config)


def _split(
    config: SynthConfig, people: People, name: str, count: int, seen: set[str], advance: Callable[[int], None]
) -> list[Record]:
    rng = random.Random(f"dpaudit-synth:{config.seed}:{name}")
    people.fake.seed_instance(f"dpaudit-synth:{config.seed}:{name}")
    slots = [c for c, k in zip(config.categories, allocate(count, config.weights)) for _ in range(k)]
    rng.shuffle(slots)
    records = []
    for i, category in enumerate(slots):
        record = _record(f"{name}-{i:06d}", category, rng, people)
        while record.text in seen:  # practically never: every record has its own person
            record = _record(record.id, category, rng, people)
        seen.add(record.text)
        records.append(record)
        if i % 100 == 99 or i == count - 1:
            advance(i % 100 + 1)
    return records


def _record(record_id: str, category: str, rng: random.Random, people: People) -> Record:
    make = rng.choice(TEMPLATES[category])
    ctx = Ctx(rng=rng, people=people, p=people.person(rng))
    turns = make(ctx)
    constraints: list[dict[str, Any]] = []
    if rng.random() < CONSTRAINED_SHARE:
        excluded = EXCLUDED_CONSTRAINTS.get(category, frozenset())
        constraints = _sample_constraints(rng, rng.randint(1, MAX_CONSTRAINTS), excluded)
        turns = _apply_constraints(turns, constraints)
    messages = tuple(Message(role, content) for role, content in turns)
    return Record(
        id=record_id,
        messages=messages,
        category=category,
        constraints=tuple(constraints),
        pii=pii_spans(messages, [ctx.p, *ctx.others]),
    )


def _sample_constraints(rng: random.Random, k: int, excluded: frozenset[str]) -> list[dict[str, Any]]:
    """``k`` compatible constraints, none of an ``excluded`` type (redrawn until so; deterministic for ``rng``)."""
    for _ in range(1000):
        constraints = constraint_lib.sample_constraints(rng, k, enforceable_only=True)
        if not any(c["type"] in excluded for c in constraints):
            return constraints
    raise ConfigError(f"cannot draw {k} constraints avoiding {sorted(excluded)}")  # pragma: no cover


def _apply_constraints(turns: list[tuple[str, str]], constraints: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Append the constraints to the last instruction and make the last answer obey them."""
    turns = list(turns)
    user = max(i for i, (role, _) in enumerate(turns) if role == "user")
    answer = max(i for i, (role, _) in enumerate(turns) if role == "assistant")
    instruction = turns[user][1]
    sep = "\n\n" if "\n" in instruction else " "
    instruction = instruction + sep + " ".join(constraint_lib.describe(c) for c in constraints)
    turns[user] = ("user", instruction)
    turns[answer] = ("assistant", constraint_lib.enforce(turns[answer][1], constraints, prompt=instruction))
    return turns


# --------------------------------------------------------------------------- writing


def manifest(dataset: SynthDataset) -> dict[str, Any]:
    """Everything but the file hashes (which :func:`write_dataset` adds)."""
    config = dataset.config
    splits = {"public": dataset.public, "private": dataset.private}
    return {
        "generator": "dpaudit.data.synth",
        "dpaudit_version": __version__,
        "seed": config.seed if config else None,
        "config": {**asdict(config), "weights": list(config.weights)} if config else None,
        "counts": {"public": len(dataset.public), "private": len(dataset.private), "canaries": len(dataset.canaries)},
        "categories": {name: _category_counts(records) for name, records in splits.items()},
        "constrained": {name: sum(bool(r.constraints) for r in records) for name, records in splits.items()},
        "canary_format": config.canary_format if config else None,
    }


def _category_counts(records: Sequence[Record]) -> dict[str, int]:
    counts = Counter(r.category for r in records)
    return {c: counts[c] for c in CATEGORIES if counts[c]}


def write_dataset(dataset: SynthDataset, out_dir: str | Path) -> Path:
    """Write ``public.jsonl``, ``private.jsonl``, ``canaries.jsonl`` and ``manifest.json`` into ``out_dir``.

    The directory appears whole or not at all. An existing ``out_dir`` is replaced only if it
    holds nothing but these files (a previous run); anything else is refused rather than lost.
    """
    out = Path(out_dir).resolve()
    if out.exists():
        if not out.is_dir():
            raise InputError("exists and is not a directory; choose another --out", path=out)
        foreign = sorted(p.name for p in out.iterdir() if p.name not in FILES)
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise InputError(f"holds other files ({shown}); choose an empty or new --out directory", path=out)
    with atomic_dir(out) as tmp:
        (tmp / "public.jsonl").write_text(to_jsonl(dataset.public), encoding="utf-8")
        (tmp / "private.jsonl").write_text(to_jsonl(dataset.private), encoding="utf-8")
        (tmp / "canaries.jsonl").write_text(canaries_to_jsonl(dataset.canaries), encoding="utf-8")
        info = manifest(dataset)
        info["files"] = {name: sha256_file(tmp / name) for name in FILES[:3]}
        write_json_atomic(tmp / "manifest.json", info)
    return out
