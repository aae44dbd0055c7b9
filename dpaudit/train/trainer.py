"""Train LoRA / DoRA / DyLoRA / full fine-tuning, with or without DP-SGD, and save a standard adapter.

Two entry points:

- :func:`train_adapter` trains on a base model already in memory (the shadow-model attack
  calls it K times on one frozen base; LoRA-family methods leave that base unchanged).
- :func:`run_training` is what ``dpaudit train`` calls: it loads the data file, makes the
  member split, inserts canaries, loads the base and calls :func:`train_adapter`.

>>> result = train_adapter(base_model=base.model, tokenizer=base.tokenizer, members=members,
...                        config=TrainConfig(dp=DPConfig(target_epsilon=8)), out_dir=None)  # doctest: +SKIP
>>> with result.attach(base.model) as model:   # the trained adapter on the same base  # doctest: +SKIP
...     ...
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dpaudit.data.records import Record
from dpaudit.data.tokenize import encode_record
from dpaudit.errors import ConfigError, InputError
from dpaudit.io import atomic_dir, sha256_file, write_json_atomic
from dpaudit.limits import check_batch_size
from dpaudit.scale.device import Placement, placement_of
from dpaudit.train.card import CARD_FILE, MEMBERS_FILE, NONMEMBERS_FILE, build_card
from dpaudit.train.checkpoint import CHECKPOINT_DIR
from dpaudit.train.config import TrainConfig
from dpaudit.train.distributed import training_run_type, world_size
from dpaudit.train.loop import LoopOutcome, Plan, mechanism_randomness, plan_run, resolve_device, run_loop
from dpaudit.train.methods import inject_lora, prepare_model, remove_lora

GRADIENT_CANARY_SCORES = "gradient_canary_scores.csv"


@dataclass
class TrainResult:
    """What a run produced. ``adapter_state`` holds the trained weights on the CPU.

    For LoRA-family methods ``adapter_state`` is peft's adapter state dict and ``peft_config``
    its config, so :meth:`attach` can put the adapter back on the base in memory; for ``full``
    ``model`` is the trained copy.
    """

    method: str
    adapter_dir: Path | None
    card: dict[str, Any]
    losses: list[float]
    adapter_state: dict[str, torch.Tensor] = field(repr=False)
    peft_config: Any = field(default=None, repr=False)
    model: nn.Module | None = field(default=None, repr=False)
    gradient_canary_scores: tuple[list[str], np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def epsilon(self) -> float | None:
        return None if self.card["dp"] is None else self.card["dp"]["epsilon"]

    @contextlib.contextmanager
    def attach(self, base_model: nn.Module) -> Iterator[nn.Module]:
        """The trained model on ``base_model`` (in eval mode); LoRA layers are removed again on exit."""
        if self.method == "full":
            yield self.model.eval()
            return
        from peft import set_peft_model_state_dict

        peft_model = inject_lora(base_model, self.peft_config)
        set_peft_model_state_dict(peft_model, self.adapter_state)
        peft_model.eval()
        try:
            yield peft_model
        finally:
            remove_lora(peft_model, base_model)


def train_adapter(
    *,
    base_model: nn.Module,
    tokenizer,
    members: Sequence[Record],
    config: TrainConfig,
    out_dir: Path | None = None,
    progress: bool = True,
    nonmembers: Sequence[Record] | None = None,
    canary_records: Sequence[Record] = (),
    canary_info: dict[str, Any] | None = None,
    base_spec: str | None = None,
    base_resolved: str | None = None,
    data_file: Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train ``config.method`` on ``members`` (+ ``canary_records``) over ``base_model``.

    With ``out_dir`` the adapter, the card and the id files are written there atomically;
    checkpoints go to ``out_dir/.checkpoint`` and ``resume=True`` continues from them.
    For LoRA-family methods ``base_model`` is unchanged afterwards.
    """
    start_time = time.perf_counter()
    members = list(members)
    if not members:
        raise InputError("no member records to train on")
    train_records = members + list(canary_records)
    examples = [encode_record(r, tokenizer, max_length=config.max_length) for r in train_records]
    plan = plan_run(len(examples), config)
    device = resolve_device(config.device, model=base_model)
    checkpoint_dir = Path(out_dir) / CHECKPOINT_DIR if out_dir is not None else None
    if resume and (checkpoint_dir is None or not checkpoint_dir.is_dir()):
        raise InputError(f"nothing to resume: no checkpoint in {out_dir} (run without --resume)")
    if config.dp is not None:
        _print_delta(plan, progress)
    duplicates = _duplicates(train_records)
    base_fingerprint = (
        _base_fingerprint(base_model, base_resolved or base_spec) if checkpoint_dir is not None else ""
    )

    original_device = next(base_model.parameters()).device
    if device != original_device and getattr(base_model, "is_quantized", False):
        raise ConfigError(
            f"a quantized base stays on the device it was loaded on ({original_device}); train there (device 'auto'), not on {device}"
        )
    prepared = prepare_model(base_model, config)
    try:
        if device != original_device:
            prepared.model.to(device)  # before opacus wraps it: moving after wrapping trains nothing
        outcome = run_loop(
            prepared,
            examples,
            pad_id=tokenizer.pad_token_id,
            config=config,
            plan=plan,
            device=device,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            progress=progress,
            run_type=training_run_type(),
            base_fingerprint=base_fingerprint,
        )
        card = build_card(
            base=base_spec or getattr(base_model, "name_or_path", None) or None,
            base_resolved=base_resolved,
            data_file=str(data_file) if data_file is not None else None,
            data_sha256=sha256_file(data_file) if data_file is not None else None,
            has_nonmembers=nonmembers is not None,
            method=config.method,
            hyperparameters=_hyperparameters(config, prepared.target_modules),
            dp=_dp_card(config, plan, outcome, duplicates=duplicates, progress=progress),
            duplicates=duplicates,
            canaries=canary_info,
            gradient_canaries=outcome.gradient_canaries.card_entry() if outcome.gradient_canaries else None,
            training=_training_card(plan, outcome, n_members=len(members)),
            seed=config.seed,
            wall_time_s=time.perf_counter() - start_time,
            placement={**placement_of(base_model).to_json(), "device": str(device), "processes": world_size()},
        )
        canary_scores = None
        if outcome.gradient_canaries is not None:
            gc = outcome.gradient_canaries
            canary_scores = (gc.ids, gc.included.numpy().astype(int), gc.scores(list(prepared.trainable.values())))
        result = _collect(prepared, config, card, outcome, canary_scores)
        if out_dir is not None:
            result.adapter_dir = _write_output(
                Path(out_dir), prepared, result, tokenizer, members=members, nonmembers=nonmembers, base_spec=card["base"]
            )
    finally:
        prepared.restore()
        if config.method != "full" and device != original_device:
            base_model.to(original_device)
    return result


