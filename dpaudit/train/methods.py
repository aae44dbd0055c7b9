"""Put the trainable part on a model: LoRA, DoRA, DyLoRA (LoRA + rank sampling) or full fine-tuning.

LoRA-family methods inject peft layers into the caller's base model *in place* and
:meth:`PreparedModel.restore` takes them out again without merging (peft's ``unload``), so the
caller's base is unchanged afterwards: the shadow-model attack trains many adapters one after
another on one frozen base in memory. Full fine-tuning trains a deep copy, for the same reason.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from dpaudit.errors import ConfigError
from dpaudit.train.config import TrainConfig

# Attention projections to adapt, per naming family, tried in order (LoRA paper: Wq and Wv).
DEFAULT_TARGETS: tuple[tuple[str, ...], ...] = (
    ("q_proj", "v_proj"),  # Llama, Mistral, Qwen, SmolLM, OPT
    ("query", "value"),  # BERT-style attention
    ("c_attn",),  # GPT-2 (fused qkv Conv1D)
    ("query_key_value",),  # GPT-NeoX, Falcon, BLOOM
)
OUTPUT_LAYER_NAMES = ("lm_head", "embed_out", "output")


def linear_module_names(model: nn.Module) -> set[str]:
    """Last name component of every linear-like leaf (``nn.Linear`` or transformers' ``Conv1D``)."""
    names = set()
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D":
            names.add(name.rsplit(".", 1)[-1])
    return names


def default_target_modules(model: nn.Module) -> tuple[str, ...]:
    """The attention projections for known architectures, else every linear layer but the output head."""
    present = linear_module_names(model)
    for family in DEFAULT_TARGETS:
        if set(family) <= present:
            return family
    fallback = tuple(sorted(present - set(OUTPUT_LAYER_NAMES)))
    if not fallback:
        raise ConfigError("the base model has no linear layers to adapt; pass `target_modules`")
    return fallback


@dataclass
class PreparedModel:
    """``model`` is what trains; ``trainable`` its trainable parameters by name (in a fixed order)."""

    model: nn.Module
    method: str
    trainable: dict[str, nn.Parameter]
    target_modules: tuple[str, ...] | None
    _restore: Callable[[], None] | None = field(default=None, repr=False)

    def restore(self) -> None:
        """Give the caller's base model back as it was (idempotent)."""
        if self._restore is not None:
            self._restore()
            self._restore = None


def prepare_model(base_model: nn.Module, config: TrainConfig) -> PreparedModel:
    """Wrap ``base_model`` for ``config.method``. Adapter init is seeded by ``config.seed``."""
    torch.manual_seed(config.seed)
    if config.method == "full":
        model = copy.deepcopy(base_model)
        for param in model.parameters():
            param.requires_grad_(True)
        model.train()
        trainable = {name: p for name, p in model.named_parameters()}
        return PreparedModel(model=model, method="full", trainable=trainable, target_modules=None)
    return _prepare_lora(base_model, config)


def inject_lora(base_model: nn.Module, lora_config) -> nn.Module:
    """peft's ``get_peft_model`` (in place on ``base_model``); undo with the result's ``unload()``."""
    from peft import get_peft_model

    with warnings.catch_warnings():  # peft reads a transformers property deprecated in v5; not ours to fix
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(base_model, lora_config)


def remove_lora(peft_model: nn.Module, base_model: nn.Module) -> None:
    """Take the LoRA layers out again without merging them (inverse of :func:`inject_lora`)."""
    peft_model.unload()
    if hasattr(base_model, "peft_config"):
        del base_model.peft_config


def _prepare_lora(base_model: nn.Module, config: TrainConfig) -> PreparedModel:
    from peft import LoraConfig

    targets = config.target_modules or default_target_modules(base_model)
    present = linear_module_names(base_model)
    missing = [t for t in targets if t not in present]
    if missing:
        raise ConfigError(
            f"`target_modules` {', '.join(missing)} not found in the base model; linear layers: {', '.join(sorted(present))}"
        )
    requires_grad = {name: p.requires_grad for name, p in base_model.named_parameters()}
    was_training = base_model.training
    lora_config = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(targets),
        use_dora=config.method == "dora",
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = inject_lora(base_model, lora_config)
    peft_model.train()
    trainable = {name: p for name, p in peft_model.named_parameters() if p.requires_grad}

    def restore() -> None:
        remove_lora(peft_model, base_model)
        for name, param in base_model.named_parameters():
            param.requires_grad_(requires_grad.get(name, False))
        base_model.train(was_training)

    return PreparedModel(
        model=peft_model, method=config.method, trainable=trainable, target_modules=tuple(targets), _restore=restore
    )
