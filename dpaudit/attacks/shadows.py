"""Shadow adapters for the shadow-model and LiRA attacks: plan, train (once, cached), score.

Both attacks use the same K shadows: each is trained with the target's recipe on a random half
of the candidate pool (members ∪ non-members), in complementary pairs, so that every candidate is
IN for half of the shadows (LiRA needs IN and OUT fits for every record); see :func:`paired_in_mask`.

Training is the expensive part, so every shadow is cached on disk under
``dpaudit.paths.cache_dir("shadows", key)``, where ``key`` hashes what determines its weights:
the base (``resolved``), the sha256 of its training records, the recipe and the seed. Running
the same attack again, or with more shadows, or from ``dpaudit audit``, trains nothing already
trained. Entries are written atomically (by ``train_adapter``), so an interrupted run leaves no half
shadow behind.

With one worker, all shadows train one after another on the one frozen base in memory
(``train_adapter`` leaves the base as it found it); with ``--workers N`` or ``--ray-address`` they
are Ray tasks (:func:`train_shadow`), each worker loading the base once. Either way they are
scored here, as extra named adapters of the target's PeftModel.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from dpaudit.attacks.base import ShadowScores
from dpaudit.data.records import Record
from dpaudit.data.tokenize import EncodedExample
from dpaudit.errors import ConfigError
from dpaudit.models.adapters import CONFIG_FILE, LoadedAdapter, attach_adapter, detach_adapter, use_adapter
from dpaudit.models.base import LoadedBase, load_base
from dpaudit.models.scoring import TokenScores, score_tokens
from dpaudit.paths import CACHE_ENV, cache_dir
from dpaudit.scale.device import ResolvedPlacement
from dpaudit.scale.tasks import FanOut, run_tasks

DEFAULT_SHADOWS = 8

# Options of the target's recipe that must not carry over to a shadow: shadows insert no canaries,
# write no checkpoints, and get their own seed (set per shadow).
_RECIPE_OVERRIDES: dict[str, Any] = {
    "canary_inclusion": None,
    "canary_repeats": None,
    "gradient_canaries": 0,
    "checkpoint_every": 0,
}

# Library warnings that every shadow would repeat K times and that say nothing about the attack.
_TRAINING_CHATTER = (".*is_gradient_checkpointing.*", ".*Could not find a config file.*")


@dataclass(frozen=True)
class ShadowPlan:
    """Which candidates each shadow trains on, and where its cached weights live.

    ``in_mask``: (K, n) bool over the candidates; ``recipes``: K training configs (dicts, the
    ``TrainConfig`` fields); ``dirs``: K cache directories.
    """

    in_mask: np.ndarray
    recipes: list[dict[str, Any]]
    dirs: list[Path]

    @property
    def missing(self) -> list[int]:
        """Indices of the shadows not in the cache yet."""
        return [k for k, d in enumerate(self.dirs) if not (d / CONFIG_FILE).is_file()]


def paired_in_mask(n: int, k: int, *, seed: int) -> np.ndarray:
    """(k, n) bool: shadows 2p and 2p+1 train on complementary random halves of the pool.

    So every shadow trains on half the pool (as many records as a target trained on half its data),
    every record is IN for exactly one shadow of each pair (⌊k/2⌋ or ⌈k/2⌉ in all), and pair p
    depends only on (seed, p): the shadows of a run with K shadows are the first K of a run with
    more, so growing K reuses every cached shadow.
    """
    rows = []
    for pair in range((k + 1) // 2):
        half = np.zeros(n, dtype=bool)
        half[np.random.default_rng([seed, pair]).permutation(n)[: n // 2]] = True
        rows += [half, ~half]
    return np.array(rows[:k]).reshape(k, n)


def shadow_seed(seed: int, index: int) -> int:
    """Training seed of shadow ``index``: hashed, so it never equals a small seed the target used
    (a shadow sharing the target's seed would share its adapter initialisation)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:shadow-{index}".encode()).digest()[:4], "little") >> 1


def shadow_recipe(recipe: dict[str, Any], *, seed: int, dp: dict[str, Any] | None = None) -> dict[str, Any]:
    """The target's recipe as a shadow trains it.

    ``dp`` is the target card's resolved DP section: a recipe that calibrated σ to a target ε gets
    the target's resolved σ instead, so that shadows (trained on a different number of records)
    add the same noise as the target did.
    """
    out = {**recipe, **_RECIPE_OVERRIDES, "seed": seed}
    if out.get("dp") and out["dp"].get("target_epsilon") is not None and dp and dp.get("noise_multiplier"):
        out["dp"] = {**out["dp"], "target_epsilon": None, "noise_multiplier": dp["noise_multiplier"]}
    if out.get("dp"):  # shadows are the attacker's own models, never released: seeded noise keeps attack numbers reproducible
        out["dp"] = {**out["dp"], "insecure_reproducible_noise": True}
    return out


def plan_shadows(
    records: Sequence[Record],
    *,
    k: int,
    seed: int,
    base_id: str,
    recipe: dict[str, Any],
    dp: dict[str, Any] | None = None,
) -> ShadowPlan:
    """The K shadows for ``records`` (the candidate pool), with their cache keys. Trains nothing."""
    if k < 2:
        raise ConfigError(f"`shadows` must be 0 (skip shadow attacks) or >= 2, got {k}")
    in_mask = paired_in_mask(len(records), k, seed=seed)
    recipes, dirs = [], []
    for i in range(k):
        rec = shadow_recipe(recipe, seed=shadow_seed(seed, i), dp=dp)
        chosen = [r for r, keep in zip(records, in_mask[i]) if keep]
        key = _cache_key(base_id=base_id, data_sha=records_sha256(chosen), recipe=rec)
        recipes.append(rec)
        dirs.append(cache_dir("shadows") / key)
    return ShadowPlan(in_mask=in_mask, recipes=recipes, dirs=dirs)


def base_identity(base: LoadedBase) -> str:
    """What a shadow's cache key says about its base: where the weights came from, plus the dtype
    and quantization when they are not the CPU default (a bf16 or 4-bit base trains other weights)."""
    tag = base.placement.precision_tag
    return base.resolved if tag is None else f"{base.resolved}@{tag}"


def records_sha256(records: Sequence[Record]) -> str:
    """A content hash of a record set (ids and turns, order-independent)."""
    rows = sorted(json.dumps(r.to_json(), sort_keys=True, ensure_ascii=False) for r in records)
    return hashlib.sha256("\n".join(rows).encode("utf-8")).hexdigest()


def _cache_key(*, base_id: str, data_sha: str, recipe: dict[str, Any]) -> str:
    blob = json.dumps({"base": base_id, "data": data_sha, "recipe": recipe}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]


def train_missing(
    plan: ShadowPlan,
    *,
    base: LoadedBase,
    records: Sequence[Record],
    fanout: FanOut = FanOut(),
    progress: bool = False,
) -> int:
    """Train every shadow of ``plan`` not in the cache yet; returns how many were trained.

    With one worker they train here, one after another, on ``base`` (left unchanged). With more
    (or a Ray address) each shadow is a Ray task (:func:`dpaudit.scale.run_tasks`) that loads the
    base once per worker process (``base.spec`` in ``base.placement``) and trains the same recipe
    with the same seed, so the cached weights, and every score computed from them, do not depend
    on ``fanout``. ``train_adapter`` writes each entry atomically: the shadows that finished stay
    cached when another one fails.
    """
    missing = plan.missing
    placement = base.placement
    if fanout.uses_ray and placement.device != "cpu":
        placement = replace(placement, device="cuda:0")  # Ray shows each task its own GPU as cuda:0
    payloads = [
        {
            "spec": base.spec,
            "placement": placement,
            "members": tuple(r for r, keep in zip(records, plan.in_mask[i]) if keep),
            "recipe": plan.recipes[i],
            "out_dir": str(plan.dirs[i]),
            "cache": os.environ.get(CACHE_ENV),
        }
        for i in missing
    ]
    _BASES[(base.spec, base.placement)] = base  # the in-process path trains on the base already loaded
    try:
        run_tasks(train_shadow, payloads, fanout=fanout, label=f"training {len(missing)} shadow adapter(s)", progress=progress)
    finally:
        _BASES.pop((base.spec, base.placement), None)
    return len(missing)


# Bases loaded by this process for shadow training, by (spec, placement): a Ray worker loads its
# base once and trains all the shadows it is given on it.
_BASES: dict[tuple[str, ResolvedPlacement], LoadedBase] = {}


def train_shadow(payload: dict[str, Any]) -> str:
    """Train one shadow (a :func:`train_missing` payload) into its cache directory; returns it.

    Module-level and of plain values only, so that it runs the same in-process or as a Ray task.
    """
    from dpaudit.train import TrainConfig, train_adapter

    if payload["cache"] is not None:  # a Ray worker writes to the driver's cache
        os.environ[CACHE_ENV] = payload["cache"]
    key = (payload["spec"], payload["placement"])
    if key not in _BASES:
        _BASES[key] = load_base(payload["spec"], placement=payload["placement"], show_progress=False)
    base = _BASES[key]
    with warnings.catch_warnings():
        for message in _TRAINING_CHATTER:
            warnings.filterwarnings("ignore", message=message)
        train_adapter(
            base_model=base.model,
            tokenizer=base.tokenizer,
            members=list(payload["members"]),
            config=TrainConfig.from_dict(payload["recipe"]),
            out_dir=Path(payload["out_dir"]),
            progress=False,
        )
    return payload["out_dir"]


def score_shadows(
    loaded: LoadedAdapter,
    encoded: Sequence[EncodedExample],
    plan: ShadowPlan,
    *,
    batch_size: int,
    progress: bool = False,
) -> ShadowScores:
    """Score the candidates under each cached shadow, attached one at a time beside the target adapter."""
    rows = score_under_shadows(loaded, encoded, plan.dirs, batch_size=batch_size, with_entropy=True, progress=progress)
    return ShadowScores(in_mask=plan.in_mask, scores=rows)


def score_under_shadows(
    loaded: LoadedAdapter,
    encoded: Sequence[EncodedExample],
    dirs: Sequence[Path],
    *,
    batch_size: int,
    with_entropy: bool,
    progress: bool = False,
) -> list[list[TokenScores]]:
    """K lists of scores of ``encoded`` (any records: candidates, RMIA's population) under the shadows
    in ``dirs``, each attached beside the target adapter for its pass and detached after."""
    target = loaded.active
    rows = []
    for i, directory in enumerate(dirs):
        name = attach_adapter(loaded, directory, f"dpaudit-shadow-{i}")
        use_adapter(loaded, name)
        try:
            rows.append(
                score_tokens(
                    loaded.model, loaded.tokenizer, encoded, batch_size=batch_size, with_entropy=with_entropy, progress=progress
                )
            )
        finally:
            use_adapter(loaded, target)
            detach_adapter(loaded, name)
    return rows
