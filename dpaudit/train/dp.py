"""DP-SGD on opacus: per-example gradients, clipping, noise, plus the runtime checks that fail loudly.

opacus does the work: :class:`~opacus.GradSampleModule` computes per-example gradients, its
``DPOptimizer`` family clips (flat, per-layer or adaptive), sums, adds N(0, σ²C²) and divides
by the *expected* batch size, :class:`~opacus.utils.batch_memory_manager.BatchMemoryManager`
splits a Poisson-sampled logical batch into memory-bounded physical batches. What is added here:

- the optimizer classes share :class:`_DPStepMixin`, which (1) adds white-box gradient canaries
  to the clipped sum before the noise, (2) measures the realised noise std on the first step and
  raises :class:`TrainingSanityError` if it is not σ·C, and (3) honours the ``_noise_scale`` test
  hook that breaks the trainer on purpose;
- adaptive clipping (Andrew et al. 2021) fixes two accounting gaps of opacus 1.6's
  ``AdaClipDPOptimizer`` (see :class:`AdaptiveClipDPOptimizer`);
- DoRA: peft's magnitude layer takes other modules as keyword arguments, which neither opacus's
  hooks nor its functorch fallback can call, so it gets its own grad sampler
  (:func:`compute_dora_magnitude_grad_sample`), validated against a per-example loop in the tests.
"""

from __future__ import annotations

import math
import weakref

import torch
from opacus import GradSampleModule
from opacus.grad_sample.utils import register_grad_sampler
from opacus.optimizers import AdaClipDPOptimizer, DPOptimizer, DPPerLayerOptimizer
from opacus.optimizers.optimizer import _mark_as_processed
from peft.tuners.lora.dora import DoraLinearLayer
from peft.utils.other import transpose
from torch import nn

from dpaudit.errors import DpauditError
from dpaudit.registry import Registry
from dpaudit.train.config import DPConfig


class TrainingSanityError(DpauditError):
    """A runtime check of the trainer failed: the run would report a guarantee it does not have."""


# --------------------------------------------------------------------------- sanity checks

NOISE_STD_SIGMAS = 6.0  # tolerance of the first-step noise check, in standard errors of the sample std
NOISE_STD_MIN_TOLERANCE = 0.05  # never tighter than ±5 %


def check_noise_std(noise: torch.Tensor, *, expected_std: float) -> float:
    """Raise unless the empirical std of ``noise`` (all coordinates of one step) is ``expected_std``.

    The d coordinates are i.i.d. N(0, s²), so the sample std has relative standard error
    1/√(2d); the check allows ``NOISE_STD_SIGMAS`` of those (at least 5 %). Costs one pass over
    the adapter parameters, once per run. Returns the realised std.
    """
    d = noise.numel()
    realised = float(noise.double().pow(2).mean().sqrt())
    tolerance = max(NOISE_STD_SIGMAS / math.sqrt(2 * d), NOISE_STD_MIN_TOLERANCE)
    if not abs(realised / expected_std - 1) <= tolerance:
        raise TrainingSanityError(
            f"realised DP noise std {realised:.4g} over {d} coordinates differs from σ·C = {expected_std:.4g} "
            f"by more than {tolerance:.0%}; the reported ε would be wrong"
        )
    return realised


def check_grad_sample_shapes(params: list[nn.Parameter], *, batch_size: int) -> None:
    """Every trainable parameter got a per-example gradient of shape (batch, *param.shape)."""
    for i, p in enumerate(params):
        gs = getattr(p, "grad_sample", None)
        if gs is None:
            raise TrainingSanityError(
                f"trainable parameter #{i} {tuple(p.shape)} got no per-example gradient: opacus hooks are not "
                "attached to the module that owns it (was the model moved or re-wrapped after make_private?)"
            )
        shape = tuple((gs if isinstance(gs, torch.Tensor) else gs[-1]).shape)
        if shape != (batch_size, *p.shape):
            raise TrainingSanityError(
                f"per-example gradient of parameter #{i} has shape {shape}, expected {(batch_size, *p.shape)}"
            )


def check_weights_changed(named_params: dict[str, nn.Parameter], before: dict[str, torch.Tensor]) -> None:
    """The parameters the *model* uses moved after the first step (the opacus+peft pitfall trains a copy)."""
    if all(torch.equal(named_params[name].detach().cpu(), value) for name, value in before.items()):
        raise TrainingSanityError(
            "no trainable weight changed after the first optimizer step: the optimizer is not updating the "
            "parameters the model uses (e.g. the model was moved to a device after wrapping)"
        )


# --------------------------------------------------------------------------- DoRA grad sampler


class DPDoraLinearLayer(DoraLinearLayer):
    """peft's DoRA magnitude layer, made opacus-compatible (instances are re-classed in place).

    peft computes the (detached) weight norm through ``lora_B(lora_A(eye))``, i.e. extra *module
    calls*: opacus would record them as forward passes that never get a backward and its
    per-example gradients for A and B would silently break. The same product is computed here
    from the weights directly; it only feeds the detached norm, so gradients are unchanged.
    """

    def get_lora_weight(self, lora_A, lora_B, adapter_name=None):  # noqa: N803 (peft's names)
        with torch.no_grad():
            return lora_B.weight @ lora_A.weight


