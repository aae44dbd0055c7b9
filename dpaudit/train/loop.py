"""The training loop shared by DP and non-DP runs.

One iteration is one *logical* step: draw a batch (Poisson with rate q under DP, or shuffled
batches without), split it into physical batches of at most ``physical_batch_size``, run
forward/backward on each, then one optimizer step. Under DP the split follows opacus's
``BatchMemoryManager`` protocol (``signal_skip_step``: every physical batch but the last only
clips and accumulates), driven here per logical batch so that DyLoRA's rank draw, gradient
canaries, the privacy ledger and checkpoints all see logical steps. An empty Poisson batch is
still a step: the update is pure noise, as the accountant assumes.

The loss of an example is the mean cross-entropy over its target (assistant) tokens. Under DP
the backward pass is of the *sum* of per-example losses and opacus divides the noisy clipped
sum by the expected batch size q·N; without DP the gradient is that of the batch mean.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn

from dpaudit.data.tokenize import IGNORE_INDEX, EncodedExample, pad_batch
from dpaudit.errors import ConfigError, InputError
from dpaudit.models.scoring import next_token_targets, target_logits
from dpaudit.privacy.accountants import answer_epsilon, calibrate
from dpaudit.privacy.comparator import INSECURE_RANDOMNESS, SECURE_RANDOMNESS
from dpaudit.privacy.events import PoissonSampledGaussian, PrivacyLedger
from dpaudit.progress import PlainProgress
from dpaudit.scale.device import Placement
from dpaudit.train import checkpoint as ckpt
from dpaudit.train.canaries import GradientCanaries
from dpaudit.train.config import TrainConfig
from dpaudit.train.dp import TrainingSanityError, check_grad_sample_shapes, check_weights_changed, make_private
from dpaudit.train.dylora import RankSampler
from dpaudit.train.methods import PreparedModel

EPSILON_UPDATES = 20  # how many times the progress bar recomputes ε over a run


@dataclass(frozen=True)
class Plan:
    """The numbers a run is resolved to before it starts (recorded in the card)."""

    n: int  # training examples (members plus inserted canary records)
    steps: int
    sample_rate: float  # q: Poisson rate, or B/N for shuffled batches
    expected_batch_size: float  # q·N
    delta: float | None = None
    noise_multiplier: float | None = None
    delta_rule: str | None = None
    calibration_accountant: str | None = None  # the accountant σ was calibrated with (it may differ: see note)
    calibration_note: str | None = None


def plan_run(n: int, config: TrainConfig) -> Plan:
    """Resolve q, the number of steps, δ (default 1/(10·N), refused when ≥ 1/N) and σ."""
    if n < 1:
        raise InputError("no training examples")
    sampler = config.resolved_sampler
    if sampler == "poisson" and config.batch_size > n:
        raise ConfigError(f"`batch_size` ({config.batch_size}) exceeds the {n} training examples (sample rate > 1)")
    q = min(config.batch_size / n, 1.0)
    if config.max_steps is not None:
        steps = config.max_steps
    elif sampler == "poisson":
        steps = math.ceil(config.epochs / q - 1e-9)
    else:
        steps = math.ceil(config.epochs * math.ceil(n / config.batch_size) - 1e-9)
    steps = max(steps, 1)
    if config.dp is None:
        return Plan(n=n, steps=steps, sample_rate=q, expected_batch_size=q * n)
    dp = config.dp
    if dp.delta is None:
        delta, rule = 1.0 / (10 * n), f"1/(10·N) with N = {n} training examples"
    else:
        delta = dp.delta
        if delta >= 1.0 / n:
            raise ConfigError(
                f"`delta` ({delta:g}) must be < 1/N = {1.0 / n:g} (N = {n} training examples): a δ that large "
                "allows releasing a whole training example"
            )
        rule = f"given; 1/N = {1.0 / n:.3g} with N = {n} training examples (δ·N = {delta * n:.3g})"
    if dp.noise_multiplier is not None:
        return Plan(
            n=n, steps=steps, sample_rate=q, expected_batch_size=q * n, delta=delta,
            noise_multiplier=dp.noise_multiplier, delta_rule=rule,
        )
    found = calibrate(target_epsilon=dp.target_epsilon, sample_rate=q, steps=steps, delta=delta, accountant=dp.accountant)
    return Plan(
        n=n, steps=steps, sample_rate=q, expected_batch_size=q * n, delta=delta, noise_multiplier=found.noise_multiplier,
        delta_rule=rule, calibration_accountant=found.accountant, calibration_note=found.note,
    )


def stream_seed(seed: int, name: str) -> int:
    """An independent 63-bit seed per named random stream (sampler, noise, dylora, canaries)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little") >> 1


