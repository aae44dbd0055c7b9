"""The resolved run: who holds which records, δ, σ, each client's local training, the tensor layout.

:func:`resolve_plan` turns a :class:`~dpaudit.federated.config.FedConfig` and the data into a
:class:`FedPlan`, written as ``plan.json`` into the run's work directory. The Flower apps (in
simulation or in a real deployment) and the plain loop read only that file: messages between
server and clients carry arrays and metrics, never configuration.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from dpaudit.errors import ConfigError
from dpaudit.federated.config import FedConfig
from dpaudit.io import read_json_object, write_json_atomic
from dpaudit.privacy.accountants import calibrate_noise_multiplier
from dpaudit.privacy.federated import calibrate_central, calibrate_local
from dpaudit.train.config import TrainConfig
from dpaudit.train.loop import plan_run, stream_seed

PLAN_FILE = "plan.json"
INITIAL_FILE = "initial.safetensors"
ADAPTER_CONFIG_FILE = "adapter_config.json"
STATE_KEY = "state"  # the one flat float32 array that carries the adapter (initial file, messages)


@dataclass(frozen=True)
class FedPlan:
    """Everything the server and the clients need, resolved once (JSON-able, see :meth:`to_json`)."""

    config: FedConfig
    work_dir: str  # plan.json, the initial adapter and its peft config
    out: str  # where the server writes the final adapter and its card
    base: str
    base_resolved: str | None
    data_file: str
    data_format: str | None
    data_sha256: str
    clients: dict[str, list[str]]  # training client id -> its record ids (members), in order
    held_out: dict[str, list[str]]  # held-out client id -> its record ids (non-members)
    tensor_names: list[str]  # peft state-dict keys, in the order of the flat update vector
    tensor_shapes: list[list[int]]
    delta: float | None
    delta_rule: str | None
    noise_multiplier: float | None  # local / central: σ of the client-level mechanism
    client_noise: dict[str, float]  # record: each client's DP-SGD σ (calibrated for R rounds)
    client_batch_size: dict[str, int]
    progress: bool = True

    @property
    def client_ids(self) -> list[str]:
        return list(self.clients)

    @property
    def sizes(self) -> list[int]:
        return [int(np.prod(s)) for s in self.tensor_shapes]

    @property
    def n_members(self) -> int:
        return sum(len(ids) for ids in self.clients.values())

    def client_train_config(self, client: str, round_index: int) -> TrainConfig:
        """The local training of ``client`` in round ``round_index`` (0-based).

        The seed is ``seed + round·K + client index``: client 0 of round 0 trains with the run's
        own seed, so one client for one round is exactly ``dpaudit train``.
        """
        base = self.config.train
        index = self.client_ids.index(client)
        dp = None
        if self.config.dp == "record":
            dp = self.config.record_dp(self.client_noise[client], self.delta)
        return replace(
            base,
            seed=base.seed + round_index * self.config.clients + index,
            batch_size=self.client_batch_size[client],
            checkpoint_every=0,
            dp=dp,
        )

    def record_sample_rate(self, client: str) -> float:
        """q of ``client``'s DP-SGD in ``record`` mode (its expected batch ÷ its records)."""
        return plan_run(len(self.clients[client]), self.client_train_config(client, 0)).sample_rate

    def rng(self, stream: str) -> np.random.Generator:
        """The generator of a DP stream (client sampling, noise): secret under DP unless the insecure opt-in is set.

        The seed of a secret stream comes from the OS's CSPRNG and is never stored: replaying a run
        from its recorded ``--seed`` would reveal who was sampled and what noise was added.
        """
        if self.config.dp == "none" or self.config.insecure_reproducible_noise:
            return np.random.default_rng(stream_seed(self.config.train.seed, stream))
        return np.random.default_rng(secrets.randbits(128))

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["config"] = self.config.to_dict()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FedPlan:
        return cls(**{**data, "config": FedConfig.from_dict(data["config"])})

    def save(self) -> Path:
        return write_json_atomic(Path(self.work_dir) / PLAN_FILE, self.to_json())

    @classmethod
    def load(cls, work_dir: str | Path) -> FedPlan:
        return cls.from_json(read_json_object(Path(work_dir) / PLAN_FILE))


def initial_state_arrays(flat: np.ndarray) -> dict[str, np.ndarray]:
    """What ``initial.safetensors`` holds: the initial adapter as one flat array."""
    return {STATE_KEY: np.ascontiguousarray(flat, dtype=np.float32)}


def resolve_plan(
    config: FedConfig,
    *,
    clients: dict[str, list[str]],
    held_out: dict[str, list[str]],
    tensor_names: list[str],
    tensor_shapes: list[list[int]],
    work_dir: Path,
    out: Path,
    base: str,
    base_resolved: str | None,
    data_file: Path,
    data_format: str | None,
    data_sha256: str,
    progress: bool = True,
) -> FedPlan:
    """Resolve δ (default 1/(10·N), N the member records) and σ (from ``target_epsilon`` when given).

    ``central``: σ for R Poisson-sampled rounds at q = M/K. ``local``: σ for a client joining all
    R rounds. ``record``: each client's DP-SGD σ for R rounds of its local steps at its own q.
    """
    n = sum(len(ids) for ids in clients.values())
    sizes = {cid: len(ids) for cid, ids in clients.items()}
    batch = {cid: min(config.train.batch_size, size) for cid, size in sizes.items()}
    delta = rule = sigma = None
    client_noise: dict[str, float] = {}
    if config.dp != "none":
        if config.delta is None:
            delta, rule = 1.0 / (10 * n), f"1/(10·N) with N = {n} member records"
        elif config.delta >= 1.0 / n:
            raise ConfigError(f"`delta` ({config.delta:g}) must be < 1/N = {1.0 / n:g} (N = {n} member records)")
        else:
            delta, rule = config.delta, f"given; 1/N = {1.0 / n:.3g}"
    target, known = config.target_epsilon, config.noise_multiplier
    if config.dp == "central":
        sigma = known or calibrate_central(target_epsilon=target, sample_rate=config.sample_rate, rounds=config.rounds,
                                           delta=delta, accountant=config.accountant)
    elif config.dp == "local":
        sigma = known or calibrate_local(target_epsilon=target, rounds=config.rounds, delta=delta,
                                         accountant=config.accountant)
    elif config.dp == "record":
        calibrated: dict[tuple[float, int], float] = {}  # clients of equal size share (q, T) and so σ
        for cid, size in sizes.items():
            local = plan_run(size, replace(config.train, batch_size=batch[cid]))
            key = (local.sample_rate, local.steps * config.rounds)
            if known is None and key not in calibrated:
                calibrated[key] = calibrate_noise_multiplier(
                    target_epsilon=target, sample_rate=key[0], steps=key[1], delta=delta, accountant=config.accountant
                )
            client_noise[cid] = known or calibrated[key]
    return FedPlan(
        config=config, work_dir=str(work_dir), out=str(out), base=base, base_resolved=base_resolved,
        data_file=str(data_file), data_format=data_format, data_sha256=data_sha256, clients=clients,
        held_out=held_out, tensor_names=tensor_names, tensor_shapes=tensor_shapes, delta=delta, delta_rule=rule,
        noise_multiplier=sigma, client_noise=client_noise, client_batch_size=batch, progress=progress,
    )
