"""The client and server steps: noise std per mode, clipping, bandwidth after noise, failures and quorum."""

from __future__ import annotations

import numpy as np
import pytest

from dpaudit.federated.compression import compress, decode_mode, decompress, payload_bytes
from dpaudit.federated.rounds import ClientReply, QuorumError, Server, train_client
from tests.federated.conftest import fed_config


def _reply(plan, client: str, update: np.ndarray) -> ClientReply:
    payload = compress(update, sizes=plan.sizes, budget=None)
    return ClientReply(client=client, payload=payload, metrics={"num_examples": 1.0, "loss": 1.0, "steps": 1.0,
                                                                 "update_norm": float(np.linalg.norm(update)),
                                                                 "bytes_sent": float(payload_bytes(payload))})


def _train(plan, initial, records_by_id, micro_base, client="c0", round_index=0):
    return train_client(plan=plan, client=client, round_index=round_index, global_flat=initial,
                        records=[records_by_id[i] for i in plan.clients[client]], base_model=micro_base.model,
                        tokenizer=micro_base.tokenizer)


def test_central_noise_on_the_aggregate_has_std_sigma_c(make_plan):
    plan, initial = make_plan(fed_config(dp="central", noise_multiplier=2.0, max_grad_norm=0.5, clients_per_round=2))
    server = Server(plan=plan, state=np.zeros_like(initial))
    zero = np.zeros_like(initial)
    step = server.aggregate(0, sampled=2, replies=[_reply(plan, "c0", zero), _reply(plan, "c1", zero)], failures=[])
    # The server divides the noisy sum by M = q·K = 2: the noise on the sum is (step · M).
    assert np.std(step * 2) == pytest.approx(2.0 * 0.5, rel=0.1)
    assert server.client_ledger().steps == 1


def test_central_clipping_bounds_each_clients_contribution(make_plan):
    plan, initial = make_plan(fed_config(dp="central", noise_multiplier=1e-9, max_grad_norm=0.5, clients_per_round=2))
    server = Server(plan=plan, state=np.zeros_like(initial))
    huge = np.full_like(initial, 100.0)
    step = server.aggregate(0, sampled=1, replies=[_reply(plan, "c0", huge)], failures=[])
    assert np.linalg.norm(step * 2) == pytest.approx(0.5, rel=1e-4)  # clipped to C, then / M


def test_local_noise_is_added_on_the_client_with_std_sigma_c(make_plan, fed_records, micro_base):
    sigma, clip_norm = 1.0, 1e-3
    plan, initial = make_plan(fed_config(dp="local", noise_multiplier=sigma, max_grad_norm=clip_norm))
    by_id = {r.id: r for r in fed_records}
    replies = [_train(plan, initial, by_id, micro_base, client=c) for c in plan.client_ids]
    sent = decompress(replies[0].payload, sizes=plan.sizes)
    assert np.std(sent) == pytest.approx(sigma * clip_norm, rel=0.1)  # clipped update ≤ C is ~C/√n per value
    assert set(replies[0].metrics) == {"steps", "bytes_sent"}  # nothing un-noised about the records leaves
    server = Server(plan=plan, state=initial.copy())
    state = server.aggregate(0, sampled=4, replies=replies, failures=[])
    # The unweighted mean of 4 independent noisy updates has std σC/2.
    assert np.std(state - initial) == pytest.approx(sigma * clip_norm / 2, rel=0.1)
    assert server.rounds_joined == {c: 1 for c in plan.client_ids}


def test_record_mode_trains_each_client_with_dp_sgd_noise_sigma_c(make_plan, fed_records, micro_base):
    plan, initial = make_plan(fed_config(dp="record", noise_multiplier=1.5, max_grad_norm=0.7))
    reply = _train(plan, initial, {r.id: r for r in fed_records}, micro_base)
    assert reply.metrics["realised_noise_std"] == pytest.approx(1.5 * 0.7, rel=0.1)
    server = Server(plan=plan, state=initial.copy())
    server.aggregate(0, sampled=1, replies=[reply], failures=[])
    assert server.record_ledgers["c0"].steps == int(reply.metrics["steps"]) > 0


def test_bandwidth_keeps_uploads_within_budget_and_compresses_after_the_noise(make_plan, fed_records, micro_base):
    by_id = {r.id: r for r in fed_records}
    common = dict(dp="local", noise_multiplier=1.0, max_grad_norm=0.01)
    plan, initial = make_plan(fed_config(**common))
    exact = decompress(_train(plan, initial, by_id, micro_base).payload, sizes=plan.sizes)
    budget = len(initial) + 200  # room for 8-bit values, not for float32
    plan_b, _ = make_plan(fed_config(**common, bandwidth=budget))
    reply = _train(plan_b, initial, by_id, micro_base)
    assert decode_mode(reply.payload) == "int8" and reply.metrics["bytes_sent"] <= budget
    quantized = decompress(reply.payload, sizes=plan.sizes)
    scale = np.repeat(reply.payload["scales"], plan.sizes)
    # The same noisy update, only quantized: compression saw the noise (post-processing).
    assert np.all(np.abs(quantized - exact) <= scale / 2 + 1e-7)
    assert np.std(quantized) == pytest.approx(0.01, rel=0.1)


def test_a_failing_client_is_reported_and_the_round_goes_on(make_plan, fed_records, micro_base, monkeypatch):
    from dpaudit.federated import runner

    real = runner.train_client

    def flaky(**kwargs):
        if kwargs["client"] == "c1":
            raise RuntimeError("disk full")
        return real(**kwargs)

    monkeypatch.setattr(runner, "train_client", flaky)
    plan, initial = make_plan(fed_config(rounds=1))
    server = runner.run_plain(plan, base_model=micro_base.model, tokenizer=micro_base.tokenizer,
                              records={r.id: r for r in fed_records}, initial=initial)
    (entry,) = server.rounds
    assert entry["clients"] == ["c0", "c2", "c3"]
    assert entry["failures"] == ["c1: RuntimeError: disk full"]
    plan_q, initial_q = make_plan(fed_config(rounds=1, quorum=1.0))
    with pytest.raises(QuorumError, match="only 3 of 4 sampled clients replied"):
        runner.run_plain(plan_q, base_model=micro_base.model, tokenizer=micro_base.tokenizer,
                         records={r.id: r for r in fed_records}, initial=initial_q)


def test_client_sampling_is_poisson_and_reproducible_only_with_the_opt_in(make_plan):
    plan, initial = make_plan(fed_config(clients_per_round=2, dp="central", noise_multiplier=1.0))
    server = Server(plan=plan, state=initial)
    draws = [server.sample(r) for r in range(200)]
    assert np.mean([len(d) for d in draws]) == pytest.approx(2.0, rel=0.15)
    assert [server.sample(r) for r in range(5)] == draws[:5]
    secret, _ = make_plan(fed_config(clients_per_round=2, dp="central", noise_multiplier=1.0,
                                     insecure_reproducible_noise=False))
    a = [Server(plan=secret, state=initial).sample(r) for r in range(40)]
    b = [Server(plan=secret, state=initial).sample(r) for r in range(40)]
    assert a != b
