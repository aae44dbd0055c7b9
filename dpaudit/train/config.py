"""What a training run is asked to do: :class:`TrainConfig` and its DP part :class:`DPConfig`.

Both are frozen dataclasses that only store and validate (every problem is collected and
reported once, naming the field and the value). Values that depend on the data (the default
δ = 1/(10·N), the sample rate q = B/N, the planned number of steps) are resolved by the
trainer, which records the resolved numbers in the training card.

>>> cfg = TrainConfig(method="lora", rank=8, dp=DPConfig(target_epsilon=8.0))
>>> cfg.dp.accountant
'prv'
>>> DPConfig(noise_multiplier=1.0, max_grad_norm=0)
Traceback (most recent call last):
...
dpaudit.errors.ConfigError: `max_grad_norm` must be > 0, got 0
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from dpaudit.errors import ConfigError
from dpaudit.scale.device import Placement

METHODS = ("lora", "dora", "dylora", "full")
OPTIMIZERS = ("sgd", "adam")
SAMPLERS = ("poisson", "shuffle")
ACCOUNTANTS = ("prv", "rdp")
CLIPPING_MODES = ("flat", "per-layer", "adaptive", "noise-allocation")
GRAD_SAMPLE_MODES = ("hooks", "functorch")  # opacus: per-layer hooks (functorch for unknown layers), or functorch only


def _raise_all(problems: list[str]) -> None:
    if problems:
        raise ConfigError("; ".join(problems))


def _positive(problems: list[str], name: str, value: float | None) -> None:
    if value is not None and not value > 0:
        problems.append(f"`{name}` must be > 0, got {value}")


def _one_of(problems: list[str], name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        problems.append(f"`{name}` must be one of {', '.join(allowed)}, got {value!r}")


@dataclass(frozen=True)
class DPConfig:
    """DP-SGD settings (opacus does the clipping, noising and accounting).

    Exactly one of ``noise_multiplier`` (σ) and ``target_epsilon`` is given; with a target
    the trainer calibrates σ for the planned steps with the chosen accountant.
    """

    noise_multiplier: float | None = field(default=None, metadata={"help": "σ: noise std is σ·C."})
    target_epsilon: float | None = field(default=None, metadata={"help": "Calibrate σ to reach this ε."})
    delta: float | None = field(default=None, metadata={"help": "δ; default 1/(10·N); must be < 1/N."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "C: per-example clipping norm."})
    accountant: str = field(default="prv", metadata={"help": "prv or rdp (opacus accountants)."})
    clipping: str = field(default="flat", metadata={"help": "flat, per-layer, adaptive or noise-allocation."})
    target_unclipped_quantile: float = field(default=0.5, metadata={"help": "adaptive: quantile γ of norms to track."})
    clipbound_learning_rate: float = field(default=0.2, metadata={"help": "adaptive: geometric step η_C."})
    unclipped_num_std: float | None = field(
        default=None, metadata={"help": "adaptive: σ_b of the clipped-count noise; default max(q·N/20, σ)."}
    )
    grad_sample_mode: str = field(default="hooks", metadata={"help": "opacus per-example gradients: hooks or functorch."})
    insecure_reproducible_noise: bool = field(
        default=False,
        metadata={
            "help": "Derive the Poisson sampling and the noise from `seed` (bit-identical reruns) instead of a "
            "secret CSPRNG seed. Voids the DP guarantee: anyone with the data and the card can replay the run."
        },
    )

    def __post_init__(self) -> None:
        problems: list[str] = []
        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            problems.append("give exactly one of `noise_multiplier` and `target_epsilon`")
        _positive(problems, "noise_multiplier", self.noise_multiplier)
        _positive(problems, "target_epsilon", self.target_epsilon)
        _positive(problems, "max_grad_norm", self.max_grad_norm)
        _positive(problems, "unclipped_num_std", self.unclipped_num_std)
        _positive(problems, "clipbound_learning_rate", self.clipbound_learning_rate)
        if self.delta is not None and not 0 < self.delta < 1:
            problems.append(f"`delta` must be in (0, 1), got {self.delta}")
        if not 0 < self.target_unclipped_quantile < 1:
            problems.append(f"`target_unclipped_quantile` must be in (0, 1), got {self.target_unclipped_quantile}")
        _one_of(problems, "accountant", self.accountant, ACCOUNTANTS)
        _one_of(problems, "clipping", self.clipping, CLIPPING_MODES)
        _one_of(problems, "grad_sample_mode", self.grad_sample_mode, GRAD_SAMPLE_MODES)
        _raise_all(problems)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (saved whole in the card as ``hyperparameters``)."""

    method: str = field(default="lora", metadata={"help": "lora, dora, dylora or full."})
    rank: int = field(default=8, metadata={"help": "LoRA rank r (dylora: the maximum rank)."})
    alpha: float = field(default=16.0, metadata={"help": "LoRA α; scaling is α/r."})
    dropout: float = field(default=0.0, metadata={"help": "LoRA dropout."})
    target_modules: tuple[str, ...] | None = field(
        default=None, metadata={"help": "Module names to adapt; default per architecture."}
    )
    epochs: float = field(default=3.0, metadata={"help": "Passes over the training set (expected, under Poisson)."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many optimizer steps."})
    batch_size: int = field(default=16, metadata={"help": "Logical (expected, under Poisson) batch size."})
    physical_batch_size: int | None = field(default=None, metadata={"help": "Largest forward batch; default batch_size."})
    lr: float = field(default=2e-3, metadata={"help": "Learning rate."})
    optimizer: str = field(default="adam", metadata={"help": "sgd or adam."})
    max_length: int = field(default=256, metadata={"help": "Tokens per example (longer ones are cut)."})
    seed: int = field(
        default=0,
        metadata={"help": "Seeds the split, init, canaries and non-DP shuffling; DP sampling and noise stay secret."},
    )
    sampler: str | None = field(default=None, metadata={"help": "poisson or shuffle; default poisson with DP."})
    member_fraction: float = field(default=0.5, metadata={"help": "Share of the data file that becomes members."})
    canary_inclusion: float | None = field(default=None, metadata={"help": "Insert each canary record with this probability."})
    canary_repeats: tuple[int, ...] | None = field(default=None, metadata={"help": "Canary groups inserted this many times."})
    gradient_canaries: int = field(default=0, metadata={"help": "White-box Dirac canaries (DP only)."})
    checkpoint_every: int = field(default=100, metadata={"help": "Steps between checkpoints; 0 disables."})
    device: str = field(default="auto", metadata={"help": "auto (where the base was loaded), cpu, cuda or cuda:N."})
    dp: DPConfig | None = field(default=None, metadata={"help": "DP-SGD settings; None trains without DP."})
    # Test hook: multiplies the DP noise actually added while the ledger keeps the configured σ.
    # Anything but 1.0 is a deliberately broken trainer (see tests/train/test_gradient_canaries.py).
    _noise_scale: float = field(default=1.0, repr=False)

    def __post_init__(self) -> None:
        problems: list[str] = []
        _one_of(problems, "method", self.method, METHODS)
        _one_of(problems, "optimizer", self.optimizer, OPTIMIZERS)
        try:
            Placement(device=self.device)
        except ConfigError as exc:
            problems.append(str(exc))
        if self.sampler is not None:
            _one_of(problems, "sampler", self.sampler, SAMPLERS)
        for name in ("rank", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                problems.append(f"`{name}` must be >= 1, got {getattr(self, name)}")
        for name in ("physical_batch_size", "max_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"`{name}` must be >= 1, got {value}")
        _positive(problems, "alpha", self.alpha)
        _positive(problems, "lr", self.lr)
        _positive(problems, "epochs", self.epochs)
        if not math.isfinite(self.epochs):
            problems.append(f"`epochs` must be finite, got {self.epochs}")
        if not 0 <= self.dropout < 1:
            problems.append(f"`dropout` must be in [0, 1), got {self.dropout}")
        if not 0 < self.member_fraction < 1:
            problems.append(f"`member_fraction` must be in (0, 1), got {self.member_fraction}")
        if self.canary_inclusion is not None and not 0 < self.canary_inclusion <= 1:
            problems.append(f"`canary_inclusion` must be in (0, 1], got {self.canary_inclusion}")
        if self.canary_repeats is not None:
            if not self.canary_repeats or any(r < 1 for r in self.canary_repeats):
                problems.append(f"`canary_repeats` must be positive integers, got {list(self.canary_repeats)}")
            if self.canary_inclusion is not None:
                problems.append("give at most one of `canary_inclusion` and `canary_repeats`")
        if self.gradient_canaries < 0:
            problems.append(f"`gradient_canaries` must be >= 0, got {self.gradient_canaries}")
        if self.checkpoint_every < 0:
            problems.append(f"`checkpoint_every` must be >= 0, got {self.checkpoint_every}")
        _positive(problems, "_noise_scale", self._noise_scale)
        if self.dp is not None:
            if self.sampler not in (None, "poisson"):
                problems.append(
                    f"`sampler` {self.sampler!r} is refused with DP: the accountant's ε assumes Poisson sampling"
                )
            if self.gradient_canaries and self.dp.clipping != "flat":
                problems.append(f"`gradient_canaries` need `clipping` 'flat', got {self.dp.clipping!r}")
        elif self.gradient_canaries:
            problems.append("`gradient_canaries` need DP (they audit DP-SGD itself)")
        _raise_all(problems)

    @property
    def resolved_sampler(self) -> str:
        return self.sampler or ("poisson" if self.dp is not None else "shuffle")

    @property
    def resolved_physical_batch_size(self) -> int:
        return self.physical_batch_size or self.batch_size

    def to_dict(self) -> dict:
        """Plain JSON-able dict (tuples become lists; the test hook appears only when used)."""
        out = asdict(self)
        if self._noise_scale == 1.0:
            out.pop("_noise_scale")
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Inverse of :meth:`to_dict` (used by ``--resume`` to compare configs)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
        values = dict(data)
        for key in ("target_modules", "canary_repeats"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        if values.get("dp") is not None:
            values["dp"] = DPConfig(**values["dp"])
        return cls(**values)