def _print_delta(plan: Plan, progress: bool) -> None:
    if progress:
        from rich.console import Console

        Console(stderr=True).print(f"δ = {plan.delta:.3g} ({plan.delta_rule})", highlight=False)


def _hyperparameters(config: TrainConfig, target_modules) -> dict[str, Any]:
    hyper = config.to_dict()
    hyper["target_modules"] = list(target_modules) if target_modules else None
    return hyper


def _duplicates(records: Sequence[Record]) -> dict[str, Any] | None:
    """Records that occur more than once (same text) among the training examples, for the card."""
    from dpaudit.data.stats import duplicate_groups

    groups = duplicate_groups(records)
    if not groups:
        return None
    return {
        "max_multiplicity": max(len(ids) for ids in groups),
        "groups": len(groups),
        "ids": list(dict.fromkeys(i for ids in groups for i in ids)),
    }


def _base_fingerprint(base_model: nn.Module, spec: str | None) -> str:
    """sha256 of the base's resolved spec and its weights (before any adapter): ``--resume`` checks it."""
    digest = hashlib.sha256(str(spec).encode())
    for name, tensor in sorted(base_model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _dp_card(
    config: TrainConfig, plan: Plan, outcome: LoopOutcome, *, duplicates: dict[str, Any] | None, progress: bool
) -> dict[str, Any] | None:
    if config.dp is None:
        return None
    from dpaudit.privacy.accountants import answer_epsilon
    from dpaudit.privacy.group import group_privacy

    dp = config.dp
    ledger = outcome.ledger
    # The accountant calibration settled on (RDP when PRV declined or the target is below its floor).
    answer = answer_epsilon(ledger.events, delta=plan.delta, accountant=plan.calibration_accountant or dp.accountant)
    note = answer.note or (plan.calibration_note if answer.accountant != dp.accountant else None)
    group = None
    if duplicates is not None:
        group = group_privacy(epsilon=answer.epsilon, delta=plan.delta, k=duplicates["max_multiplicity"], n=plan.n)
        _warn(f"{duplicates['groups']} record text(s) occur more than once: {group.describe()}", progress)
    if note:
        _warn(f"ε: {note}", progress)
    return {
        "noise_multiplier": plan.noise_multiplier,
        "max_grad_norm": dp.max_grad_norm,
        "sample_rate": plan.sample_rate,
        "steps": ledger.steps,
        "delta": plan.delta,
        "delta_rule": plan.delta_rule,
        "n": plan.n,
        "expected_batch_size": plan.expected_batch_size,
        "accountant": answer.accountant,
        "accountant_note": note,
        "epsilon": answer.epsilon,
        "target_epsilon": dp.target_epsilon,
        "calibration": None
        if dp.target_epsilon is None
        else {"accountant": plan.calibration_accountant, "note": plan.calibration_note},
        "clipping": dp.clipping,
        "sampler": "poisson",
        "randomness": mechanism_randomness(config),
        "realised_noise_std": outcome.realised_noise_std,
        "final_max_grad_norm": outcome.final_max_grad_norm,
        "unclipped_num_std": outcome.unclipped_num_std,
        "group_privacy": None if group is None else group.to_json(),
        "events": ledger.to_json(),
    }


def _warn(message: str, progress: bool) -> None:
    if progress:
        from rich.console import Console

        Console(stderr=True).print(f"[bold yellow]warning:[/] {message}", highlight=False)


def _training_card(plan: Plan, outcome: LoopOutcome, *, n_members: int) -> dict[str, Any]:
    finite = [x for x in outcome.losses if math.isfinite(x)]
    tail = finite[-max(1, len(finite) // 10) :] if finite else []
    return {
        "n_members": n_members,
        "n_train_examples": plan.n,
        "steps": outcome.steps,
        "sample_rate": plan.sample_rate,
        "first_loss": finite[0] if finite else None,
        "final_loss": float(np.mean(tail)) if tail else None,
    }


def _collect(prepared, config: TrainConfig, card, outcome: LoopOutcome, canary_scores) -> TrainResult:
    if config.method == "full":
        state = {k: v.detach().cpu().clone() for k, v in prepared.model.state_dict().items()}
        return TrainResult(
            method="full", adapter_dir=None, card=card, losses=outcome.losses, adapter_state=state,
            model=prepared.model.cpu(), gradient_canary_scores=canary_scores,
        )
    from peft import get_peft_model_state_dict

    peft_model = prepared.model
    state = {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(peft_model, save_embedding_layers=False).items()}
    return TrainResult(
        method=config.method, adapter_dir=None, card=card, losses=outcome.losses, adapter_state=state,
        peft_config=peft_model.peft_config["default"], gradient_canary_scores=canary_scores,
    )


def _write_output(out_dir: Path, prepared, result: TrainResult, tokenizer, *, members, nonmembers, base_spec) -> Path:
    from dpaudit.data.splits import write_id_list

    with atomic_dir(out_dir) as tmp:
        if result.method == "full":
            prepared.model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        else:
            peft_model = prepared.model
            if base_spec:
                peft_model.peft_config["default"].base_model_name_or_path = base_spec
            # The embeddings never train here; "auto" would look the base up on the Hub to check its vocabulary.
            peft_model.save_pretrained(tmp, safe_serialization=True, save_embedding_layers=False)
        write_id_list(tmp / MEMBERS_FILE, [r.id for r in members])
        if nonmembers is not None:
            write_id_list(tmp / NONMEMBERS_FILE, [r.id for r in nonmembers])
        if result.gradient_canary_scores is not None:
            from dpaudit.privacy.scores_io import write_scores_csv

            ids, labels, scores = result.gradient_canary_scores
            write_scores_csv(tmp / GRADIENT_CANARY_SCORES, ids, labels, scores)
        write_json_atomic(tmp / CARD_FILE, result.card)
    return out_dir


def run_training(
    *,
    data_file: Path,
    base: str | None,
    out_dir: Path | None,
    config: TrainConfig,
    members_file: Path | None = None,
    canaries_file: Path | None = None,
    data_format: str | None = None,
    resume: bool = False,
    progress: bool = True,
    placement: Placement | None = None,
) -> TrainResult:
    """``dpaudit train``: load, split, insert canaries, train, write ``out_dir`` atomically.

    ``placement``: where the base is loaded (device, dtype, quantization); training runs there.
    """
    from dpaudit.data.canaries import load_canaries
    from dpaudit.data.loaders import load_records
    from dpaudit.data.splits import check_disjoint, member_split, read_id_list
    from dpaudit.models.base import load_base
    from dpaudit.train.canaries import insert_record_canaries

    data_file = Path(data_file)
    records = load_records(data_file, format=data_format)
    if members_file is not None:
        members, nonmembers = _split_from_file(records, Path(members_file), read_id_list)
        check_disjoint(members, nonmembers)
    else:
        members, nonmembers = member_split(records, fraction=config.member_fraction, seed=config.seed)
    canary_records: list[Record] = []
    canary_info = None
    if canaries_file is not None:
        if config.canary_inclusion is None and config.canary_repeats is None:
            raise ConfigError("--canaries needs --canary-inclusion P or --canary-repeats LIST")
        canaries = load_canaries(canaries_file)
        train, canary_info = insert_record_canaries(
            members, canaries, inclusion=config.canary_inclusion, repeats=config.canary_repeats, seed=config.seed
        )
        canary_records = train[len(members) :]
        canary_info = {"file": str(canaries_file), **canary_info}
    elif config.canary_inclusion is not None or config.canary_repeats is not None:
        raise ConfigError("--canary-inclusion / --canary-repeats need --canaries FILE")
    check_batch_size(config.batch_size, n_examples=len(members) + len(canary_records))  # before loading the base
    loaded = load_base(base, show_progress=progress, placement=placement)
    return train_adapter(
        base_model=loaded.model,
        tokenizer=loaded.tokenizer,
        members=members,
        config=config,
        out_dir=out_dir,
        progress=progress,
        nonmembers=nonmembers,
        canary_records=canary_records,
        canary_info=canary_info,
        base_spec=loaded.spec,
        base_resolved=loaded.resolved,
        data_file=data_file,
        resume=resume,
    )


def _split_from_file(records: Sequence[Record], path: Path, read_id_list) -> tuple[list[Record], list[Record]]:
    ids = read_id_list(path)
    known = {r.id for r in records}
    unknown = [i for i in ids if i not in known]
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise InputError(f"{len(unknown)} member id(s) not in the data file: {shown}", path=path)
    chosen = set(ids)
    members = [r for r in records if r.id in chosen]
    nonmembers = [r for r in records if r.id not in chosen]
    if not nonmembers:
        raise InputError("every record is a member; no non-members are left for the audit", path=path)
    return members, nonmembers
