"""Per-module noise allocation for DP-SGD: each module's share of the privacy budget follows its gradient.

Registered as the clipping mode ``noise-allocation`` (``DPConfig(clipping="noise-allocation")``).
A *module* here is one trainable tensor (a LoRA layer's A and B are two modules; so is a DoRA
magnitude vector). With M modules, total clipping norm C and noise multiplier σ:

- each per-example gradient block g_i^m is clipped to C_m = C/√M (as in per-layer clipping), so
  the whole per-example gradient has norm ≤ C;
- module m gets a budget share b_m > 0 (Σ_m b_m = 1) and its clipped sum S_m = Σ_i ĝ_i^m is
  released with Gaussian noise of std σ_m = σ·C_m/√b_m;
- the shares follow the modules' clipped-gradient norms: b_m = (1 − λ)·n_m/Σ_k n_k + λ/M, where
  n_m is an exponential average of √max(‖y_m‖² − d_m σ_m², 0), an unbiased-in-square estimate of
  ‖S_m‖ from the *released* noisy sums y_m of earlier steps (d_m: the module's size). Modules whose
  gradients carry more signal get less noise; λ keeps every share away from 0. The first step
  uses b_m = 1/M, which is exactly per-layer clipping (σ_m = σ·C for every module).

**Privacy: one Gaussian mechanism with the combined sensitivity, the same ε as flat DP-SGD.**
Fix one step and its shares b (they depend only on earlier released outputs, so by adaptive
composition they may be treated as constants). The step releases y = (S_m + Z_m)_m with independent
Z_m ~ N(0, σ_m² I). Scale each block: x_m = (σC/σ_m)·y_m = S'_m + Z'_m, where
S'_m = (σC/σ_m)·S_m and Z'_m ~ N(0, σ²C² I) for every m. Adding or removing one example changes
S by one clipped gradient ĝ with ‖ĝ^m‖ ≤ C_m, hence changes S' by a vector of squared norm

    Σ_m (σC/σ_m)² ‖ĝ^m‖² ≤ σ²C² · Σ_m (C_m/σ_m)² = σ²C² · Σ_m b_m/σ² = C²,

i.e. the combined L2 sensitivity is C. So x is the sum of per-example contributions of norm ≤ C
plus N(0, σ²C² I): exactly the flat DP-SGD step with noise multiplier σ, and under Poisson sampling
with rate q exactly the sampled Gaussian mechanism the accountant composes. y is an invertible
linear function of x (y_m = (σ_m/σC)·x_m), so releasing y costs nothing more (post-processing).
The ledger therefore records the same ``PoissonSampledGaussian(σ, q)`` per step as flat clipping,
and ε is unchanged. More generally any (C_m, σ_m) with Σ_m (C_m/σ_m)² ≤ 1/σ² is covered; the
allocation above meets it with equality. The tests check the identity, that uniform shares give
flat's noise std in every module, that the realised noise std of each module is its σ_m, and that
a trained card reports the flat run's ε.
"""

from __future__ import annotations

import math

import torch
from opacus.optimizers import DPPerLayerOptimizer
from opacus.optimizers.optimizer import _check_processed_flag, _generate_noise, _mark_as_processed
from opacus.optimizers.utils import params as optimizer_params
from torch.optim import Optimizer

from dpaudit.train.dp import CLIPPING, _DPStepMixin

UNIFORM_MIX = 0.25  # λ: share of the budget always spread evenly (keeps every σ_m finite)
NORM_AVERAGING = 0.2  # weight of the newest step in the running estimate of each module's norm


class _AllocatedNoiseOptimizer(DPPerLayerOptimizer):
    """Per-module clipping to C/√M and per-module noise σ_m = σ·C_m/√b_m (see the module docstring)."""

    def __init__(self, optimizer: Optimizer, *, noise_multiplier: float, max_grad_norm: float,
                 expected_batch_size: float | None, **kwargs) -> None:
        count = len(optimizer_params(optimizer))
        super().__init__(optimizer, noise_multiplier=noise_multiplier,
                         max_grad_norm=[float(max_grad_norm) / math.sqrt(count)] * count,
                         expected_batch_size=expected_batch_size, **kwargs)
        self.shares = torch.full((count,), 1.0 / count, dtype=torch.float64)
        self.signal_norms: torch.Tensor | None = None

    def noise_stds(self) -> list[float]:
        """σ_m = σ·C_m/√b_m for each module (parameter tensor), in the optimizer's parameter order."""
        sigma = float(self.noise_multiplier)
        return [sigma * clip / math.sqrt(float(share)) for clip, share in zip(self.max_grad_norms, self.shares)]

    def add_noise(self) -> None:
        stds = self.noise_stds()
        for p, std in zip(self.params, stds):
            _check_processed_flag(p.summed_grad)
            noise = _generate_noise(std=std, reference=p.summed_grad, generator=self.generator, secure_mode=self.secure_mode)
            p.grad = (p.summed_grad + noise).view_as(p)
            _mark_as_processed(p.summed_grad)
        self._reallocate(stds)

    def _reallocate(self, stds: list[float]) -> None:
        """Next step's shares from this step's *released* sums (post-processing: no privacy cost)."""
        estimates = torch.tensor(
            [max(float(p.grad.detach().double().pow(2).sum()) - p.numel() * std**2, 0.0) ** 0.5
             for p, std in zip(self.params, stds)],
            dtype=torch.float64,
        )
        if self.signal_norms is None:
            self.signal_norms = estimates
        else:
            self.signal_norms = (1 - NORM_AVERAGING) * self.signal_norms + NORM_AVERAGING * estimates
        total = float(self.signal_norms.sum())
        count = len(self.params)
        follow = self.signal_norms / total if total > 0 else torch.full((count,), 1.0 / count, dtype=torch.float64)
        self.shares = (1 - UNIFORM_MIX) * follow + UNIFORM_MIX / count


@CLIPPING.register("noise-allocation")
class NoiseAllocationDPOptimizer(_DPStepMixin, _AllocatedNoiseOptimizer):
    """Per-module noise allocation accounted as one Gaussian mechanism (proof in the module docstring)."""

    def expected_noise_std(self) -> float:
        """The root-mean-square noise std over all coordinates (what the first-step check measures)."""
        stds = self.noise_stds()
        sizes = [p.numel() for p in self.params]
        return math.sqrt(sum(d * s**2 for d, s in zip(sizes, stds)) / sum(sizes))
