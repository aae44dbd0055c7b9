"""``evaluate``: every model-based evaluator of an adapter in one call, one JSON-able result.

What ``dpaudit eval`` prints and what the audit puts in its report's ``utility`` and ``exposure``
sections (their shapes follow ``report.schema.json``).

Which records:

- **held-out**: ``data`` (a file, every record of it) or ``heldout`` records if given, else the
  adapter's non-members: the card's ``data_file`` filtered by ``nonmembers.txt``;
- **members**: ``members`` if given, else the card's ``data_file`` filtered by ``members.txt``
  (no members, no gap, for adapters made outside dpaudit);
- **canaries**: ``canaries`` (a file or a list) if given, else the card's ``canaries.file``; how
  often each was inserted comes from the card (ids the card does not list count as 0).

Paths stored in the card are tried as written (relative to the working directory, where
``dpaudit train`` ran) and then relative to the adapter directory.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dpaudit.data.canaries import Canary, load_canaries
from dpaudit.data.loaders import load_records
from dpaudit.data.records import Record
from dpaudit.data.splits import read_id_list
from dpaudit.errors import ConfigError, InputError, MissingFileError
from dpaudit.evaluators import defaults
from dpaudit.evaluators.exposure import repeats_from_card
from dpaudit.io import sha256_file
from dpaudit.models.scoring import DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH

Log = Callable[[str], None]


def evaluate(
    adapter,
    *,
    base: str | None = None,
    data: str | Path | None = None,
    heldout: Sequence[Record] | None = None,
    members: Sequence[Record] | None = None,
    adherence: bool = False,
    augment: bool = False,
    max_new_tokens: int = defaults.MAX_NEW_TOKENS,
    limit: int | None = defaults.ADHERENCE_LIMIT,
    judge_model: str | None = None,
    exposure: bool = False,
    canaries: str | Path | Sequence[Canary] | None = None,
    exposure_samples: int = defaults.EXPOSURE_SAMPLES,
    enumerate_limit: int = defaults.EXPOSURE_ENUMERATE_LIMIT,
    max_length: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    log: Log | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Perplexity (always), adherence (``adherence``/``augment``/``judge_model``), exposure (``exposure``).

    ``adapter`` is an adapter directory or an already loaded
    :class:`~dpaudit.models.adapters.LoadedAdapter` (then ``base`` is ignored). ``max_length``
    defaults to the card's training ``max_length``, ``batch_size`` to the scoring pass's. Returns plain JSON types (NaN as None):
    ``{"adapter", "data", "utility": {"perplexity", "adherence", "side_metrics"}, "exposure",
    "settings", "wall_time_s"}``.
    """
    from dpaudit.evaluators.perplexity import evaluate_perplexity
    from dpaudit.models.adapters import LoadedAdapter, load_adapter

    start = time.perf_counter()
    say = log or (lambda message: None)
    _check_options(
        batch_size=batch_size,
        max_length=max_length,
        max_new_tokens=max_new_tokens,
        limit=limit,
        exposure_samples=exposure_samples,
        enumerate_limit=enumerate_limit,
    )
    adherence = adherence or augment or judge_model is not None
    # Fail on bad files before the (possibly slow) model load.
    if isinstance(adapter, LoadedAdapter):
        loaded = adapter
        adapter_dir, card = Path(loaded.path), loaded.card
    else:
        from dpaudit.models.adapters import check_model_dir, read_card

        adapter_dir = Path(adapter)
        check_model_dir(adapter_dir)
        card = read_card(adapter_dir)
        loaded = None
    heldout_records, members_records, data_info = resolve_records(
        adapter_dir, card, data=data, heldout=heldout, members=members
    )
    canary_list, repeats, canaries_source = (
        resolve_canaries(adapter_dir, card, canaries) if exposure else (None, {}, None)
    )
    if loaded is None:
        say("loading the adapter and its base")
        loaded = load_adapter(adapter_dir, base=base)
    model, tokenizer = loaded.model, loaded.tokenizer
    max_length = max_length or _card_max_length(card) or DEFAULT_MAX_LENGTH
    batch_size = batch_size or DEFAULT_BATCH_SIZE

    say(f"perplexity on {len(heldout_records)} held-out and {len(members_records or [])} member records")
    ppl = evaluate_perplexity(
        model=model,
        tokenizer=tokenizer,
        heldout=heldout_records,
        members=members_records,
        max_length=max_length,
        batch_size=batch_size,
        progress=progress,
    )
    utility: dict[str, Any] = {"perplexity": ppl.to_json(), "adherence": None, "side_metrics": None}

    if adherence:
        from dpaudit.evaluators.adherence_eval import evaluate_adherence

        judge = None
        if judge_model is not None:
            from dpaudit.evaluators.model_judge import ModelJudge
            from dpaudit.models.base import load_base

            say(f"loading the judge model {judge_model}")
            judged_by = load_base(judge_model)
            judge = ModelJudge(judged_by.model, judged_by.tokenizer)
        say(f"generating responses (adapter and base, up to {limit} prompts, {max_new_tokens} new tokens)")
        report = evaluate_adherence(
            model=model,
            tokenizer=tokenizer,
            records=heldout_records,
            augment=augment,
            limit=limit,
            max_new_tokens=max_new_tokens,
            max_length=max_length,
            batch_size=batch_size,
            seed=seed,
            judge=judge,
            progress=progress,
        )
        utility["adherence"] = report.to_json()
        if judge is not None:
            utility["adherence"]["model_judge"]["model"] = judge_model
        utility["side_metrics"] = report.side_metrics_json()

    exposure_json = None
    if exposure:
        from dpaudit.evaluators.exposure import canary_exposure

        say(f"exposure of {len(canary_list)} canaries")
        result = canary_exposure(
            model=model,
            tokenizer=tokenizer,
            canaries=canary_list,
            repeats=repeats,
            max_length=max_length,
            seed=seed,
            enumerate_limit=enumerate_limit,
            n_samples=exposure_samples,
        )
        exposure_json = {**result.to_json(), "source": canaries_source}

    out = {
        "adapter": {
            "path": str(adapter_dir),
            "base": loaded.base.spec,
            "base_resolved": loaded.base.resolved,
            "method": (card or {}).get("method"),
            "epsilon": ((card or {}).get("dp") or {}).get("epsilon"),
        },
        "data": data_info,
        "utility": utility,
        "exposure": exposure_json,
        "settings": {"max_length": max_length, "batch_size": batch_size, "seed": seed},
        "wall_time_s": round(time.perf_counter() - start, 3),
    }
    return _plain(out)


