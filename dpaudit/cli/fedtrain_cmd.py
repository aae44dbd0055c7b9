"""`dpaudit fedtrain` (issue #14): DP-FedLoRA on Flower; the output is a standard adapter with a card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dpaudit.cli.common import (
    JsonOpt,
    OutDirOpt,
    OverwriteOpt,
    SeedOpt,
    console,
    err_console,
    insecure_noise_option,
    print_json,
)
from dpaudit.federated.config import FedConfig
from dpaudit.train.config import TrainConfig

FED_HELP = "Clients and rounds"
DP_HELP = "Privacy"


def fedtrain(
    data: Annotated[Path, typer.Option("--data", help="Data file (JSONL/JSON/Parquet/CSV; chat, alpaca or pair).")],
    out: OutDirOpt,
    base: Annotated[str, typer.Option("--base", help="Base model spec, as for `dpaudit train`.")] = "tiny",
    method: Annotated[str, typer.Option("--method", help="lora, dora or dylora.")] = TrainConfig.method,
    rank: Annotated[int, typer.Option("--rank", help="LoRA rank r.")] = TrainConfig.rank,
    clients: Annotated[int, typer.Option("--clients", help="K: clients holding the members.", rich_help_panel=FED_HELP)] = FedConfig.clients,
    partition: Annotated[
        str, typer.Option("--partition", help="iid, category (a few categories per client) or dirichlet (--alpha).", rich_help_panel=FED_HELP)
    ] = FedConfig.partition,
    alpha: Annotated[
        float, typer.Option("--alpha", help="Dirichlet concentration for --partition dirichlet.", rich_help_panel=FED_HELP)
    ] = FedConfig.dirichlet_alpha,
    clients_file: Annotated[
        Path | None,
        typer.Option("--clients-file", help="'record_id,client_id' per line: the listed records are the members.", rich_help_panel=FED_HELP),
    ] = None,
    rounds: Annotated[int, typer.Option("--rounds", help="R: communication rounds.", rich_help_panel=FED_HELP)] = FedConfig.rounds,
    clients_per_round: Annotated[
        float | None, typer.Option("--clients-per-round", help="M: expected clients per round (Poisson, rate M/K).", rich_help_panel=FED_HELP)
    ] = None,
    client_rate: Annotated[
        float | None, typer.Option("--client-rate", help="q: each client's chance to join a round.", rich_help_panel=FED_HELP)
    ] = None,
    local_epochs: Annotated[float, typer.Option("--local-epochs", help="Local epochs per round.", rich_help_panel=FED_HELP)] = 1.0,
    local_steps: Annotated[
        int | None, typer.Option("--local-steps", help="Local optimizer steps per round (overrides --local-epochs).", rich_help_panel=FED_HELP)
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Local batch size (capped at a client's records).")] = TrainConfig.batch_size,
    lr: Annotated[float, typer.Option("--lr", help="Local learning rate.")] = TrainConfig.lr,
    max_length: Annotated[int, typer.Option("--max-length", help="Tokens per example.")] = TrainConfig.max_length,
    member_fraction: Annotated[float, typer.Option("--member-fraction", help="Share of the records that are members.")] = TrainConfig.member_fraction,
    dp: Annotated[str, typer.Option("--dp", help="none, local (DP-FedLoRA), central (DP-FedAvg) or record (DP-SGD per client).", rich_help_panel=DP_HELP)] = FedConfig.dp,
    target_epsilon: Annotated[float | None, typer.Option("--target-epsilon", help="Calibrate σ to this ε.", rich_help_panel=DP_HELP)] = None,
    noise_multiplier: Annotated[float | None, typer.Option("--noise-multiplier", help="σ (instead of --target-epsilon).", rich_help_panel=DP_HELP)] = None,
    delta: Annotated[float | None, typer.Option("--delta", help="δ (default 1/(10N), N the member records).", rich_help_panel=DP_HELP)] = None,
    max_grad_norm: Annotated[
        float, typer.Option("--max-grad-norm", help="C: update clip (local, central) or per-example clip (record).", rich_help_panel=DP_HELP)
    ] = FedConfig.max_grad_norm,
    accountant: Annotated[str, typer.Option("--accountant", help="prv or rdp.", rich_help_panel=DP_HELP)] = FedConfig.accountant,
    insecure_reproducible_noise: Annotated[bool, insecure_noise_option(DP_HELP)] = FedConfig.insecure_reproducible_noise,
    bandwidth: Annotated[
        int | None, typer.Option("--bandwidth", help="Bytes per client upload per round (8/4-bit, then top-k; after noise).")
    ] = None,
    quorum: Annotated[float, typer.Option("--quorum", help="Stop when fewer than this share of a round's clients reply.")] = FedConfig.quorum,
    backend: Annotated[
        str, typer.Option("--backend", help="simulation (Flower), plain (in-process loop, no Flower) or deployment (plan for `flwr run`).")
    ] = FedConfig.backend,
    cores: Annotated[int, typer.Option("--cores", help="CPU cores for the simulation (virtual clients × threads ≤ cores).")] = FedConfig.cores,
    overwrite: OverwriteOpt = False,
    seed: SeedOpt = 0,
    json_out: JsonOpt = False,
) -> None:
    """Federated LoRA fine-tuning with DP on Flower; writes a standard PEFT adapter and its card.

    Example: dpaudit fedtrain --data d/private.jsonl --clients 8 --rounds 10 --dp central --target-epsilon 8 --out runs/fed
    """
    from dpaudit.federated.runner import require_flower, run_fedtrain
    from dpaudit.outputs import prepare_output_dir
    from dpaudit.train.card import CARD_FILE

    config = FedConfig(
        clients=clients, rounds=rounds, clients_per_round=clients_per_round, client_rate=client_rate,
        partition="file" if clients_file is not None else partition, dirichlet_alpha=alpha, dp=dp,
        noise_multiplier=noise_multiplier, target_epsilon=target_epsilon, delta=delta, max_grad_norm=max_grad_norm,
        accountant=accountant, insecure_reproducible_noise=insecure_reproducible_noise, bandwidth=bandwidth, quorum=quorum, backend=backend, cores=cores,
        train=TrainConfig(method=method, rank=rank, epochs=local_epochs, max_steps=local_steps, batch_size=batch_size,
                          lr=lr, max_length=max_length, member_fraction=member_fraction, seed=seed),
    )
    if config.backend != "plain":
        require_flower()
    out = prepare_output_dir(out, marker=CARD_FILE, overwrite=overwrite,
                             inputs=[p for p in (data, clients_file) if p is not None])
    show = err_console if json_out else console
    card = run_fedtrain(data_file=data, base=base, out_dir=out, config=config, clients_file=clients_file,
                        progress=not json_out, log=lambda line: show.print(f"[dim]·[/] {line}", highlight=False))
    if card is None:
        _print_deployment(out, config.clients, json_out=json_out)
        return
    if json_out:
        print_json({"out": str(out), "card": card})
        return
    fed = card["federated"]
    console.print(
        f"[bold]{card['method']}[/] adapter on [bold]{card['base']}[/] → {out}  ({len(fed['clients'])} clients, "
        f"{fed['rounds']} rounds, {fed['bytes_sent']} B sent, {fed['bytes_received']} B received)",
        highlight=False,
    )
    console.print(guarantee_line(card), highlight=False)


def _print_deployment(out: Path, clients: int, *, json_out: bool) -> None:
    """The commands that run the prepared plan on a SuperLink with one SuperNode per client."""
    from dpaudit.federated.apps import WORK_DIR_KEY
    from dpaudit.federated.runner import deployment_dir

    plan = deployment_dir(out)
    commands = [
        "flower-superlink --insecure --disable-runtime-dependency-installation",
        *(f'flower-supernode --insecure --superlink 127.0.0.1:8000 --port {9094 + i} --node-config "partition-id={i}"'
          for i in range(clients)),
        f"flwr run examples/federated <superlink-connection> --run-config \"{WORK_DIR_KEY}='{plan}'\"",
    ]
    if json_out:
        print_json({"out": str(out), "plan": str(plan), "commands": commands})
        return
    console.print(f"plan → {plan}; run it on a SuperLink (the ServerApp writes the adapter to {out}):", highlight=False)
    for command in commands:
        console.print(f"  {command}", highlight=False, soft_wrap=True)


def guarantee_line(card: dict) -> str:
    """The card's promise in words: which unit, against whom, ε at δ (or none)."""
    fed = card["federated"]
    if fed["mode"] == "none":
        return "no DP: no privacy guarantee (ε = ∞)"
    section = fed["guarantees"][fed["unit"]]
    return (
        f"{fed['mode']} DP: ε = {section['epsilon']:.4g} at δ = {section['delta']:.3g} per {fed['unit']}, "
        f"against {fed['against']} (σ = {section['noise_multiplier']:.4g}, C = {section['max_grad_norm']:g}, "
        f"{section['accountant']} accountant)"
    )
