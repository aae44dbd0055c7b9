"""``dpaudit fedtrain``: load and split the data, prepare the plan, run the rounds, leave an adapter.

:func:`run_fedtrain` is the one library call of the command. It partitions the members across
the clients (and the non-members across as many held-out clients, for the client-level attack),
builds the initial adapter exactly as ``dpaudit train`` would (same seed, same init), writes the
plan into a private work directory beside ``out``, and runs the rounds on the chosen backend:

- ``simulation``: the Flower apps in Flower's simulation engine (:mod:`dpaudit.federated.apps`);
- ``plain``: :func:`run_plain`, the same client and server steps in an in-process loop (no
  Flower), which is the reference for Flower's overhead;
- ``deployment``: only the plan, in ``OUT.plan`` (kept), for ``flwr run`` against a SuperLink
  (:func:`deployment_dir`; README shows the commands).

Either way the server writes the adapter and the card to ``out``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from dpaudit.data.records import Record
from dpaudit.errors import ConfigError, MissingDependencyError
from dpaudit.federated.config import FedConfig
from dpaudit.federated.plan import INITIAL_FILE, FedPlan, initial_state_arrays, resolve_plan
from dpaudit.federated.rounds import ClientReply, Log, Server, flatten_state, train_client
from dpaudit.io import read_json_object
from dpaudit.train.card import CARD_FILE

FED_EXTRA_HINT = "Flower is not installed: pip install 'dpaudit[fed]'"


def require_flower() -> None:
    """Fail in one line, with the install command, when Flower's simulation extra is missing."""
    import importlib.util

    if importlib.util.find_spec("flwr") is None or importlib.util.find_spec("ray") is None:
        raise MissingDependencyError(FED_EXTRA_HINT)


def assign_clients(
    records: Sequence[Record], config: FedConfig, *, clients_file: Path | None = None
) -> tuple[FedConfig, dict[str, list[Record]], dict[str, list[Record]]]:
    """(config, training clients, held-out clients): members partitioned across K, non-members likewise."""
    from dpaudit.data.splits import member_split
    from dpaudit.federated.partition import partition_records, read_clients_file

    seed = config.train.seed
    if clients_file is not None:
        members_by_client = read_clients_file(clients_file, records)
        listed = {r.id for recs in members_by_client.values() for r in recs}
        nonmembers = [r for r in records if r.id not in listed]
        if not nonmembers:
            raise ConfigError("every record is in --clients-file; no held-out records are left for the audit")
        config = replace(config, clients=len(members_by_client), partition="file")
        scheme = "iid"
    else:
        members, nonmembers = member_split(records, fraction=config.train.member_fraction, seed=seed)
        scheme = config.partition
        parts = partition_records(members, clients=config.clients, scheme=scheme, seed=seed,
                                  dirichlet_alpha=config.dirichlet_alpha, categories_per_client=config.categories_per_client)
        members_by_client = {f"c{i}": part for i, part in enumerate(parts)}
    held = partition_records(nonmembers, clients=min(config.clients, len(nonmembers)), scheme=scheme, seed=seed + 1,
                             dirichlet_alpha=config.dirichlet_alpha, categories_per_client=config.categories_per_client)
    return config, members_by_client, {f"h{i}": part for i, part in enumerate(held)}


def run_plain(plan: FedPlan, *, base_model, tokenizer, records: dict[str, Record], initial, log: Log | None = None) -> Server:
    """The rounds in a plain loop: same client and server steps as the Flower apps, no Flower."""
    from dpaudit.federated.card import write_federated_adapter

    start = time.perf_counter()
    server = Server(plan=plan, state=initial, log=log)
    for round_index in range(plan.config.rounds):
        sampled = server.sample(round_index)
        replies: list[ClientReply] = []
        failures: list[str] = []
        for client in sampled:
            try:
                replies.append(train_client(
                    plan=plan, client=client, round_index=round_index, global_flat=server.state,
                    records=[records[i] for i in plan.clients[client]], base_model=base_model, tokenizer=tokenizer,
                ))
            except Exception as exc:  # a failing client is reported; the round goes on (quorum permitting)
                failures.append(f"{client}: {type(exc).__name__}: {exc}")
        server.aggregate(round_index, sampled=len(sampled), replies=replies, failures=failures)
    write_federated_adapter(plan, server, wall_time_s=time.perf_counter() - start)
    return server


