"""DP-FedLoRA: federated LoRA fine-tuning with differential privacy, on Flower (``dpaudit fedtrain``).

- :mod:`.config`: :class:`FedConfig`, the whole run in one frozen dataclass;
- :mod:`.partition`: members across clients (iid, category, dirichlet, or a clients file);
- :mod:`.plan`: the resolved run (δ, σ, clients, tensor layout), read by server and clients;
- :mod:`.rounds`: the client step (dpaudit's training loop, then clip/noise/compress) and the
  server step (Poisson sampling, aggregation per DP mode, quorum, round log, ledgers);
- :mod:`.compression`: the bandwidth rule (quantize, then sparsify; after noise);
- :mod:`.apps`: Flower ``ClientApp`` / ``ServerApp`` / strategy, and the simulation launcher;
- :mod:`.runner`: :func:`run_fedtrain` (the command) and :func:`run_plain` (the loop without Flower);
- :mod:`.card`: the adapter and its card (``federated`` section, per-unit guarantees).

Accounting lives in :mod:`dpaudit.privacy.federated`. Flower is imported only by :mod:`.apps`.
"""
