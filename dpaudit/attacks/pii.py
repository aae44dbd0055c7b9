"""``--attacks ...,pii``: the PII-extraction attack run against an adapter directory.

It is not a membership score (it generates text, and answers "can the model be made to say it?"),
so it is not in ``ATTACKS``: :func:`split_pii` takes the name out of an attack list, and
:func:`run_pii_extraction` resolves the candidates as :func:`dpaudit.attacks.suite.run_attacks`
does (the training card's members and non-members, or the given files), loads the adapter and runs
:func:`dpaudit.evaluators.extraction.pii_extraction`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dpaudit.attacks.suite import RecordSource, resolve_candidates
from dpaudit.evaluators.extraction import ExtractionConfig, pii_extraction
from dpaudit.models.adapters import adapter_base_spec, load_adapter, read_card

PII_ATTACK = "pii"


def split_pii(attacks: Sequence[str] | None) -> tuple[list[str] | None, bool]:
    """(the attack list without ``pii``, whether ``pii`` was asked for). ``None`` (the default
    list) stays None and runs no extraction: generation is slow, so it is opt-in."""
    if attacks is None:
        return None, False
    names = [a.strip() for a in attacks if a.strip()]
    return [a for a in names if a != PII_ATTACK], PII_ATTACK in names


def run_pii_extraction(
    *,
    adapter_dir: str | Path,
    base: str | None = None,
    members: RecordSource | None = None,
    nonmembers: RecordSource | None = None,
    samples: int | None = None,
    seed: int = 0,
    config: ExtractionConfig | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """The report's ``pii_extraction`` section for the adapter at ``adapter_dir``; ``config``
    defaults to :class:`ExtractionConfig` with the card's ``max_length``, ``samples`` (None: the
    default n) and ``seed``."""
    adapter_dir = Path(adapter_dir)
    card = read_card(adapter_dir)
    spec = adapter_base_spec(adapter_dir, base=base, card=card)
    member_records, nonmember_records = resolve_candidates(adapter_dir, card, members=members, nonmembers=nonmembers)
    max_length = int(((card or {}).get("hyperparameters") or {}).get("max_length") or ExtractionConfig.max_length)
    if config is None:
        config = ExtractionConfig(max_length=max_length, seed=seed, **({} if samples is None else {"samples": samples}))
    loaded = load_adapter(adapter_dir, base=spec)
    return pii_extraction(loaded=loaded, members=member_records, nonmembers=nonmember_records, config=config,
                          progress=progress)