#: The DP mechanism's random streams: secret unless the run opts into insecure reproducible noise.
MECHANISM_STREAMS = ("sampler", "noise")


def mechanism_randomness(config: TrainConfig) -> str:
    """``"secure"`` or ``"insecure-reproducible"`` (recorded in the card's ``dp.randomness``)."""
    insecure = config.dp is not None and config.dp.insecure_reproducible_noise
    return INSECURE_RANDOMNESS if insecure else SECURE_RANDOMNESS


def generator_seed(config: TrainConfig, name: str) -> int:
    """The seed of stream ``name``: from ``config.seed`` except for the DP mechanism's streams.

    DP-SGD's guarantee assumes the adversary cannot predict which examples a step samples or the
    noise it adds. Seeded from ``--seed`` (which the card records) both are predictable: replaying
    the run on a neighbouring dataset decides membership with no error. So under DP the sampler
    and the noise draw a fresh secret seed from the OS's CSPRNG (never printed nor stored outside
    the private checkpoint), unless ``insecure_reproducible_noise`` opts out for tests and studies.
    """
    if config.dp is not None and name in MECHANISM_STREAMS and not config.dp.insecure_reproducible_noise:
        return secrets.randbits(63)
    return stream_seed(config.seed, name)


def per_example_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy over each example's target tokens, shape (n,), in float32.

    The LM head runs only at the positions that predict a target token (:func:`target_logits`), not
    over the prompt and padding; the cross-entropy is taken in float32 whatever the model's dtype.
    An example without target tokens has loss 0 (and so no gradient).
    """
    targets = next_token_targets(batch["labels"])
    is_target = targets != IGNORE_INDEX
    logits = target_logits(model, input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], is_target=is_target)
    token_loss = F.cross_entropy(logits.float(), targets[is_target], reduction="none")  # (N,) over all target tokens
    rows = is_target.nonzero()[:, 0]
    sums = torch.zeros(is_target.shape[0], dtype=token_loss.dtype, device=token_loss.device).index_add(0, rows, token_loss)
    return sums / is_target.sum(1).clamp(min=1).to(sums.dtype)


def resolve_device(name: str, *, model: nn.Module | None = None) -> torch.device:
    """Where a run trains. ``auto`` trains where ``model`` already is (``load_base`` put the base on
    its device, in its dtype), or on CUDA when present without a model; ``cpu``, ``cuda`` and
    ``cuda:N`` are checked against this machine (:class:`dpaudit.scale.device.Placement`)."""
    if name == "auto" and model is not None:
        return next(model.parameters()).device
    return Placement(device=name).resolve().torch_device


class ShuffleBatches:
    """Non-DP sampling: a fresh seeded permutation per epoch, cut into batches of ``batch_size``."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator) -> None:
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self.order: list[int] = []
        self.position = 0

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            if self.position >= len(self.order):
                self.order = torch.randperm(self.n, generator=self.generator).tolist()
                self.position = 0
            batch = self.order[self.position : self.position + self.batch_size]
            self.position += self.batch_size
            yield batch

    def state(self) -> dict[str, Any]:
        return {"order": self.order, "position": self.position}

    def load_state(self, state: dict[str, Any]) -> None:
        self.order, self.position = list(state["order"]), int(state["position"])


@dataclass
class LoopOutcome:
    steps: int
    losses: list[float]  # mean training loss of each logical step (NaN for an empty batch)
    ledger: PrivacyLedger | None
    realised_noise_std: float | None
    final_max_grad_norm: float | None
    unclipped_num_std: float | None  # adaptive clipping: σ_b of the noisy clipped count actually used
    gradient_canaries: GradientCanaries | None
    dylora_ranks: list[int] = field(default_factory=list)