# --------------------------------------------------------------------------- inputs


def resolve_records(
    adapter_dir: Path,
    card: Mapping[str, Any] | None,
    *,
    data: str | Path | None = None,
    heldout: Sequence[Record] | None = None,
    members: Sequence[Record] | None = None,
) -> tuple[list[Record], list[Record] | None, dict[str, Any]]:
    """``(held-out records, member records or None, description)`` (see the module doc)."""
    info: dict[str, Any] = {}
    card_records = None

    def from_card() -> list[Record]:
        nonlocal card_records
        if card_records is None:
            card_records = _card_data(adapter_dir, card)
        return card_records

    if heldout is not None:
        heldout_records, info["heldout"] = list(heldout), {"source": "given", "n": len(heldout)}
    elif data is not None:
        heldout_records = load_records(data)
        info["heldout"] = {"source": str(data), "n": len(heldout_records)}
    else:
        if not card or not card.get("data_file") or not card.get("nonmembers_file"):
            raise InputError(
                f"{adapter_dir} has no training card naming its non-members (dpaudit.json); "
                "pass the held-out records with --data FILE",
                path=adapter_dir,
            )
        heldout_records = _by_ids(from_card(), adapter_dir / card["nonmembers_file"], card)
        info["heldout"] = {"source": f"{card['data_file']} (non-members)", "n": len(heldout_records)}
    if not heldout_records:
        raise InputError("no held-out records to evaluate on")

    members_records: list[Record] | None
    if members is not None:
        members_records = list(members)
        info["members"] = {"source": "given", "n": len(members_records)}
    elif card and card.get("data_file") and card.get("members_file"):
        members_records = _by_ids(from_card(), adapter_dir / card["members_file"], card)
        info["members"] = {"source": f"{card['data_file']} (members)", "n": len(members_records)}
    else:
        members_records, info["members"] = None, None
    return heldout_records, members_records, info


