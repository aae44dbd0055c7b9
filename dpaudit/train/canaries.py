"""Canaries in training: planted records (black-box audits) and Dirac gradient canaries (white-box).

Record canaries (``canaries.jsonl`` from ``dpaudit data synth --canaries K``):

- *inclusion* (one-run audits, Steinke et al. 2023): each canary record is inserted with
  probability p (seeded); the card stores the inclusion vector ``{id: bool}``.
- *repeats* (exposure, Carlini et al. 2019): the canaries are shuffled (seeded) and split into
  one group per entry of e.g. ``1,4,16``; a group's canaries are inserted that many times. The
  card stores ``{id: repeats}``. Under DP a record inserted k times is k examples: its own
  guarantee is the group-privacy one for k, not the per-example ε.

White-box gradient canaries (:class:`GradientCanaries`, DP only) audit DP-SGD itself: M random
coordinate directions u_j = s_j·e_{k_j} of the trainable parameter vector, each included with
probability 1/2. At every step each included canary is Poisson-sampled with the data's rate q
(with q = 1: every step) and then contributes the synthetic per-example gradient C·u_j, whose
norm is exactly C, to the clipped sum before the noise. The auditor's score is the descent of
the final weights along u_j, ``−u_j·(θ_T − θ_0)``: with SGD and q = 1 it is a sufficient
statistic (T·C·lr/B signal vs σC√T·lr/B noise), so the audit is as tight as the mechanism allows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from dpaudit.data.canaries import Canary
from dpaudit.data.records import Record
from dpaudit.errors import ConfigError


def insert_record_canaries(
    members: Sequence[Record],
    canaries: Sequence[Canary],
    *,
    inclusion: float | None = None,
    repeats: Sequence[int] | None = None,
    seed: int,
) -> tuple[list[Record], dict]:
    """The training records (members, then the inserted canary records) and the card's ``canaries`` entry."""
    if (inclusion is None) == (repeats is None):
        raise ConfigError("give exactly one of `canary_inclusion` and `canary_repeats`")
    rng = np.random.default_rng([seed, 0xCA7A])
    train = list(members)
    if inclusion is not None:
        included = {c.id: bool(rng.random() < inclusion) for c in canaries}
        train.extend(c.to_record() for c in canaries if included[c.id])
        return train, {"mode": "inclusion", "probability": inclusion, "inclusion": included}
    order = rng.permutation(len(canaries))
    counts: dict[str, int] = {}
    for group, count in zip(np.array_split(order, len(repeats)), repeats):
        for index in group:
            counts[canaries[int(index)].id] = int(count)
    for canary in canaries:
        train.extend([canary.to_record()] * counts[canary.id])
    return train, {"mode": "repeats", "groups": list(repeats), "repeats": counts}


class GradientCanaries:
    """M Dirac canaries over the flattened trainable parameters ``params`` (their order is fixed).

    ``coords`` (M,) flat indices, ``signs`` (M,) ±1, ``included`` (M,) bool; ``initial`` (M,)
    holds θ_0 at the coordinates. Randomness: directions and inclusion from ``seed``; the
    per-step Poisson participation from :attr:`generator` (checkpointed).
    """

    def __init__(self, params: Sequence[torch.Tensor], *, count: int, sample_rate: float, seed: int) -> None:
        sizes = torch.tensor([p.numel() for p in params])
        total = int(sizes.sum())
        if count > total:
            raise ConfigError(f"`gradient_canaries` ({count}) exceeds the number of trainable weights ({total})")
        setup = torch.Generator().manual_seed(seed)
        self.count = count
        self.sample_rate = sample_rate
        self.coords = torch.randperm(total, generator=setup)[:count]
        self.signs = torch.randint(0, 2, (count,), generator=setup).float() * 2 - 1
        self.included = torch.rand(count, generator=setup) < 0.5
        self.generator = torch.Generator().manual_seed(seed + 1)
        offsets = torch.cumsum(sizes, 0) - sizes
        self.param_index = torch.searchsorted(torch.cumsum(sizes, 0), self.coords, right=True)
        self.local_index = self.coords - offsets[self.param_index]
        self.initial = self.values(params)

    @property
    def ids(self) -> list[str]:
        return [f"gc{j:05d}" for j in range(self.count)]

    def values(self, params: Sequence[torch.Tensor]) -> torch.Tensor:
        """θ at the canary coordinates, shape (M,), on the CPU."""
        out = torch.empty(self.count)
        for i, p in enumerate(params):
            sel = self.param_index == i
            if sel.any():
                out[sel] = p.detach().reshape(-1)[self.local_index[sel].to(p.device)].float().cpu()
        return out

    def add_to_summed_grads(self, params: Sequence[torch.Tensor], *, clip_norm: float) -> None:
        """Add C·u_j to the clipped sums (``p.summed_grad``) for each included canary sampled this step."""
        sampled = torch.rand(self.count, generator=self.generator) < self.sample_rate
        active = sampled & self.included
        for i, p in enumerate(params):
            sel = active & (self.param_index == i)
            if not sel.any():
                continue
            flat = p.summed_grad.reshape(-1)
            index = self.local_index[sel].to(flat.device)
            flat.index_add_(0, index, (clip_norm * self.signs[sel]).to(device=flat.device, dtype=flat.dtype))
            p.summed_grad = flat.view_as(p.summed_grad)

    def scores(self, params: Sequence[torch.Tensor]) -> np.ndarray:
        """Descent along each direction, −u_j·(θ_T − θ_0), shape (M,); higher = more likely included."""
        return (-(self.signs * (self.values(params) - self.initial))).double().numpy()

    def card_entry(self) -> dict:
        return {
            "count": self.count,
            "sample_rate": self.sample_rate,
            "inclusion": {i: bool(m) for i, m in zip(self.ids, self.included.tolist())},
            "scores_file": "gradient_canary_scores.csv",
        }