def deployment_dir(out_dir: Path) -> Path:
    """Where ``--backend deployment`` leaves the plan for ``flwr run`` (beside ``out``)."""
    return out_dir.parent / f"{out_dir.name}.plan"


def run_fedtrain(
    *,
    data_file: Path,
    base: str | None,
    out_dir: Path,
    config: FedConfig,
    clients_file: Path | None = None,
    data_format: str | None = None,
    progress: bool = True,
    log: Log | None = None,
) -> dict[str, Any] | None:
    """Run a federated training and return its card (the adapter is in ``out_dir``).

    With ``backend="deployment"`` nothing is trained: the plan is written to
    :func:`deployment_dir` and None is returned; the ServerApp writes ``out_dir`` at the end of the
    ``flwr run``.
    """
    from dpaudit.data.loaders import load_records
    from dpaudit.models.base import load_base

    data_file, out_dir = Path(data_file), Path(out_dir)
    records = load_records(data_file, format=data_format)
    config, members, held_out = assign_clients(records, config, clients_file=clients_file)
    loaded = load_base(base, show_progress=progress)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if config.backend == "deployment":
        work_dir = deployment_dir(out_dir)
        work_dir.mkdir(mode=0o700, exist_ok=True)
        prepare_plan(config, members=members, held_out=held_out, loaded=loaded, work_dir=work_dir,
                     out_dir=out_dir, data_file=data_file, data_format=data_format, progress=progress)
        return None
    work_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.fedtrain.", dir=out_dir.parent))
    try:
        plan, initial = prepare_plan(config, members=members, held_out=held_out, loaded=loaded, work_dir=work_dir,
                                     out_dir=out_dir, data_file=data_file, data_format=data_format, progress=progress)
        if config.backend == "plain":
            run_plain(plan, base_model=loaded.model, tokenizer=loaded.tokenizer,
                      records={r.id: r for r in records}, initial=initial, log=log)
        else:
            require_flower()
            from dpaudit.federated.apps import run_simulation

            run_simulation(plan, log=log)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return read_json_object(out_dir / CARD_FILE)


def prepare_plan(
    config: FedConfig,
    *,
    members: dict[str, list[Record]],
    held_out: dict[str, list[Record]],
    loaded,
    work_dir: Path,
    out_dir: Path,
    data_file: Path,
    data_format: str | None = None,
    progress: bool = True,
) -> tuple[FedPlan, Any]:
    """Write the plan, the initial adapter and its peft config into ``work_dir``; return (plan, flat initial state).

    The initial adapter is ``dpaudit train``'s init for the same seed (``prepare_model``), so that
    one client for one round reproduces ``dpaudit train``.
    """
    from peft import get_peft_model_state_dict
    from safetensors.numpy import save_file

    from dpaudit.io import sha256_file
    from dpaudit.train.methods import prepare_model

    prepared = prepare_model(loaded.model, config.train)
    try:
        state = get_peft_model_state_dict(prepared.model, save_embedding_layers=False)
        peft_config = prepared.model.peft_config["default"]
        peft_config.base_model_name_or_path = loaded.spec
        peft_config.save_pretrained(str(work_dir))
    finally:
        prepared.restore()
    names = sorted(state)
    initial = flatten_state(state, names)
    save_file(initial_state_arrays(initial), str(work_dir / INITIAL_FILE))
    plan = resolve_plan(
        config, clients={c: [r.id for r in recs] for c, recs in members.items()},
        held_out={c: [r.id for r in recs] for c, recs in held_out.items()}, tensor_names=names,
        tensor_shapes=[list(state[n].shape) for n in names], work_dir=work_dir, out=out_dir, base=loaded.spec,
        base_resolved=loaded.resolved, data_file=data_file, data_format=data_format,
        data_sha256=sha256_file(data_file), progress=progress,
    )
    plan.save()
    return plan, initial