@register_grad_sampler(DPDoraLinearLayer)
def compute_dora_magnitude_grad_sample(
    layer: DPDoraLinearLayer, activations: list[torch.Tensor], backprops: torch.Tensor
) -> dict[nn.Parameter, torch.Tensor]:
    """Per-example gradient of the DoRA magnitude m, shape (n, out).

    The layer returns ``(m/‖W + sBA‖ − 1) ⊙ Wx + (m/‖W + sBA‖) ⊙ s·BAx`` with the norm detached
    (DoRA §4.3), so ∂out_t/∂m = (Wx_t + s·BAx_t)/‖W + sBA‖ and the gradient of example i is
    Σ_t backprop_{i,t} ⊙ (Wx_{i,t} + s·BAx_{i,t})/‖W + sBA‖. ``x`` is the layer's input as opacus
    recorded it (after LoRA dropout, exactly what the forward used).
    """
    parent = layer._dpaudit_parent()
    x = activations[0].to(backprops.dtype)
    with torch.no_grad():
        weight = transpose(parent.get_base_layer().weight, layer.fan_in_fan_out).to(x.dtype)
        lora_a = parent.lora_A[layer._dpaudit_adapter].weight
        lora_b = parent.lora_B[layer._dpaudit_adapter].weight
        scaling = parent.scaling[layer._dpaudit_adapter]
        norm = torch.linalg.norm(weight + scaling * (lora_b @ lora_a), dim=1)
        direction = (x @ weight.T + scaling * (x @ lora_a.T) @ lora_b.T) / norm
        grad = torch.einsum("n...o,n...o->no", backprops, direction)
    return {layer.weight: grad}


def make_dora_private(model: nn.Module) -> int:
    """Re-class every DoRA magnitude layer of ``model`` to :class:`DPDoraLinearLayer`; returns the count."""
    count = 0
    for module in model.modules():
        magnitudes = getattr(module, "lora_magnitude_vector", None)
        if not magnitudes:
            continue
        for adapter, layer in magnitudes.items():
            if type(layer) is not DoraLinearLayer:
                raise DpauditError(f"DP for DoRA supports linear layers only, got {type(layer).__name__}")
            layer.__class__ = DPDoraLinearLayer
            # object.__setattr__: a plain attribute, not a registered submodule (no cycle in the module tree).
            object.__setattr__(layer, "_dpaudit_parent", weakref.ref(module))
            object.__setattr__(layer, "_dpaudit_adapter", adapter)
            count += 1
    return count


# --------------------------------------------------------------------------- optimizers


class _DPStepMixin:
    """Shared by every clipping mode: gradient canaries, the noise check, the broken-trainer hook.

    Set by :func:`make_private`: ``canaries`` (a
    :class:`~dpaudit.train.canaries.GradientCanaries` or None), ``noise_scale`` (1.0 unless a
    test breaks the trainer) and ``check_noise_next_step``.
    """

    canaries = None
    noise_scale = 1.0
    check_noise_next_step = True
    realised_noise_std: float | None = None

    def expected_noise_std(self) -> float:
        return float(self.noise_multiplier) * float(self.max_grad_norm)

    def clip_and_accumulate(self) -> None:
        if len(self.grad_samples[0]) == 0:  # an empty Poisson batch: nothing to clip, noise still added
            for p in self.params:
                if p.summed_grad is None:
                    p.summed_grad = torch.zeros_like(p)
                _mark_as_processed(p.grad_sample)
            return
        super().clip_and_accumulate()

    def add_noise(self) -> None:
        if self.canaries is not None:
            self.canaries.add_to_summed_grads(self.params, clip_norm=float(self.max_grad_norm))
        check = self.check_noise_next_step
        expected = self.expected_noise_std()
        summed = [p.summed_grad.detach().clone() for p in self.params] if check else None
        configured = self.noise_multiplier
        self.noise_multiplier = configured * self.noise_scale
        try:
            super().add_noise()
        finally:
            self.noise_multiplier = configured
        if check:
            noise = torch.cat([(p.grad - s.view_as(p)).reshape(-1) for p, s in zip(self.params, summed)])
            self.realised_noise_std = check_noise_std(noise, expected_std=expected)
            self.check_noise_next_step = False


class FlatDPOptimizer(_DPStepMixin, DPOptimizer):
    """One clipping norm C for the whole per-example gradient (the standard DP-SGD)."""


class PerLayerDPOptimizer(_DPStepMixin, DPPerLayerOptimizer):
    """Each parameter tensor clipped to C_l = C/√L, so the total per-example norm is ≤ C."""


