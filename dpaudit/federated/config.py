"""What a federated run is asked to do: :class:`FedConfig` (one frozen dataclass, as for ``train``).

The client's local training is a whole :class:`~dpaudit.train.config.TrainConfig` (``train``):
its ``epochs``/``max_steps`` are the local epochs/steps of one round, its ``seed`` seeds the run.
Values that depend on the data (δ, σ, each client's batch size) are resolved by
:func:`dpaudit.federated.plan.resolve_plan` and recorded in the card.

>>> FedConfig(clients=4, rounds=3, dp="central", target_epsilon=8.0).sample_rate
1.0
>>> FedConfig(clients=4, dp="central")
Traceback (most recent call last):
...
dpaudit.errors.ConfigError: `dp` 'central' needs exactly one of `noise_multiplier` and `target_epsilon`
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from dpaudit.errors import ConfigError
from dpaudit.train.config import ACCOUNTANTS, DPConfig, TrainConfig

DP_MODES = ("none", "local", "central", "record")
PARTITIONS = ("iid", "category", "dirichlet", "file")
BACKENDS = ("simulation", "plain", "deployment")
FED_METHODS = ("lora", "dora", "dylora")


@dataclass(frozen=True)
class FedConfig:
    """A DP-FedLoRA run: clients, rounds, the DP mode, bandwidth, and the local training."""

    clients: int = field(default=8, metadata={"help": "K: clients holding the members."})
    rounds: int = field(default=10, metadata={"help": "R: communication rounds."})
    clients_per_round: float | None = field(
        default=None, metadata={"help": "M: expected clients per round (Poisson rate M/K); default all K."}
    )
    client_rate: float | None = field(default=None, metadata={"help": "q: each client's chance to join a round."})
    partition: str = field(default="iid", metadata={"help": "iid, category, dirichlet, or file (--clients-file)."})
    dirichlet_alpha: float = field(default=0.5, metadata={"help": "Dirichlet concentration (smaller: more skew)."})
    categories_per_client: int = field(default=2, metadata={"help": "category: categories each client holds."})
    dp: str = field(default="none", metadata={"help": "none, local (DP-FedLoRA), central (DP-FedAvg) or record (DP-SGD)."})
    noise_multiplier: float | None = field(default=None, metadata={"help": "σ: noise std σ·C."})
    target_epsilon: float | None = field(default=None, metadata={"help": "Calibrate σ to reach this ε."})
    delta: float | None = field(default=None, metadata={"help": "δ; default 1/(10·N) with N the member records."})
    max_grad_norm: float = field(
        default=1.0, metadata={"help": "C: clip norm of a client's update (local, central) or of each example's gradient (record)."}
    )
    accountant: str = field(default="prv", metadata={"help": "prv or rdp."})
    bandwidth: int | None = field(default=None, metadata={"help": "Bytes per client upload per round; default unlimited."})
    quorum: float = field(default=0.5, metadata={"help": "Stop when fewer than this share of a round's clients reply."})
    backend: str = field(
        default="simulation",
        metadata={"help": "simulation (Flower), plain (an in-process loop), or deployment (prepare for `flwr run`)."},
    )
    cores: int = field(default=2, metadata={"help": "CPU cores the simulation may use."})
    threads_per_client: int = field(default=1, metadata={"help": "torch threads per virtual client."})
    insecure_reproducible_noise: bool = field(
        default=False,
        metadata={"help": "Derive the DP noise and client sampling from the seed (tests only: voids the guarantee)."},
    )
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=1.0), metadata={"help": "Local training."})

    def __post_init__(self) -> None:
        problems: list[str] = []
        for name in ("clients", "rounds", "cores", "threads_per_client", "categories_per_client"):
            if getattr(self, name) < 1:
                problems.append(f"`{name}` must be >= 1, got {getattr(self, name)}")
        for name, allowed in (("dp", DP_MODES), ("partition", PARTITIONS), ("backend", BACKENDS), ("accountant", ACCOUNTANTS)):
            if getattr(self, name) not in allowed:
                problems.append(f"`{name}` must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.train.method not in FED_METHODS:
            problems.append(f"`method` must be one of {', '.join(FED_METHODS)} for federated training, got {self.train.method!r}")
        if self.train.dp is not None:
            problems.append("give the DP settings on FedConfig (`dp`, `noise_multiplier`, ...), not on `train`")
        if self.threads_per_client > self.cores:  # Ray runs ⌊cores ÷ threads⌋ virtual clients at a time
            problems.append(f"`threads_per_client` ({self.threads_per_client}) must be <= `cores` ({self.cores})")
        if self.clients_per_round is not None and self.client_rate is not None:
            problems.append("give at most one of `clients_per_round` and `client_rate`")
        if self.clients_per_round is not None and not 0 < self.clients_per_round <= self.clients:
            problems.append(f"`clients_per_round` must be in (0, clients={self.clients}], got {self.clients_per_round}")
        if self.client_rate is not None and not 0 < self.client_rate <= 1:
            problems.append(f"`client_rate` must be in (0, 1], got {self.client_rate}")
        if self.dirichlet_alpha <= 0:
            problems.append(f"`dirichlet_alpha` must be > 0, got {self.dirichlet_alpha}")
        if self.max_grad_norm <= 0:
            problems.append(f"`max_grad_norm` must be > 0, got {self.max_grad_norm}")
        if self.delta is not None and not 0 < self.delta < 1:
            problems.append(f"`delta` must be in (0, 1), got {self.delta}")
        if self.bandwidth is not None and self.bandwidth < 1:
            problems.append(f"`bandwidth` must be >= 1 byte, got {self.bandwidth}")
        if not 0 < self.quorum <= 1:
            problems.append(f"`quorum` must be in (0, 1], got {self.quorum}")
        if self.dp == "none":
            given = [n for n in ("noise_multiplier", "target_epsilon", "delta") if getattr(self, n) is not None]
            given += ["insecure_reproducible_noise"] if self.insecure_reproducible_noise else []
            if given:
                problems.append(f"{', '.join(f'`{n}`' for n in given)} need `dp` local, central or record")
        elif (self.noise_multiplier is None) == (self.target_epsilon is None):
            problems.append(f"`dp` {self.dp!r} needs exactly one of `noise_multiplier` and `target_epsilon`")
        for name in ("noise_multiplier", "target_epsilon"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                problems.append(f"`{name}` must be > 0, got {value}")
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def sample_rate(self) -> float:
        """q: each client's chance of joining a round (M/K, or ``client_rate``; 1 by default)."""
        if self.client_rate is not None:
            return float(self.client_rate)
        if self.clients_per_round is not None:
            return float(self.clients_per_round) / self.clients
        return 1.0

    @property
    def expected_clients_per_round(self) -> float:
        """M = q·K: the fixed denominator of the central mode's noisy average."""
        return self.sample_rate * self.clients

    @property
    def unit(self) -> str | None:
        """What the DP guarantee protects: a ``record``, a ``client``, or nothing."""
        return {"none": None, "record": "record"}.get(self.dp, "client")

    def record_dp(self, noise_multiplier: float, delta: float) -> DPConfig:
        """The DP-SGD settings a client trains with in ``record`` mode (σ resolved by the plan)."""
        return DPConfig(noise_multiplier=noise_multiplier, delta=delta, max_grad_norm=self.max_grad_norm,
                        accountant=self.accountant, insecure_reproducible_noise=self.insecure_reproducible_noise)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["train"] = self.train.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FedConfig:
        values = dict(data)
        values["train"] = TrainConfig.from_dict(values["train"])
        return cls(**values)
