"""The federated adapter as written by the server: a standard PEFT adapter and a training card.

The card has every key of ``dpaudit train``'s card (so ``attack``, ``audit``, ``compare`` and
``gate`` read it unchanged) plus ``federated``: the mode, the protected unit and against whom,
each client's record ids (and the held-out clients'), the rounds each client joined, bytes per
round, and ``guarantees`` — a ``dp``-shaped section per unit (``record``, ``client``; null where
the mode promises nothing for that unit). ``dp`` is the record-level one, as for ``train``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from dpaudit.federated.compression import MODES
from dpaudit.federated.plan import ADAPTER_CONFIG_FILE, FedPlan
from dpaudit.federated.rounds import Server, unflatten_state
from dpaudit.io import atomic_dir, write_json_atomic
from dpaudit.privacy.comparator import INSECURE_RANDOMNESS
from dpaudit.privacy.events import PrivacyLedger
from dpaudit.train.card import CARD_FILE, MEMBERS_FILE, NONMEMBERS_FILE, build_card

ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"

#: What each mode protects, against whom, and what its accountant assumes (README's table says the same).
GUARANTEES: dict[str, dict[str, str | None]] = {
    "none": {"unit": None, "against": None, "assumes": "no DP: no guarantee (ε = ∞)"},
    "local": {
        "unit": "client",
        "against": "the server (and so anyone who sees the released adapter)",
        "assumes": "Gaussian mechanism per round the client joined (sensitivity C: its clipped update vs none), "
        "composed over those rounds; no credit for client sampling",
    },
    "central": {
        "unit": "client",
        "against": "anyone who sees the released adapter (the server sees raw updates)",
        "assumes": "Poisson client sampling with q = M/K, each update clipped to C, noise σC on the sum, R rounds; "
        "a trusted server",
    },
    "record": {
        "unit": "record",
        "against": "the server (and so anyone who sees the released adapter)",
        "assumes": "each client's DP-SGD: Poisson-sampled Gaussian steps over its own records, composed over the "
        "rounds it joined; ε of the worst client",
    },
}


def _dp_section(plan: FedPlan, ledger: PrivacyLedger, *, unit: str, noise_multiplier: float, sample_rate: float,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    config = plan.config
    return {
        "unit": unit,
        "against": GUARANTEES[config.dp]["against"],
        "noise_multiplier": noise_multiplier,
        "max_grad_norm": config.max_grad_norm,
        "sample_rate": sample_rate,
        "steps": ledger.steps,
        "delta": plan.delta,
        "delta_rule": plan.delta_rule,
        "accountant": config.accountant,
        "epsilon": ledger.epsilon(plan.delta, accountant=config.accountant),
        "target_epsilon": config.target_epsilon,
        "clipping": "flat",
        "sampler": "poisson",
        "randomness": INSECURE_RANDOMNESS if config.insecure_reproducible_noise else "secure",
        "events": ledger.to_json(),
        **(extra or {}),
    }


def guarantees(plan: FedPlan, server: Server) -> tuple[dict[str, Any] | None, dict[str, Any] | None, dict[str, float]]:
    """(record-level dp section, client-level dp section, ε per client) of a finished run."""
    config = plan.config
    per_client: dict[str, float] = {}
    if config.dp in ("central", "local"):
        rate = config.sample_rate if config.dp == "central" else 1.0
        if config.dp == "local":
            per_client = {c: server.client_ledger(c).epsilon(plan.delta, accountant=config.accountant) for c in plan.client_ids}
        client = _dp_section(plan, server.client_ledger(), unit="client", noise_multiplier=plan.noise_multiplier,
                             sample_rate=rate)
        # A record belongs to one client: changing it changes one client's data, so the client-level bound covers it.
        return {**client, "unit": "record", "implied_by": "client"}, client, per_client
    if config.dp == "record":
        per_client = {c: server.record_ledgers[c].epsilon(plan.delta, accountant=config.accountant) for c in plan.client_ids}
        worst = max(per_client, key=per_client.get)
        record = _dp_section(plan, server.record_ledgers[worst], unit="record",
                             noise_multiplier=plan.client_noise[worst], sample_rate=plan.record_sample_rate(worst),
                             extra={"worst_client": worst, "n": len(plan.clients[worst])})
        return record, None, per_client
    return None, None, per_client


def write_federated_adapter(plan: FedPlan, server: Server, *, wall_time_s: float) -> dict[str, Any]:
    """Write the final adapter, id lists and card into ``plan.out`` atomically; returns the card."""
    from safetensors.torch import save_file

    from dpaudit.data.splits import write_id_list

    config = plan.config
    record_dp, client_dp, per_client = guarantees(plan, server)
    sent = sum(sum(r["bytes_sent"].values()) for r in server.rounds)
    received = sum(sum(r["bytes_received"].values()) for r in server.rounds)
    losses = [r["loss"] for r in server.rounds if r["loss"] is not None]
    federated = {
        "mode": config.dp,
        **GUARANTEES[config.dp],
        "backend": config.backend,
        "clients": plan.clients,
        "held_out_clients": plan.held_out,
        "partition": config.partition,
        "rounds": config.rounds,
        "sample_rate": config.sample_rate,
        "clients_per_round": config.expected_clients_per_round,
        "rounds_joined": server.rounds_joined,
        "epsilon_per_client": per_client or None,
        "guarantees": {"record": record_dp, "client": client_dp},
        "bandwidth": config.bandwidth,
        "compression_rule": " → ".join(MODES) + " (first that fits; after clipping and noise)",
        "bytes_sent": sent,
        "bytes_received": received,
        "log": server.rounds,
    }
    hyper = config.train.to_dict()
    card = build_card(
        base=plan.base,
        base_resolved=plan.base_resolved,
        data_file=plan.data_file,
        data_sha256=plan.data_sha256,
        has_nonmembers=True,
        method=config.train.method,
        hyperparameters={**hyper, "federated": {k: v for k, v in config.to_dict().items() if k != "train"}},
        dp=record_dp,
        canaries=None,
        gradient_canaries=None,
        training={
            "n_members": plan.n_members,
            "n_train_examples": plan.n_members,
            "steps": config.rounds,
            "rounds": config.rounds,
            "first_loss": losses[0] if losses else None,
            "final_loss": float(np.mean(losses[-1:])) if losses else None,
        },
        seed=config.train.seed,
        wall_time_s=wall_time_s,
    )
    card["federated"] = federated
    state = unflatten_state(server.state, plan.tensor_names, plan.tensor_shapes)
    with atomic_dir(plan.out) as tmp:
        shutil.copyfile(Path(plan.work_dir) / ADAPTER_CONFIG_FILE, tmp / ADAPTER_CONFIG_FILE)
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / ADAPTER_WEIGHTS_FILE), metadata={"format": "pt"})
        write_id_list(tmp / MEMBERS_FILE, [i for ids in plan.clients.values() for i in ids])
        write_id_list(tmp / NONMEMBERS_FILE, [i for ids in plan.held_out.values() for i in ids])
        write_json_atomic(tmp / CARD_FILE, card)
    return card
