"""DyLoRA: each optimizer step trains a random rank-b prefix of the LoRA factors (b ≤ r).

How it is done: a forward pre-hook on every ``lora_B`` multiplies its input ``A x`` (shape
``(..., r)``) by the mask ``m_b = (r/b) · [1, …, 1, 0, …, 0]`` (b ones). So the layer computes
``(α/b) · B[:, :b] A[:b] x``, the truncated update with DyLoRA's α/b scaling, and

- rows ``b..r`` of A get exactly zero gradient (their output is multiplied by 0), and
- columns ``b..r`` of B get exactly zero gradient (their input is 0),

for per-example gradients too (opacus sees the masked input as ``lora_B``'s activation), so DP
clipping sees the truncated model's gradients. b is drawn uniformly from 1..r once per logical
step from its own seeded generator; it does not depend on the data, so it costs no privacy.
The saved adapter is a plain rank-r LoRA (at b = r the mask is all ones and scaling is α/r), which
any peft loader reads.
"""

from __future__ import annotations

import torch
from torch import nn


class RankSampler:
    """Installs the masks; :meth:`sample` picks the rank for the next step."""

    def __init__(self, model: nn.Module, *, rank: int, generator: torch.Generator) -> None:
        self.rank = rank
        self.generator = generator
        self.current = rank
        self._mask = torch.ones(rank)
        self._handles = []
        for name, module in model.named_modules():
            if name.endswith("lora_B.default") or (name.split(".")[-2:-1] == ["lora_B"]):
                self._handles.append(module.register_forward_pre_hook(self._hook))
        if not self._handles:
            raise ValueError("DyLoRA found no lora_B layers to truncate")

    def sample(self) -> int:
        """Draw b ∈ {1, …, r} uniformly for the next logical step and return it."""
        self.current = int(torch.randint(1, self.rank + 1, (1,), generator=self.generator))
        mask = torch.zeros(self.rank)
        mask[: self.current] = self.rank / self.current
        self._mask = mask
        return self.current

    def _hook(self, module: nn.Module, args: tuple) -> tuple:
        (x, *rest) = args
        return (x * self._mask.to(device=x.device, dtype=x.dtype), *rest)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
