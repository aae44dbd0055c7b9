"""One federated round, shared by the Flower apps and the plain loop: the client step and the server step.

Client (:func:`train_client`): put the global adapter on the base, run dpaudit's training loop
on the client's records (DP-SGD in ``record`` mode), take the update Δ = local − global; in
``local`` mode clip ‖Δ‖ to C and add N(0, σ²C²) *on the client*; then compress to the bandwidth.

Server (:class:`Server`): Poisson-sample clients, collect replies (a failed client is logged and
skipped; fewer replies than ``quorum`` × sampled stops the run), aggregate, and keep the ledger:

- ``none``: FedAvg, mean of Δ weighted by client size;
- ``local`` / ``record``: unweighted mean (a client's size is not released under DP);
- ``central``: each Δ clipped to C, N(0, σ²C²) added to the sum, divided by M = q·K (a fixed
  denominator: the realised number of clients is private under Poisson sampling). A round with
  no sampled client still adds the noise, as the accountant assumes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dpaudit.data.records import Record
from dpaudit.errors import DpauditError
from dpaudit.federated.compression import compress, decode_mode, decompress, payload_bytes
from dpaudit.federated.plan import FedPlan
from dpaudit.privacy.events import Composed, PoissonSampledGaussian, PrivacyLedger
from dpaudit.privacy.federated import central_events, local_events

Log = Callable[[str], None]


class QuorumError(DpauditError):
    """Too few clients replied in a round to continue."""


@dataclass(frozen=True)
class ClientReply:
    """What a client sends back: the (compressed) update and plain-number metrics."""

    client: str
    payload: dict[str, np.ndarray]
    metrics: dict[str, float]


def flatten_state(state: dict[str, torch.Tensor], names: Sequence[str]) -> np.ndarray:
    return np.concatenate([state[n].detach().float().reshape(-1).cpu().numpy() for n in names]).astype(np.float32)


def unflatten_state(flat: np.ndarray, names: Sequence[str], shapes: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
    out, start = {}, 0
    for name, shape in zip(names, shapes):
        size = int(np.prod(shape))
        out[name] = torch.from_numpy(np.array(flat[start : start + size], dtype=np.float32)).reshape(tuple(shape))
        start += size
    return out


def clip(vector: np.ndarray, max_norm: float) -> np.ndarray:
    """``vector`` scaled down to L2 norm ≤ ``max_norm`` (unchanged when already inside)."""
    norm = float(np.linalg.norm(vector))
    return vector if norm <= max_norm else (vector * (max_norm / norm)).astype(np.float32)


def gaussian(rng: np.random.Generator, size: int, std: float) -> np.ndarray:
    return rng.normal(0.0, std, size=size).astype(np.float32)


def train_client(
    *, plan: FedPlan, client: str, round_index: int, global_flat: np.ndarray, records: Sequence[Record], base_model, tokenizer
) -> ClientReply:
    """The client's round: local training from the global adapter, then the update as sent."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    from dpaudit.data.tokenize import encode_record
    from dpaudit.train.loop import plan_run, resolve_device, run_loop
    from dpaudit.train.methods import prepare_model

    config = plan.client_train_config(client, round_index)
    examples = [encode_record(r, tokenizer, max_length=config.max_length) for r in records]
    run_plan = plan_run(len(examples), config)
    device = resolve_device(config.device)
    original = next(base_model.parameters()).device
    prepared = prepare_model(base_model, config)
    try:
        set_peft_model_state_dict(prepared.model, unflatten_state(global_flat, plan.tensor_names, plan.tensor_shapes))
        prepared.model.to(device)
        outcome = run_loop(prepared, examples, pad_id=tokenizer.pad_token_id, config=config, plan=run_plan,
                           device=device, checkpoint_dir=None, resume=False, progress=False)
        local = flatten_state(get_peft_model_state_dict(prepared.model, save_embedding_layers=False), plan.tensor_names)
    finally:
        prepared.restore()
        base_model.to(original)
    update = local - global_flat
    # Under DP nothing computed from the records leaves the client un-noised: no loss, no update
    # norm, no record count (the round log and the card would publish them). The step count
    # follows from the plan; the realised noise std from the noise alone.
    metrics: dict[str, float] = {"steps": float(outcome.steps)}
    if plan.config.dp == "none":
        finite = [x for x in outcome.losses if math.isfinite(x)]
        metrics.update(update_norm=float(np.linalg.norm(update)), num_examples=float(len(records)),
                       loss=float(np.mean(finite)) if finite else float("nan"))
    if plan.config.dp == "local":
        std = plan.noise_multiplier * plan.config.max_grad_norm
        update = clip(update, plan.config.max_grad_norm) + gaussian(plan.rng(f"local-noise:{client}:{round_index}"), update.size, std)
    if outcome.realised_noise_std is not None:
        metrics["realised_noise_std"] = float(outcome.realised_noise_std)
    payload = compress(update, sizes=plan.sizes, budget=plan.config.bandwidth)
    metrics["bytes_sent"] = float(payload_bytes(payload))
    return ClientReply(client=client, payload=payload, metrics=metrics)