class TrainingRun:
    """The state of one run between logical steps: everything a checkpoint must hold."""

    def __init__(self, prepared: PreparedModel, *, config: TrainConfig, plan: Plan, device: torch.device) -> None:
        self.prepared, self.config, self.plan, self.device = prepared, config, plan, device
        self.params = list(prepared.trainable.values())
        seed = config.seed
        self.generators = {
            "sampler": torch.Generator().manual_seed(generator_seed(config, "sampler")),
            "noise": torch.Generator(device=device).manual_seed(generator_seed(config, "noise")),
            "dylora": torch.Generator().manual_seed(generator_seed(config, "dylora")),
        }
        self.base_optimizer = (
            torch.optim.SGD(self.params, lr=config.lr)
            if config.optimizer == "sgd"
            else torch.optim.Adam(self.params, lr=config.lr)
        )
        self.canaries = None
        if config.gradient_canaries:
            self.canaries = GradientCanaries(
                self.params, count=config.gradient_canaries, sample_rate=plan.sample_rate,
                seed=stream_seed(seed, "canaries"),
            )
            self.generators["canaries"] = self.canaries.generator
        self.gsm = self.dp_optimizer = self.ledger = None
        self.forward_model: nn.Module = prepared.model
        if config.dp is not None:
            self.gsm, self.dp_optimizer = make_private(
                prepared.model,
                self.base_optimizer,
                dp=config.dp,
                noise_multiplier=plan.noise_multiplier,
                expected_batch_size=plan.expected_batch_size,
                generator=self.generators["noise"],
                canaries=self.canaries,
                noise_scale=config._noise_scale,
            )
            self.forward_model, self.ledger = self.gsm, PrivacyLedger()
        model_params = {id(p) for p in prepared.model.parameters() if p.requires_grad}
        if {id(p) for p in self.params} != model_params:
            raise TrainingSanityError("the optimizer does not hold the parameters the model trains")
        self.rank_sampler = (
            RankSampler(prepared.model, rank=config.rank, generator=self.generators["dylora"])
            if config.method == "dylora"
            else None
        )
        self.shuffle = (
            ShuffleBatches(plan.n, config.batch_size, self.generators["sampler"])
            if config.resolved_sampler == "shuffle"
            else None
        )
        self.step = 0
        self.losses: list[float] = []
        self.ranks: list[int] = []
        self.checked = False  # the first-step sanity checks ran
        self.shapes_checked = False  # the per-example gradient shapes were checked (first non-empty DP batch)

    @property
    def dp(self) -> bool:
        return self.dp_optimizer is not None

    def batches(self) -> Iterator[list[int]]:
        """Logical batches for the remaining steps (opacus's Poisson sampler, or shuffled batches)."""
        if self.shuffle is not None:
            return iter(self.shuffle)
        return iter(
            UniformWithReplacementSampler(
                num_samples=self.plan.n,
                sample_rate=self.plan.sample_rate,
                generator=self.generators["sampler"],
                steps=self.plan.steps - self.step,
            )
        )

    def logical_step(self, indices: list[int], examples: Sequence[EncodedExample], *, pad_id: int) -> float:
        """One optimizer step on the logical batch ``indices``; returns its mean loss (NaN if empty)."""
        if self.rank_sampler is not None:
            self.ranks.append(self.rank_sampler.sample())
        before = None if self.checked else {n: p.detach().cpu().clone() for n, p in self.prepared.trainable.items()}
        physical = self.config.resolved_physical_batch_size
        chunks = np.array_split(np.asarray(indices, dtype=np.int64), max(1, math.ceil(len(indices) / physical)))
        loss_sum = 0.0
        for k, chunk in enumerate(chunks):
            if self.dp:
                self.dp_optimizer.signal_skip_step(do_skip=k < len(chunks) - 1)
            if len(chunk):
                loss_sum += self._backward(chunk.tolist(), examples, pad_id=pad_id, n_logical=len(indices))
            elif self.dp:  # empty Poisson batch: zero per-example gradients, the step adds pure noise
                for p in self.params:
                    p.grad_sample = torch.zeros((0, *p.shape), device=p.device, dtype=p.dtype)
            if self.dp:
                self.dp_optimizer.step()
                self.dp_optimizer.zero_grad()
        if self.dp:
            self.ledger.record(
                PoissonSampledGaussian(noise_multiplier=self.plan.noise_multiplier, sample_rate=self.plan.sample_rate)
            )
        else:
            if len(indices):
                self.base_optimizer.step()
            self.base_optimizer.zero_grad(set_to_none=True)
        if before is not None and (self.dp or len(indices)):  # a non-DP empty batch takes no step
            check_weights_changed(self.prepared.trainable, before)
            self.checked = True
        self.step += 1
        self.losses.append(loss_sum / len(indices) if len(indices) else float("nan"))
        return self.losses[-1]

    def _backward(self, chunk: list[int], examples, *, pad_id: int, n_logical: int) -> float:
        batch = {k: v.to(self.device) for k, v in pad_batch([examples[i] for i in chunk], pad_id=pad_id).items()}
        total = per_example_loss(self.forward_model, batch).sum()
        # DP: opacus needs the sum of per-example losses (it divides by q·N itself); else the batch mean.
        with warnings.catch_warnings():
            # opacus's hooks on the first LoRA layer see inputs that need no gradient (a frozen base): expected.
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            (total if self.dp else total / n_logical).backward()
        if self.dp and not self.shapes_checked:
            check_grad_sample_shapes(self.params, batch_size=len(chunk))
            self.shapes_checked = True
        return float(total.detach())

    def epsilon(self) -> float | None:
        if self.ledger is None or not len(self.ledger):
            return None
        accountant = self.plan.calibration_accountant or self.config.dp.accountant
        return answer_epsilon(self.ledger.events, delta=self.plan.delta, accountant=accountant).epsilon

    # -- checkpoints --------------------------------------------------------------------------

    def save(self, directory: Path, *, fingerprint: str) -> None:
        tensors = {f"param.{name}": p for name, p in self.prepared.trainable.items()}
        if self.canaries is not None:
            tensors["canaries.initial"] = self.canaries.initial
        state = {
            "step": self.step,
            "config": self.config.to_dict(),
            "fingerprint": fingerprint,
            "losses": self.losses,
            "ranks": self.ranks,
            "checked": self.checked,
            "shapes_checked": self.shapes_checked,
            "shuffle": self.shuffle.state() if self.shuffle is not None else None,
            "ledger": self.ledger.to_json() if self.ledger is not None else None,
            "max_grad_norm": float(self.dp_optimizer.max_grad_norm) if self.dp else None,
            "noise_checked": not self.dp_optimizer.check_noise_next_step if self.dp else None,
        }
        ckpt.save_checkpoint(
            directory,
            tensors=tensors,
            generators=self.generators,
            optimizer_state=self.base_optimizer.state_dict(),
            state=state,
        )

    def restore(self, directory: Path, *, fingerprint: str) -> None:
        tensors, gen_states, optimizer_state, state = ckpt.load_checkpoint(directory)
        saved, current = state["config"], self.config.to_dict()
        changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k) and k != "checkpoint_every")
        if changed:
            raise InputError(
                f"the checkpoint was written with different options ({', '.join(changed)}); rerun without --resume"
            )
        saved_parts, parts = _fingerprint_parts(state["fingerprint"]), _fingerprint_parts(fingerprint)
        for part, what in (("base", "a different base model (spec or weights)"), ("data", "different training data")):
            if saved_parts.get(part) != parts.get(part):
                raise InputError(f"the checkpoint was written for {what}; rerun without --resume")
        with torch.no_grad():
            for name, p in self.prepared.trainable.items():
                p.copy_(tensors[f"param.{name}"].to(p.device))
        self.base_optimizer.load_state_dict(optimizer_state)
        for name, generator in self.generators.items():
            generator.set_state(gen_states[name])
        if self.canaries is not None:
            self.canaries.initial = tensors["canaries.initial"]
        if self.shuffle is not None:
            self.shuffle.load_state(state["shuffle"])
        if self.ledger is not None:
            for event in PrivacyLedger.from_json(state["ledger"]).events:
                self.ledger.record(event)
        if self.dp:
            self.dp_optimizer.max_grad_norm = state["max_grad_norm"]
            self.dp_optimizer.check_noise_next_step = not state["noise_checked"]
        self.step, self.losses, self.ranks = state["step"], list(state["losses"]), list(state["ranks"])
        self.checked = state["checked"]
        self.shapes_checked = state.get("shapes_checked", self.checked)

    def close(self) -> LoopOutcome:
        """Detach opacus and DyLoRA from the model and report."""
        if self.rank_sampler is not None:
            self.rank_sampler.remove()
        if self.gsm is not None:
            self.gsm.to_standard_module()  # removes opacus hooks and per-parameter attributes
        return LoopOutcome(
            steps=self.step,
            losses=self.losses,
            ledger=self.ledger,
            realised_noise_std=self.dp_optimizer.realised_noise_std if self.dp else None,
            final_max_grad_norm=float(self.dp_optimizer.max_grad_norm) if self.dp else None,
            unclipped_num_std=_float_or_none(getattr(self.dp_optimizer, "unclipped_num_std", None)),
            gradient_canaries=self.canaries,
            dylora_ranks=self.ranks,
        )


