"""Client-level membership inference: did this client take part in federated training?

Given each client's records, the attacker aggregates its per-record membership scores (the mean
of any record-level attack's scores over the client's records: Kandpal et al. 2023 do the same
with the ``ref`` signal) and ranks clients by that mean. The metrics are the usual MIA metrics
over participating clients (label 1) versus held-out clients (label 0), so that the ε comparator
can set a client-level empirical bound beside a client-level accountant ε.

The clients come from the federated training card: ``federated.clients`` (members, by client)
and ``federated.held_out_clients`` (non-members, by client).

>>> import numpy as np
>>> ids, labels, scores = client_scores(ids=["a", "b", "c", "d"], scores=np.array([1.0, 3.0, 0.0, 1.0]),
...                                     clients={"c0": ["a", "b"]}, held_out={"h0": ["c", "d"]})
>>> ids, labels.tolist(), scores.tolist()
(['c0', 'h0'], [1, 0], [2.0, 0.5])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dpaudit.errors import ConfigError, InputError
from dpaudit.evaluators.mia_metrics import mia_metrics, worst_case

UNITS = ("record", "client")


def clients_of(card: Mapping[str, Any] | None) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(participating clients, held-out clients) from a federated card; InputError for any other adapter."""
    federated = (card or {}).get("federated")
    if not federated:
        raise InputError("`--unit client` needs a federated adapter (from `dpaudit fedtrain`): its card names the clients")
    return dict(federated["clients"]), dict(federated["held_out_clients"])


def client_scores(
    *, ids: Sequence[str], scores: np.ndarray, clients: Mapping[str, Sequence[str]], held_out: Mapping[str, Sequence[str]]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(client ids, labels (k,), mean score (k,)) over each client's scored records.

    Clients none of whose records were scored are left out; NaN record scores are ignored (a
    client whose every score is NaN gets NaN, which the metrics rank lowest).
    """
    position = {record_id: i for i, record_id in enumerate(ids)}
    names: list[str] = []
    labels: list[int] = []
    means: list[float] = []
    for label, group in ((1, clients), (0, held_out)):
        for client, record_ids in group.items():
            rows = [position[r] for r in record_ids if r in position]
            if not rows:
                continue
            values = np.asarray(scores, dtype=np.float64)[rows]
            finite = values[np.isfinite(values)]
            names.append(client)
            labels.append(label)
            means.append(float(finite.mean()) if finite.size else float("nan"))
    return names, np.asarray(labels, dtype=np.int8), np.asarray(means, dtype=np.float64)


def client_level_attacks(
    *, ids: Sequence[str], scores: Mapping[str, np.ndarray], card: Mapping[str, Any] | None, seed: int = 0
) -> dict[str, Any]:
    """Per attack, the MIA metrics of its client-level version; plus the worst case and the client scores.

    Returns ``{"attacks": {name: metrics}, "worst_case": name, "clients": [...], "labels": [...],
    "scores": {name: [...]}}`` (JSON-ready).
    """
    clients, held_out = clients_of(card)
    per_attack: dict[str, Any] = {}
    client_values: dict[str, list[float]] = {}
    names: list[str] = []
    labels = np.zeros(0, dtype=np.int8)
    for attack, values in scores.items():
        names, labels, means = client_scores(ids=ids, scores=np.asarray(values), clients=clients, held_out=held_out)
        per_attack[attack] = mia_metrics(scores=means, labels=labels, seed=seed)
        client_values[attack] = [float(v) for v in means]
    return {
        "attacks": per_attack,
        "worst_case": worst_case(per_attack),
        "clients": names,
        "labels": [int(v) for v in labels],
        "scores": client_values,
    }


def client_level_for(
    *, ids: Sequence[str], scores: Mapping[str, np.ndarray], card: Mapping[str, Any] | None, unit: str, seed: int = 0
) -> dict[str, Any] | None:
    """What ``attack``/``audit`` add: the client-level attack for a federated adapter, None for any other.

    ``unit="client"`` on an adapter that is not federated is an error (no clients to attack).
    """
    if unit not in UNITS:
        raise ConfigError(f"`unit` must be one of {', '.join(UNITS)}, got {unit!r}")
    if unit == "record" and not (card or {}).get("federated"):
        return None
    return client_level_attacks(ids=ids, scores=scores, card=card, seed=seed)
