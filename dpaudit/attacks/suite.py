"""Run the membership-inference attacks against one adapter: ``dpaudit attack`` and ``dpaudit audit``.

The order of work is what keeps it fast and light:

1. resolve the candidates (members ∪ non-members) and refuse overlapping sets;
2. load the base once; train the shadow adapters that are not cached yet on it (the base is
   unchanged afterwards);
3. put the target adapter on that same base, and score the candidates once per model: the target
   (with the vocabulary moments min-k%++ needs), the reference (the same PeftModel with its adapter
   disabled, or ``reference=`` another model), each shadow (attached beside the target);
4. when an attack needs a population (RMIA), score those records once per model as well;
5. every attack turns those scores into (n,) arrays; ``mia_metrics`` measures them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dpaudit.attacks.base import ATTACKS, AttackInputs, PopulationScores
from dpaudit.attacks.lira import gaussian_fit_report, shadow_phi
from dpaudit.attacks.shadows import (
    DEFAULT_SHADOWS,
    base_identity,
    plan_shadows,
    score_shadows,
    score_under_shadows,
    train_missing,
)
from dpaudit.attacks.signals import scored_text
from dpaudit.data.loaders import load_records
from dpaudit.data.records import Record
from dpaudit.data.splits import check_disjoint, read_id_list
from dpaudit.data.tokenize import encode_record
from dpaudit.errors import ConfigError, InputError, MissingFileError
from dpaudit.evaluators.mia_metrics import DEFAULT_BOOTSTRAP, mia_metrics, worst_case
from dpaudit.io import atomic_dir, sha256_file, write_json_atomic
from dpaudit.models.adapters import adapter_base_spec, is_full_model_dir, load_adapter, read_adapter_config, read_card
from dpaudit.models.base import load_base
from dpaudit.models.scoring import DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH, TokenScores, score_tokens
from dpaudit.scale.tasks import FanOut

RecordSource = str | Path | Sequence[Record]
DEFAULT_POPULATION = 256  # RMIA's population records z: the score's resolution is 1/m
POPULATION_FILE = "public.jsonl"  # looked for beside the card's data file (the synthetic data's public split)


@dataclass
class AttackSuiteResult:
    """What :func:`run_attacks` found. ``attacks`` maps each attack to its ``mia_metrics`` dict.

    ``ids``, ``labels`` (n,) and ``scores`` (attack → (n,)) are the raw material (the scores CSVs,
    the empirical-ε comparator); :meth:`to_json` leaves them out.
    """

    adapter: str
    base: str
    reference: str | None
    seed: int
    n_members: int
    n_nonmembers: int
    shadows: int
    shadows_trained: int
    attacks: dict[str, dict[str, Any]]
    worst_case: str
    lira_gaussian_fit: dict[str, Any] | None
    timings_s: dict[str, float]
    ids: list[str] = field(repr=False)
    labels: np.ndarray = field(repr=False)
    scores: dict[str, np.ndarray] = field(repr=False)
    n_population: int = 0
    placement: dict[str, Any] | None = None  # device, dtype and quantization the models ran in

    def to_json(self) -> dict[str, Any]:
        return {
            "adapter": self.adapter,
            "base": self.base,
            "reference": self.reference,
            "seed": self.seed,
            "n_members": self.n_members,
            "n_nonmembers": self.n_nonmembers,
            "n_population": self.n_population,
            "shadows": self.shadows,
            "shadows_trained": self.shadows_trained,
            "attacks": self.attacks,
            "worst_case": self.worst_case,
            "lira_signal": "mean token log-prob",
            "lira_gaussian_fit": self.lira_gaussian_fit,
            "timings_s": self.timings_s,
            "placement": self.placement,
        }


def select_attacks(attacks: Sequence[str] | None, *, shadows: int) -> list[str]:
    """The attack names to run: all registered by default; ``shadows=0`` drops the shadow attacks
    from the default and refuses them when named explicitly."""
    if shadows < 0 or shadows == 1:
        raise ConfigError(f"`shadows` must be 0 (skip shadow attacks) or >= 2, got {shadows}")
    if attacks is None:
        return [name for name in ATTACKS.names() if shadows or "shadows" not in ATTACKS.get(name).requires]
    names = list(dict.fromkeys(a.strip() for a in attacks if a.strip()))
    if not names:
        raise ConfigError(f"no attack named; registered: {', '.join(ATTACKS.names())}")
    for name in names:
        if "shadows" in ATTACKS.get(name).requires and not shadows:
            raise ConfigError(f"attack '{name}' needs shadow models; use --shadows K with K >= 2 (not 0)")
    return names


def run_attacks(
    *,
    adapter_dir: str | Path,
    base: str | None = None,
    members: RecordSource | None = None,
    nonmembers: RecordSource | None = None,
    attacks: Sequence[str] | None = None,
    shadows: int = DEFAULT_SHADOWS,
    reference: str | None = None,
    seed: int = 0,
    save_scores: str | Path | None = None,
    attack_options: dict[str, dict[str, Any]] | None = None,
    progress: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    population: RecordSource | None = None,
    population_size: int = DEFAULT_POPULATION,
    fanout: FanOut = FanOut(),
) -> AttackSuiteResult:
    """Attack the adapter at ``adapter_dir`` with ``attacks`` (default: every registered one).

    ``members``/``nonmembers`` are data files (any supported schema) or record lists; by default
    they are the id lists of the adapter's training card over its ``data_file``. ``reference``
    names a base model for the ``ref`` signal (default: the adapter's own base, adapter disabled).
    ``save_scores`` writes ``<attack>.csv`` (``id,member,score``) per attack into that directory.
    ``attack_options`` maps an attack name to its constructor's keyword arguments
    (``{"lira": {"fixed_variance": 0.05}}``).
    ``population`` (RMIA's z records; default :func:`resolve_population`) is cut to
    ``population_size`` records drawn with ``seed``.
    ``fanout``: where the missing shadows train (in this process, or as Ray tasks); the scores do
    not depend on it. The base goes where the current ``placement_scope`` says (``--device``).
    """
    start = time.perf_counter()
    timings: dict[str, float] = {}
    names = select_attacks(attacks, shadows=shadows)
    adapter_dir = Path(adapter_dir)
    card = read_card(adapter_dir)
    spec = adapter_base_spec(adapter_dir, base=base, card=card)  # also checks that this is an adapter directory
    member_records, nonmember_records = resolve_candidates(adapter_dir, card, members=members, nonmembers=nonmembers)
    candidates = member_records + nonmember_records
    z: list[Record] = []
    if any("population" in ATTACKS.get(name).requires for name in names):
        try:
            z = resolve_population(adapter_dir, card, candidates, population=population, size=population_size, seed=seed)
        except InputError:
            if attacks is not None:
                raise
            # The default attack list runs what it can: no population found, no RMIA.
            names = [name for name in names if "population" not in ATTACKS.get(name).requires]
    needs = set().union(*(ATTACKS.get(name).requires for name in names))
    if shadows:  # optional inputs (RMIA's shadows) are computed when the run has them
        needs |= set().union(*(getattr(ATTACKS.get(name), "accepts", frozenset()) for name in names)) & {"shadows"}
    if "shadows" in needs and is_full_model_dir(adapter_dir):
        raise ConfigError("shadow attacks need a PEFT adapter (shadows are adapters on one shared base); "
                          "attack a fully fine-tuned model with --shadows 0", path=adapter_dir, field="shadows")
    labels = np.r_[np.ones(len(member_records), dtype=np.int8), np.zeros(len(nonmember_records), dtype=np.int8)]
    max_length = int(((card or {}).get("hyperparameters") or {}).get("max_length") or DEFAULT_MAX_LENGTH)

    loaded_base = load_base(spec, show_progress=progress)
    plan, trained = None, 0
    if "shadows" in needs:
        plan = plan_shadows(
            candidates,
            k=shadows,
            seed=seed,
            base_id=base_identity(loaded_base),
            recipe=shadow_recipe_of(adapter_dir, card),
            dp=(card or {}).get("dp"),
        )
        tick = time.perf_counter()
        trained = train_missing(plan, base=loaded_base, records=candidates, fanout=fanout, progress=progress)
        timings["shadow_training"] = time.perf_counter() - tick

    loaded = load_adapter(adapter_dir, base=loaded_base)
    tokenizer = loaded.tokenizer
    encoded = [encode_record(r, tokenizer, max_length=max_length) for r in candidates]
    tick = time.perf_counter()
    target = score_tokens(
        loaded.model, tokenizer, encoded, batch_size=batch_size, with_entropy="entropy" in needs, progress=progress
    )
    timings["target_scoring"] = time.perf_counter() - tick
    reference_scores = None
    if "reference" in needs:
        tick = time.perf_counter()
        reference_scores = _reference_scores(
            loaded, encoded, candidates, reference=reference, max_length=max_length, batch_size=batch_size, progress=progress
        )
        timings["reference_scoring"] = time.perf_counter() - tick
    shadow_scores, fit = None, None
    if plan is not None:
        tick = time.perf_counter()
        shadow_scores = score_shadows(loaded, encoded, plan, batch_size=batch_size, progress=progress)
        timings["shadow_scoring"] = time.perf_counter() - tick
        fit = gaussian_fit_report(shadow_phi(shadow_scores), shadow_scores.in_mask)
    population_scores = None
    if "population" in needs:
        tick = time.perf_counter()
        z_encoded = [encode_record(r, tokenizer, max_length=max_length) for r in z]
        population_scores = PopulationScores(
            target=score_tokens(loaded.model, tokenizer, z_encoded, batch_size=batch_size, progress=progress),
            reference=_reference_scores(
                loaded, z_encoded, z, reference=reference, max_length=max_length, batch_size=batch_size, progress=progress
            ),
            shadows=None
            if plan is None
            else score_under_shadows(loaded, z_encoded, plan.dirs, batch_size=batch_size, with_entropy=False, progress=progress),
        )
        timings["population_scoring"] = time.perf_counter() - tick

    inputs = AttackInputs(
        target=target,
        texts=[scored_text(r) for r in candidates],
        reference=reference_scores,
        shadows=shadow_scores,
        population=population_scores,
        seed=seed,
    )
    scores: dict[str, np.ndarray] = {}
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        tick = time.perf_counter()
        scores[name] = np.asarray(ATTACKS.get(name)(**(attack_options or {}).get(name, {})).score(inputs), dtype=np.float64)
        timings[f"attack_{name}"] = time.perf_counter() - tick
        results[name] = mia_metrics(scores=scores[name], labels=labels, seed=seed, n_bootstrap=n_bootstrap)
    ids = [r.id for r in candidates]
    if save_scores is not None:
        from dpaudit.privacy.scores_io import SCORES_MARKER, write_scores_csv

        with atomic_dir(save_scores) as tmp:
            for name, values in scores.items():
                write_scores_csv(tmp / f"{name}.csv", ids=ids, labels=labels, scores=finite_ranks(values))
            write_json_atomic(tmp / SCORES_MARKER, {"adapter": str(adapter_dir), "attacks": sorted(scores), "seed": seed})
    timings["total"] = time.perf_counter() - start
    return AttackSuiteResult(
        adapter=str(adapter_dir),
        base=spec,
        reference=(reference or "base (adapter disabled)") if "reference" in needs else None,
        seed=seed,
        n_members=len(member_records),
        n_nonmembers=len(nonmember_records),
        shadows=shadows if plan is not None else 0,
        shadows_trained=trained,
        attacks=results,
        worst_case=worst_case(results),
        lira_gaussian_fit=fit,
        timings_s={k: round(v, 3) for k, v in timings.items()},
        ids=ids,
        labels=labels,
        scores=scores,
        n_population=len(population_scores.target) if population_scores is not None else 0,
        placement=loaded_base.placement.to_json(),
    )


def resolve_population(
    adapter_dir: Path,
    card: dict | None,
    candidates: Sequence[Record],
    *,
    population: RecordSource | None,
    size: int,
    seed: int,
) -> list[Record]:
    """RMIA's population: known non-members that are not candidates, at most ``size`` of them.

    ``population`` if given; else ``public.jsonl`` beside the card's data file (the synthetic data's
    public split: same distribution, never trained); else the records of the card's data file that
    are neither members nor non-members. Records sharing an id or text with a candidate are dropped.
    """
    if size < 1:
        raise ConfigError(f"`population_size` must be >= 1, got {size}")
    if population is not None:
        pool = _records(population)
    elif card and card.get("data_file"):
        data_path = _locate(adapter_dir, card["data_file"])
        public = data_path.with_name(POPULATION_FILE)
        pool = load_records(public) if public.is_file() and public != data_path else load_records(data_path)
    else:
        raise InputError(
            "RMIA needs population records (known non-members that are not candidates) and this adapter has "
            "no training card to find them; pass --population FILE",
            path=adapter_dir,
        )
    taken_ids, taken_texts = {r.id for r in candidates}, {r.text for r in candidates}
    pool = [r for r in pool if r.id not in taken_ids and r.text not in taken_texts]
    if not pool:
        raise InputError("no population record left once the candidates are excluded; pass --population FILE")
    if len(pool) > size:
        keep = np.sort(np.random.default_rng([seed, 0x524D4941]).choice(len(pool), size=size, replace=False))
        pool = [pool[i] for i in keep]
    return pool


def finite_ranks(scores: np.ndarray) -> np.ndarray:
    """(n,) the scores with non-finite values replaced the way ``mia_metrics`` ranks them, for the
    scores CSV (which holds finite numbers only): NaN and −inf just below the lowest finite score,
    +inf just above the highest. Every finite score is unchanged, so is every ROC quantity.
    The number replaced is the attack's ``n_nonfinite`` in the result."""
    scores = np.asarray(scores, dtype=np.float64)
    finite = scores[np.isfinite(scores)]
    low, high = (finite.min() - 1.0, finite.max() + 1.0) if finite.size else (-1.0, 1.0)
    return np.where(np.isposinf(scores), high, np.where(np.isfinite(scores), scores, low))


def resolve_candidates(
    adapter_dir: Path,
    card: dict | None,
    *,
    members: RecordSource | None,
    nonmembers: RecordSource | None,
) -> tuple[list[Record], list[Record]]:
    """(members, non-members): the given files or records, else the training card's id lists."""
    if (members is None) != (nonmembers is None):
        raise ConfigError("give both --members and --nonmembers, or neither (to use the adapter's training card)")
    if members is not None:
        member_records, nonmember_records = _records(members), _records(nonmembers)
    elif card is None:
        raise InputError(
            "this adapter has no dpaudit.json training card, so its members are unknown; "
            "pass --members FILE --nonmembers FILE",
            path=adapter_dir,
        )
    else:
        member_records, nonmember_records = _card_candidates(adapter_dir, card)
    if not member_records or not nonmember_records:
        raise InputError(
            f"an attack needs members and non-members; got {len(member_records)} and {len(nonmember_records)}"
        )
    check_disjoint(member_records, nonmember_records)
    return member_records, nonmember_records


def shadow_recipe_of(adapter_dir: Path, card: dict | None) -> dict[str, Any]:
    """The target's training recipe: the card's ``hyperparameters``, or for a plain peft adapter its
    LoRA shape (rank, alpha, dropout, target modules, DoRA) with dpaudit's defaults for the rest."""
    if card and card.get("hyperparameters"):
        return dict(card["hyperparameters"])
    config = read_adapter_config(adapter_dir)
    targets = config.target_modules
    return {
        "method": "dora" if getattr(config, "use_dora", False) else "lora",
        "rank": int(config.r),
        "alpha": float(config.lora_alpha),
        "dropout": float(config.lora_dropout),
        "target_modules": sorted(targets) if isinstance(targets, (set, list, tuple)) else None,
    }


def _records(source: RecordSource) -> list[Record]:
    if isinstance(source, (str, Path)):
        return load_records(source)
    return list(source)


def _card_candidates(adapter_dir: Path, card: dict) -> tuple[list[Record], list[Record]]:
    data_file = card.get("data_file")
    if not data_file or not card.get("members_file"):
        raise InputError("the training card names no data file; pass --members FILE --nonmembers FILE", path=adapter_dir)
    if not card.get("nonmembers_file"):
        raise InputError(
            "the training card lists no non-members (every record trained); pass --members FILE --nonmembers FILE",
            path=adapter_dir,
        )
    data_path = _locate(adapter_dir, data_file)
    expected = card.get("data_sha256")
    if expected and sha256_file(data_path) != expected:
        raise InputError(
            "the data file changed since the adapter was trained (sha256 differs from the card); "
            "pass --members FILE --nonmembers FILE",
            path=data_path,
        )
    by_id = {r.id: r for r in load_records(data_path)}

    def pick(name: str) -> list[Record]:
        path = _locate(adapter_dir, card[name])
        ids = read_id_list(path)
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
            raise InputError(f"{len(unknown)} id(s) not in {data_path}: {shown}", path=path)
        return [by_id[i] for i in ids]

    return pick("members_file"), pick("nonmembers_file")


def _locate(adapter_dir: Path, name: str) -> Path:
    """A path from the card: absolute, else relative to the adapter directory, else to the working directory."""
    path = Path(name)
    for candidate in [path] if path.is_absolute() else [adapter_dir / path, path]:
        if candidate.is_file():
            return candidate
    raise MissingFileError(f"{name}: named by {adapter_dir / 'dpaudit.json'} but not found (relative to the adapter or here)")


def _reference_scores(
    loaded, encoded, candidates, *, reference: str | None, max_length: int, batch_size: int, progress: bool
) -> list[TokenScores]:
    """Scores under the reference: the adapter's own base (adapter disabled, no second model), or
    ``reference`` loaded on its own and encoded with its own tokenizer."""
    if reference is None:
        with loaded.model.disable_adapter():
            return score_tokens(loaded.model, loaded.tokenizer, encoded, batch_size=batch_size, progress=progress)
    other = load_base(reference, show_progress=progress)
    return score_tokens(
        other.model, other.tokenizer, candidates, max_length=max_length, batch_size=batch_size, progress=progress
    )