def run_loop(
    prepared: PreparedModel,
    examples: Sequence[EncodedExample],
    *,
    pad_id: int,
    config: TrainConfig,
    plan: Plan,
    device: torch.device,
    checkpoint_dir: Path | None,
    resume: bool,
    progress: bool,
    run_type: type[TrainingRun] | None = None,
    base_fingerprint: str = "",
) -> LoopOutcome:
    """Train ``prepared.model`` (already on ``device``) for ``plan.steps`` logical steps.

    ``run_type``: a :class:`TrainingRun` subclass (data-parallel DP-SGD uses
    :class:`dpaudit.train.distributed.DistributedTrainingRun`). ``base_fingerprint`` (the base's
    spec and weights hash) goes into checkpoints beside the data's, so ``--resume`` refuses a
    different base.
    """
    run = (run_type or TrainingRun)(prepared, config=config, plan=plan, device=device)
    fingerprint = f"data={examples_fingerprint(examples)};base={base_fingerprint}"
    if resume:
        run.restore(checkpoint_dir, fingerprint=fingerprint)
    every = config.checkpoint_every if checkpoint_dir is not None else 0
    refresh = max(1, plan.steps // EPSILON_UPDATES)
    try:
        with ProgressBar(progress, plan.steps, run.step) as bar:
            batches = run.batches()
            while run.step < plan.steps:
                loss = run.logical_step(next(batches), examples, pad_id=pad_id)
                show_eps = progress and (run.step % refresh == 0 or run.step == plan.steps)
                bar.update(run.step, loss, run.epsilon() if show_eps else None)
                if every and run.step % every == 0 and run.step < plan.steps:
                    run.save(checkpoint_dir, fingerprint=fingerprint)
    finally:
        outcome = run.close()
    return outcome


def _fingerprint_parts(fingerprint: str) -> dict[str, str]:
    """``"data=…;base=…"`` → {"data": …, "base": …} (an older checkpoint's bare hash is its data part)."""
    if "=" not in fingerprint:
        return {"data": fingerprint}
    return dict(part.split("=", 1) for part in fingerprint.split(";"))


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def examples_fingerprint(examples: Sequence[EncodedExample]) -> str:
    """Hash of the tokenized training set (a checkpoint only resumes on the same data)."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(example.id.encode())
        digest.update(np.asarray(example.input_ids, dtype=np.int64).tobytes())
    return digest.hexdigest()


class ProgressBar:
    """A rich progress bar (on stderr) with loss and ε so far; a no-op when ``enabled`` is False.

    Without a terminal it prints :class:`dpaudit.progress.PlainProgress` lines instead
    (``train step 3/15 loss 2.2899 ε 4.31 elapsed 0:00:47 left 0:03:08``).
    """

    def __init__(self, enabled: bool, total: int, start: int) -> None:
        self.enabled = enabled
        self.total, self.start = total, start
        self.epsilon: float | None = None
        console = Console(stderr=True)
        self.plain = PlainProgress("train step", total, console=console, start=start) \
            if enabled and not console.is_terminal else None

    def __enter__(self) -> ProgressBar:
        if self.enabled and self.plain is None:
            self.progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("ε {task.fields[eps]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self.progress.__enter__()
            self.task = self.progress.add_task("train", total=self.total, completed=self.start, loss="-", eps="-")
        return self

    def update(self, done: int, loss: float, epsilon: float | None) -> None:
        if not self.enabled:
            return
        if epsilon is not None:
            self.epsilon = epsilon
        eps = "-" if self.epsilon is None else f"{self.epsilon:.3g}"
        if self.plain is not None:
            self.plain.update(done, f"loss {loss:.4f} ε {eps}")
        else:
            self.progress.update(self.task, completed=done, loss=f"{loss:.4f}", eps=eps)

    def __exit__(self, *exc) -> None:
        if self.enabled and self.plain is None:
            self.progress.__exit__(*exc)
