"""The Flower apps: a ``ClientApp`` that trains one client, a ``ServerApp`` whose strategy does the rest.

Both read the run's ``plan.json`` (see :mod:`dpaudit.federated.plan`); messages carry the adapter
as one flat float32 array down, the (compressed) update and plain-number metrics up.

- :class:`DPFedAvg` is Flower's ``FedAvg`` with its sampling and aggregation replaced by
  :class:`~dpaudit.federated.rounds.Server`: Poisson client sampling (Flower samples a fixed
  number, which the central accountant does not cover), clipping and noise per mode, a fixed
  denominator in ``central`` mode, the quorum rule and the round log. Flower's own DP wrappers
  (``DifferentialPrivacyServerSideFixedClipping``) divide by the realised number of replies and
  sample a fixed number of clients, so they fit none of the three modes' accountants.
- ``client_app`` / ``server_app`` are what ``flwr run`` loads in a real deployment (the work
  directory comes from the run config key ``work-dir``); :func:`run_simulation` runs the same
  apps in Flower's simulation engine with the clients as virtual clients on the local cores.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import sample_nodes

from dpaudit.federated.plan import STATE_KEY, FedPlan
from dpaudit.federated.rounds import ClientReply, Log, Server
from dpaudit.interrupts import Interrupted
from dpaudit.scale.tasks import init_ray

WORK_DIR_KEY = "work-dir"  # run config key naming the directory that holds plan.json
_CLIENT_CACHE: dict[str, tuple[FedPlan, Any, dict[str, Any]]] = {}


def client_resources(work_dir: str) -> tuple[FedPlan, Any, dict[str, Any]]:
    """(plan, loaded base, records by id), loaded once per process (a virtual client's actor)."""
    if work_dir not in _CLIENT_CACHE:
        import torch

        from dpaudit.data.loaders import load_records
        from dpaudit.models.base import load_base

        plan = FedPlan.load(work_dir)
        torch.set_num_threads(plan.config.threads_per_client)
        records = {r.id: r for r in load_records(plan.data_file, format=plan.data_format)}
        _CLIENT_CACHE[work_dir] = (plan, load_base(plan.base, show_progress=False), records)
    return _CLIENT_CACHE[work_dir]


def _work_dir(context: Context, default: str | None) -> str:
    value = context.run_config.get(WORK_DIR_KEY, default)
    if not value:
        raise ValueError(f"no run config '{WORK_DIR_KEY}': pass --run-config \"{WORK_DIR_KEY}='DIR'\"")
    return str(value)


def make_client_app(work_dir: str | None = None) -> ClientApp:
    """A ``ClientApp`` whose node trains the client named by its ``partition-id`` (0-based)."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        from dpaudit.federated.rounds import train_client

        plan, base, records = client_resources(_work_dir(context, work_dir))
        client = plan.client_ids[int(context.node_config["partition-id"])]
        reply = train_client(
            plan=plan,
            client=client,
            round_index=int(msg.content["config"]["server-round"]) - 1,
            global_flat=msg.content["arrays"][STATE_KEY].numpy(),
            records=[records[i] for i in plan.clients[client]],
            base_model=base.model,
            tokenizer=base.tokenizer,
        )
        arrays = ArrayRecord(array_dict={k: Array(v) for k, v in reply.payload.items()})
        metrics = MetricRecord({**reply.metrics, "client-index": plan.client_ids.index(client)})
        return Message(content=RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=msg)

    return app


class DPFedAvg(FedAvg):
    """FedAvg whose sampling and aggregation are :class:`~dpaudit.federated.rounds.Server`'s."""

    def __init__(self, server: Server) -> None:
        super().__init__(fraction_train=1.0, fraction_evaluate=0.0, min_available_nodes=len(server.plan.client_ids))
        self.server = server
        self.sampled: dict[int, int] = {}

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        nodes, _ = sample_nodes(grid, self.min_available_nodes, self.min_available_nodes)
        chosen = set(self.server.sample(server_round - 1))
        # Nodes are matched to clients by position; the client itself names its partition in the reply.
        node_ids = [n for n, cid in zip(sorted(nodes), self.server.plan.client_ids) if cid in chosen]
        self.sampled[server_round] = len(node_ids)
        config["server-round"] = server_round
        record = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: config})
        return self._construct_messages(record, node_ids, "train")

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        ok, failures = [], []
        ids = self.server.plan.client_ids
        for msg in replies:
            if msg.has_error():
                failures.append(f"node {msg.metadata.src_node_id}: {msg.error.reason}")
                continue
            metrics = dict(msg.content["metrics"])
            payload = {k: v.numpy() for k, v in msg.content["arrays"].items()}
            ok.append(ClientReply(client=ids[int(metrics.pop("client-index"))], payload=payload, metrics=metrics))
        state = self.server.aggregate(server_round - 1, sampled=self.sampled[server_round], replies=ok, failures=failures)
        return ArrayRecord(array_dict={STATE_KEY: Array(state)}), MetricRecord({"clients": len(ok)})

    def summary(self) -> None:
        """Flower logs this at start; the round log is ours."""


def make_server_app(work_dir: str | None = None, *, log: Log | None = None) -> ServerApp:
    """A ``ServerApp`` that runs the plan's rounds and writes the adapter and card to the plan's ``out``."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        from safetensors.numpy import load_file

        from dpaudit.federated.card import write_federated_adapter
        from dpaudit.federated.plan import INITIAL_FILE

        start = time.perf_counter()
        directory = _work_dir(context, work_dir)
        plan = FedPlan.load(directory)
        initial = load_file(str(Path(directory) / INITIAL_FILE))[STATE_KEY]
        server = Server(plan=plan, state=initial, log=log)
        DPFedAvg(server).start(grid=grid, initial_arrays=ArrayRecord(array_dict={STATE_KEY: Array(initial)}),
                               num_rounds=plan.config.rounds)
        write_federated_adapter(plan, server, wall_time_s=time.perf_counter() - start)

    return app


client_app = make_client_app()
server_app = make_server_app()


def run_simulation(plan: FedPlan, *, log: Log | None = None) -> None:
    """Run the apps in Flower's simulation engine (Ray): K virtual clients, ``cores ÷ threads`` at a time.

    Ray is started here rather than by Flower (which then reuses it and shuts it down at the end),
    so that SIGTERM keeps the CLI's meaning (see :func:`dpaudit.scale.tasks.init_ray`).
    """
    import ray
    from flwr.simulation import run_simulation as flower_simulation

    config = plan.config
    # Flower's own log (deprecation notes, "evaluation skipped") and Ray's device tip are noise here:
    # the round log is ours. Errors still show.
    logging.getLogger("flwr").setLevel(logging.ERROR)
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    if not ray.is_initialized():
        init_ray(ray, num_cpus=config.cores, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    try:
        flower_simulation(
            server_app=make_server_app(plan.work_dir, log=log),
            client_app=make_client_app(plan.work_dir),
            num_supernodes=config.clients,
            backend_config={"client_resources": {"num_cpus": config.threads_per_client, "num_gpus": 0.0}},
        )
    except Interrupted:
        # Flower's threads now log the death of every actor; the CLI's one line says all there is.
        logging.getLogger("flwr").setLevel(logging.CRITICAL + 1)
        raise