@dataclass
class Server:
    """The server's state across rounds: the global adapter (flat), the round log, the ledgers."""

    plan: FedPlan
    state: np.ndarray
    log: Log | None = None
    rounds: list[dict[str, Any]] = field(default_factory=list)
    rounds_joined: dict[str, int] = field(default_factory=dict)
    record_ledgers: dict[str, PrivacyLedger] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rounds_joined = {cid: 0 for cid in self.plan.client_ids}
        self.record_ledgers = {cid: PrivacyLedger() for cid in self.plan.client_ids}

    def sample(self, round_index: int) -> list[str]:
        """Poisson client sampling: each client joins independently with probability q."""
        q = self.plan.config.sample_rate
        if q >= 1.0:
            return self.plan.client_ids
        draws = self.plan.rng(f"clients:{round_index}").random(len(self.plan.client_ids))
        return [cid for cid, u in zip(self.plan.client_ids, draws) if u < q]

    def aggregate(self, round_index: int, *, sampled: int, replies: Sequence[ClientReply], failures: Sequence[str]) -> np.ndarray:
        """Fold one round's replies into the global adapter; returns the new flat state."""
        plan, config = self.plan, self.plan.config
        if sampled and len(replies) < config.quorum * sampled:
            raise QuorumError(
                f"round {round_index + 1}: only {len(replies)} of {sampled} sampled clients replied "
                f"(quorum {config.quorum:g}); failures: {'; '.join(failures) or 'none'}"
            )
        deltas = [decompress(r.payload, sizes=plan.sizes) for r in replies]
        zero = np.zeros_like(self.state)
        if config.dp == "central":
            total = sum((clip(d, config.max_grad_norm) for d in deltas), zero)
            noise = gaussian(plan.rng(f"central-noise:{round_index}"), zero.size, plan.noise_multiplier * config.max_grad_norm)
            step = (total + noise) / config.expected_clients_per_round
        elif not deltas:
            step = zero
        else:
            weights = np.array([r.metrics["num_examples"] if config.dp == "none" else 1.0 for r in replies])
            step = sum((w * d for w, d in zip(weights / weights.sum(), deltas)), zero)
        self.state = (self.state + step).astype(np.float32)
        self._account(replies)
        self._record(round_index, sampled=sampled, replies=replies, failures=failures)
        return self.state

    def _account(self, replies: Sequence[ClientReply]) -> None:
        for reply in replies:
            self.rounds_joined[reply.client] += 1
            if self.plan.config.dp == "record":
                q = self.plan.record_sample_rate(reply.client)
                event = PoissonSampledGaussian(self.plan.client_noise[reply.client], q)
                self.record_ledgers[reply.client].record(Composed(event, int(reply.metrics["steps"])))

    def _record(self, round_index: int, *, sampled: int, replies: Sequence[ClientReply], failures: Sequence[str]) -> None:
        state_bytes = int(self.state.nbytes)
        losses = [r.metrics["loss"] for r in replies if math.isfinite(r.metrics.get("loss", math.nan))]
        entry = {
            "round": round_index + 1,
            "sampled": sampled,
            "clients": [r.client for r in replies],
            "failures": list(failures),
            "bytes_sent": {r.client: int(r.metrics["bytes_sent"]) for r in replies},
            "bytes_received": {r.client: state_bytes for r in replies},
            "compression": sorted({decode_mode(r.payload) for r in replies}),
            "loss": float(np.mean(losses)) if losses else None,  # none under DP (see train_client)
            "update_norms": {r.client: r.metrics["update_norm"] for r in replies if "update_norm" in r.metrics},
        }
        self.rounds.append(entry)
        if self.log is not None:
            sent = sum(entry["bytes_sent"].values())
            loss = "-" if entry["loss"] is None else f"{entry['loss']:.4f}"
            failed = f", {len(failures)} failed" if failures else ""
            self.log(
                f"round {entry['round']}/{self.plan.config.rounds}: {len(replies)}/{sampled} clients{failed}, "
                f"loss {loss}, sent {sent} B ({'/'.join(entry['compression']) or '-'}), "
                f"received {state_bytes * len(replies)} B"
            )

    # -- guarantees -----------------------------------------------------------------------------

    def client_ledger(self, client: str | None = None) -> PrivacyLedger | None:
        """The client-level ledger: ``central`` for every client, ``local`` for one (default: the worst)."""
        config = self.plan.config
        if config.dp == "central":
            return PrivacyLedger(central_events(noise_multiplier=self.plan.noise_multiplier,
                                                sample_rate=config.sample_rate, rounds=len(self.rounds)))
        if config.dp == "local":
            joined = self.rounds_joined[client] if client else max(self.rounds_joined.values())
            return PrivacyLedger(local_events(noise_multiplier=self.plan.noise_multiplier, rounds_joined=joined))
        return None
