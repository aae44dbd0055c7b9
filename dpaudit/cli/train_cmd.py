"""`dpaudit train` (issue #3): LoRA / DoRA / DyLoRA / full fine-tuning, optionally with DP-SGD."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dpaudit.cli.common import (
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    OutDirOpt,
    OverwriteOpt,
    QuantizeOpt,
    SeedOpt,
    console,
    insecure_noise_option,
    print_json,
)
from dpaudit.errors import ConfigError
from dpaudit.interrupts import Interrupted
from dpaudit.outputs import prepare_output_dir
from dpaudit.scale.device import Placement
from dpaudit.train.card import CARD_FILE
from dpaudit.train.checkpoint import CHECKPOINT_DIR
from dpaudit.train.config import CLIPPING_MODES, DPConfig, TrainConfig

DP_HELP = "DP-SGD options (need --dp)"
CANARY_HELP = "Canaries"


def _int_list(text: str | None, option: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(int(item) for item in text.split(","))
    except ValueError:
        raise ConfigError(f"`{option}` must be comma-separated integers, got {text!r}") from None
    return values


def _names(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(item.strip() for item in text.split(","))
    if not all(names):
        raise ConfigError(f"`--target-modules` has an empty item: {text!r}")
    return names


def train(
    data: Annotated[Path, typer.Option("--data", help="Data file (JSONL/JSON/Parquet/CSV; chat, alpaca or pair).")],
    out: OutDirOpt,
    base: Annotated[
        str, typer.Option("--base", help="Base model: 'tiny', 'smollm2-135m', a local HF directory, a .gguf file or a hub id.")
    ] = "tiny",
    method: Annotated[str, typer.Option("--method", help="lora, dora, dylora (random rank prefix per step) or full.")] = "lora",
    rank: Annotated[int, typer.Option("--rank", help="LoRA rank r (dylora: the maximum rank).")] = TrainConfig.rank,
    alpha: Annotated[float, typer.Option("--alpha", help="LoRA alpha (scaling alpha/r).")] = TrainConfig.alpha,
    target_modules: Annotated[
        str | None, typer.Option("--target-modules", help="Comma list of module names (default: q_proj,v_proj-style per architecture).")
    ] = None,
    dropout: Annotated[float, typer.Option("--dropout", help="LoRA dropout.")] = TrainConfig.dropout,
    data_format: Annotated[str | None, typer.Option("--format", help="Force the schema: chat, alpaca or pair.")] = None,
    member_fraction: Annotated[
        float, typer.Option("--member-fraction", help="Seeded share of the data file used as training members.")
    ] = TrainConfig.member_fraction,
    members_file: Annotated[
        Path | None, typer.Option("--members-file", help="Use this member id list (one id per line) instead of a random split.")
    ] = None,
    epochs: Annotated[float, typer.Option("--epochs", help="Passes over the members (expected, under Poisson sampling).")] = TrainConfig.epochs,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Optimizer steps (overrides --epochs).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Logical batch size (expected size under Poisson).")] = TrainConfig.batch_size,
    physical_batch_size: Annotated[
        int | None, typer.Option("--physical-batch-size", help="Largest forward batch (memory); default --batch-size.")
    ] = None,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = TrainConfig.lr,
    optimizer: Annotated[str, typer.Option("--optimizer", help="adam or sgd.")] = TrainConfig.optimizer,
    max_length: Annotated[int, typer.Option("--max-length", help="Tokens per example.")] = TrainConfig.max_length,
    sampler: Annotated[
        str | None, typer.Option("--sampler", help="poisson or shuffle (default: poisson with --dp, shuffle without).")
    ] = None,
    dp: Annotated[bool, typer.Option("--dp", help="Train with DP-SGD (opacus).", rich_help_panel=DP_HELP)] = False,
    noise_multiplier: Annotated[
        float | None, typer.Option("--noise-multiplier", help="sigma: noise std sigma*C.", rich_help_panel=DP_HELP)
    ] = None,
    target_epsilon: Annotated[
        float | None, typer.Option("--target-epsilon", help="Calibrate sigma to this epsilon.", rich_help_panel=DP_HELP)
    ] = None,
    delta: Annotated[
        float | None, typer.Option("--delta", help="delta (default 1/(10N); must be < 1/N).", rich_help_panel=DP_HELP)
    ] = None,
    max_grad_norm: Annotated[
        float, typer.Option("--max-grad-norm", help="C: per-example clipping norm.", rich_help_panel=DP_HELP)
    ] = DPConfig.max_grad_norm,
    accountant: Annotated[str, typer.Option("--accountant", help="prv or rdp.", rich_help_panel=DP_HELP)] = DPConfig.accountant,
    clipping: Annotated[
        str,
        typer.Option(
            "--clipping",
            help=f"{', '.join(CLIPPING_MODES)} (adaptive: quantile-based; noise-allocation: per-tensor noise shares).",
            rich_help_panel=DP_HELP,
        ),
    ] = DPConfig.clipping,
    insecure_reproducible_noise: Annotated[bool, insecure_noise_option(DP_HELP)] = DPConfig.insecure_reproducible_noise,
    canaries: Annotated[
        Path | None, typer.Option("--canaries", help="canaries.jsonl (from `dpaudit data synth --canaries K`).", rich_help_panel=CANARY_HELP)
    ] = None,
    canary_inclusion: Annotated[
        float | None, typer.Option("--canary-inclusion", help="Insert each canary with this probability (seeded).", rich_help_panel=CANARY_HELP)
    ] = None,
    canary_repeats: Annotated[
        str | None, typer.Option("--canary-repeats", help="Comma list, e.g. 1,4,16: canary groups inserted that many times.", rich_help_panel=CANARY_HELP)
    ] = None,
    gradient_canaries: Annotated[
        int, typer.Option("--gradient-canaries", help="M white-box Dirac gradient canaries (with --dp).", rich_help_panel=CANARY_HELP)
    ] = TrainConfig.gradient_canaries,
    checkpoint_every: Annotated[
        int, typer.Option("--checkpoint-every", help="Steps between checkpoints in OUT/.checkpoint (0: none).")
    ] = TrainConfig.checkpoint_every,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from OUT/.checkpoint.")] = False,
    overwrite: OverwriteOpt = False,
    nproc: Annotated[
        int, typer.Option("--nproc", min=1, help="Data-parallel DP-SGD on N local processes (torch.distributed: gloo on CPU, nccl on GPU).")
    ] = 1,
    device: DeviceOpt = TrainConfig.device,
    dtype: DtypeOpt = Placement.dtype,
    quantize: QuantizeOpt = Placement.quantize,
    seed: SeedOpt = 0,
    json_out: JsonOpt = False,
) -> None:
    """Train an adapter on the members of a data file and save it as a standard PEFT adapter.

    Example: dpaudit train --data d/private.jsonl --base tiny --method lora --dp --target-epsilon 8 --out runs/dp8
    """
    from dpaudit.train.distributed import is_output_rank
    from dpaudit.train.distributed import train as train_job

    dp_given = [name for name, value in (("--noise-multiplier", noise_multiplier), ("--target-epsilon", target_epsilon),
                                         ("--delta", delta)) if value is not None]
    if insecure_reproducible_noise:
        dp_given.append("--insecure-reproducible-noise")
    if dp_given and not dp:
        raise ConfigError(f"{', '.join(dp_given)} {'needs' if len(dp_given) == 1 else 'need'} --dp")
    dp_config = None
    if dp:
        dp_config = DPConfig(
            noise_multiplier=noise_multiplier,
            target_epsilon=target_epsilon,
            delta=delta,
            max_grad_norm=max_grad_norm,
            accountant=accountant,
            clipping=clipping,
            insecure_reproducible_noise=insecure_reproducible_noise,
        )
    config = TrainConfig(
        method=method,
        rank=rank,
        alpha=alpha,
        dropout=dropout,
        target_modules=_names(target_modules),
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        physical_batch_size=physical_batch_size,
        lr=lr,
        optimizer=optimizer,
        max_length=max_length,
        seed=seed,
        sampler=sampler,
        member_fraction=member_fraction,
        canary_inclusion=canary_inclusion,
        canary_repeats=_int_list(canary_repeats, "--canary-repeats"),
        gradient_canaries=gradient_canaries,
        checkpoint_every=checkpoint_every,
        device=device,
        dp=dp_config,
    )
    placement = Placement(device=device, dtype=dtype, quantize=quantize)
    placement.resolve()  # a device or precision this machine cannot serve fails here, before the data is read
    # --resume continues this command's own checkpoint; under torchrun only rank 0 prepares the output
    if is_output_rank() and not (resume and (out / CHECKPOINT_DIR).is_dir()):
        out = prepare_output_dir(out, marker=(CARD_FILE, CHECKPOINT_DIR), overwrite=overwrite,
                                 inputs=[path for path in (data, members_file, canaries) if path is not None])
    try:
        card = train_job(
            nproc=nproc,
            data_file=data,
            base=base,
            out_dir=out,
            config=config,
            members_file=members_file,
            canaries_file=canaries,
            data_format=data_format,
            resume=resume,
            progress=not json_out,
            placement=placement,
        )
    except Interrupted as exc:
        if (out / CHECKPOINT_DIR).is_dir():
            exc.hint = f"resume with --resume (checkpoint in {out / CHECKPOINT_DIR})"
        raise
    if card is None:  # a torchrun rank other than 0: rank 0 reports
        return
    if json_out:
        print_json({"out": str(out), "card": card})
        return
    training = card["training"]
    console.print(
        f"[bold]{card['method']}[/] adapter on [bold]{card['base']}[/] → {out}  "
        f"({training['n_members']} members, {training['steps']} steps, final loss {training['final_loss']:.4f})",
        highlight=False,
    )
    if card["dp"] is None:
        console.print("no DP: no privacy guarantee (ε = ∞)", highlight=False)
    else:
        d = card["dp"]
        console.print(
            f"DP-SGD: ε = {d['epsilon']:.4g} at δ = {d['delta']:.3g} ({d['accountant']} accountant; "
            f"σ = {d['noise_multiplier']:.4g}, C = {d['max_grad_norm']:g}, q = {d['sample_rate']:.4g}, "
            f"{d['steps']} steps, {d['clipping']} clipping)",
            highlight=False,
        )
        from dpaudit.privacy.comparator import INSECURE_RANDOMNESS, SEEDED_NOISE

        if d.get("randomness") == INSECURE_RANDOMNESS:
            console.print(
                f"[bold red]no DP guarantee[/]: --insecure-reproducible-noise ({SEEDED_NOISE})",
                highlight=False,
            )
        if d.get("group_privacy"):
            from dpaudit.privacy.group import GroupGuarantee

            console.print(f"[yellow]group privacy[/]: {GroupGuarantee(**d['group_privacy']).describe()}", highlight=False)
    if card.get("gradient_canaries"):
        console.print(
            f"gradient canary scores → {out / 'gradient_canary_scores.csv'} "
            f"(audit: dpaudit epsilon empirical --scores {out / 'gradient_canary_scores.csv'} --method one-run "
            f"--delta {card['dp']['delta']:.3g})",
            highlight=False,
        )