class AdaptiveClipDPOptimizer(_DPStepMixin, AdaClipDPOptimizer):
    """Quantile-based adaptive clipping (Andrew et al. 2021) with its privacy cost accounted.

    Each step also releases the noisy fraction of examples whose norm was ≤ C and moves C
    geometrically towards the target quantile. By the paper's Theorem 1, releasing the count
    with noise σ_b and the gradient sum with noise σ_Δ·C is one Gaussian mechanism with
    σ = (σ_Δ⁻² + (2σ_b)⁻²)^(-1/2); opacus inverts this (gradient noise σ_Δ > σ), so the ledger
    records σ and the accountant's ε covers both releases. Two gaps of opacus 1.6 are closed here:

    1. Theorem 1 needs the released statistic to have sensitivity 1/2: Σ_i (b_i − 1/2). opacus
       noises Σ_i b_i (sensitivity 1 under add/remove), which costs more than accounted.
    2. The fraction is normalised by the expected batch size qN, not the realised one (which is
       private under Poisson sampling).

    It also keeps the counts across the physical batches of one logical batch (opacus resets
    them on every ``zero_grad``, including the skipped virtual steps).
    """

    def expected_noise_std(self) -> float:
        sigma, sigma_b = float(self.noise_multiplier), float(self.unclipped_num_std)
        return (sigma**-2 - (2 * sigma_b) ** -2) ** -0.5 * float(self.max_grad_norm)

    def zero_grad(self, set_to_none: bool = False) -> None:
        sample_size, unclipped_num = self.sample_size, self.unclipped_num
        skipped = self._is_last_step_skipped
        super().zero_grad(set_to_none)
        if skipped:
            self.sample_size, self.unclipped_num = sample_size, unclipped_num

    def add_noise(self) -> None:
        device = self.generator.device if self.generator is not None else None  # the count's noise comes from it
        self.unclipped_num = torch.as_tensor(self.unclipped_num, dtype=torch.float32, device=device) - self.sample_size / 2
        super().add_noise()  # opacus adds N(0, σ_b²) to the centred count

    def update_max_grad_norm(self) -> None:
        unclipped_frac = float(self.unclipped_num) / self.expected_batch_size + 0.5
        new = float(self.max_grad_norm) * math.exp(
            -self.clipbound_learning_rate * (unclipped_frac - self.target_unclipped_quantile)
        )
        self.max_grad_norm = min(max(new, self.min_clipbound), self.max_clipbound)


CLIPPING: Registry[type[DPOptimizer]] = Registry("clipping mode")
CLIPPING.register("flat")(FlatDPOptimizer)
CLIPPING.register("per-layer")(PerLayerDPOptimizer)
CLIPPING.register("adaptive")(AdaptiveClipDPOptimizer)
import dpaudit.train.noise_allocation  # noqa: E402,F401 - registers "noise-allocation" (it builds on the mixin above)


def default_unclipped_num_std(*, expected_batch_size: float, noise_multiplier: float) -> float:
    """σ_b = qN/20 as Andrew et al. recommend, raised to σ so that σ < 2σ_b (opacus requires it)."""
    return max(expected_batch_size / 20.0, noise_multiplier)


def make_private(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    dp: DPConfig,
    noise_multiplier: float,
    expected_batch_size: float,
    generator: torch.Generator,
    canaries=None,
    noise_scale: float = 1.0,
) -> tuple[GradSampleModule, DPOptimizer]:
    """Wrap ``model`` (already on its device) and ``optimizer`` for DP-SGD.

    Gradients of the backward pass must be of a *sum* of per-example losses; the optimizer
    divides the noisy sum by ``expected_batch_size`` (q·N), never by the realised batch size.
    """
    make_dora_private(model)
    gsm = GradSampleModule(
        model,
        batch_first=True,
        loss_reduction="sum",
        strict=False,  # modules without a grad sampler (e.g. RMSNorm in full fine-tuning) use functorch
        force_functorch=dp.grad_sample_mode == "functorch",
    )
    gsm.forbid_grad_accumulation()  # Poisson sampling: one backward per physical batch, then step
    params = [p for group in optimizer.param_groups for p in group["params"]]
    kwargs = dict(
        noise_multiplier=noise_multiplier,
        expected_batch_size=expected_batch_size,
        loss_reduction="mean",
        generator=generator,
    )
    cls = CLIPPING.get(dp.clipping)
    if dp.clipping == "per-layer":
        kwargs["max_grad_norm"] = [dp.max_grad_norm / math.sqrt(len(params))] * len(params)
    else:
        kwargs["max_grad_norm"] = dp.max_grad_norm
    if dp.clipping == "adaptive":
        kwargs.update(
            target_unclipped_quantile=dp.target_unclipped_quantile,
            clipbound_learning_rate=dp.clipbound_learning_rate,
            max_clipbound=dp.max_grad_norm * 1e3,
            min_clipbound=dp.max_grad_norm * 1e-3,
            unclipped_num_std=dp.unclipped_num_std
            or default_unclipped_num_std(expected_batch_size=expected_batch_size, noise_multiplier=noise_multiplier),
        )
    dp_optimizer = cls(optimizer, **kwargs)
    dp_optimizer.canaries = canaries
    dp_optimizer.noise_scale = noise_scale
    return gsm, dp_optimizer