def resolve_canaries(
    adapter_dir: Path, card: Mapping[str, Any] | None, canaries: str | Path | Sequence[Canary] | None
) -> tuple[list[Canary], dict[str, int], str]:
    """``(canaries, {id: repeats}, source)``: from ``canaries`` or the card's ``canaries.file``.

    With a card that records insertions, a canary it does not list was never inserted (0).
    """
    if canaries is not None and not isinstance(canaries, (str, Path)):
        canary_list, source = list(canaries), "given"
    else:
        if canaries is None:
            section = (card or {}).get("canaries") or {}
            if not section.get("file"):
                raise InputError(
                    f"{adapter_dir} was not trained with canaries (its card names no canaries file); "
                    "pass one with --canaries FILE"
                )
            path = _card_path(adapter_dir, section["file"], what="canaries file")
        else:
            path = Path(canaries)
        canary_list, source = load_canaries(path), str(path)
    if not canary_list:
        raise InputError(f"{source}: no canaries to evaluate")
    recorded = repeats_from_card(card)
    repeats = {c.id: recorded.get(c.id, 0) for c in canary_list} if recorded else {}
    return canary_list, repeats, source


def _card_data(adapter_dir: Path, card: Mapping[str, Any]) -> list[Record]:
    path = _card_path(adapter_dir, card["data_file"], what="data file")
    expected = card.get("data_sha256")
    if expected and sha256_file(path) != expected:
        warnings.warn(
            f"{path} changed since the adapter was trained (sha256 differs from the card); "
            "member and non-member records are matched by id",
            stacklevel=3,
        )
    return load_records(path)


def _card_path(adapter_dir: Path, value: str, *, what: str) -> Path:
    """A path from the card: as written (relative to the working directory), else beside the adapter."""
    path = Path(value)
    for candidate in (path, adapter_dir / path, adapter_dir / path.name):
        if candidate.is_file():
            return candidate
    raise MissingFileError(
        f"the {what} {value} named by {adapter_dir}/dpaudit.json is not there; run from the directory "
        f"where the adapter was trained, or pass the file explicitly"
    )


def _by_ids(records: Sequence[Record], id_file: Path, card: Mapping[str, Any]) -> list[Record]:
    if not id_file.is_file():
        raise MissingFileError(f"{id_file}: no such id list (the adapter directory is incomplete)")
    ids = read_id_list(id_file)
    by_id = {r.id: r for r in records}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        shown = ", ".join(unknown[:3]) + (", ..." if len(unknown) > 3 else "")
        raise InputError(
            f"{len(unknown)} id(s) are not in the data file {card.get('data_file')}: {shown} "
            "(was it regenerated since training?)",
            path=id_file,
        )
    return [by_id[i] for i in ids]


def _card_max_length(card: Mapping[str, Any] | None) -> int | None:
    value = ((card or {}).get("hyperparameters") or {}).get("max_length")
    return int(value) if isinstance(value, int) and value > 0 else None


def _check_options(
    *,
    batch_size: int | None,
    max_length: int | None,
    max_new_tokens: int,
    limit: int | None,
    exposure_samples: int,
    enumerate_limit: int,
) -> None:
    """Every bad option at once, before anything is loaded."""
    problems = []
    if batch_size is not None and batch_size < 1:
        problems.append(f"`batch_size` must be >= 1, got {batch_size}")
    if max_length is not None and max_length < 1:
        problems.append(f"`max_length` must be >= 1, got {max_length}")
    if max_new_tokens < 1:
        problems.append(f"`max_new_tokens` must be >= 1, got {max_new_tokens}")
    if limit is not None and limit < 1:
        problems.append(f"`limit` must be >= 1, got {limit}")
    if exposure_samples < 2:
        problems.append(f"`exposure_samples` must be >= 2, got {exposure_samples}")
    if enumerate_limit < 1:
        problems.append(f"`enumerate_limit` must be >= 1, got {enumerate_limit}")
    if problems:
        raise ConfigError("; ".join(problems))


def _plain(value: Any) -> Any:
    """Plain JSON types: numpy → Python, NaN/inf → None, tuples → lists, paths → str."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value
