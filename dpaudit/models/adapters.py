"""Load any PEFT adapter directory onto its base, and stack more adapters on the same base.

An adapter directory is what ``PeftModel.save_pretrained`` writes: ``adapter_config.json`` plus
``adapter_model.safetensors`` (or, from old peft versions, ``adapter_model.bin``). Adapters made
by dpaudit also carry a training card, ``dpaudit.json``.

The base is, in order: the ``base`` argument (``--base``), the card's ``base``, the config's
``base_model_name_or_path``, else ``tiny``.

Weights are never unpickled: safetensors, or ``torch.load(weights_only=True)`` for a legacy
``.bin`` (which refuses anything that is not plain tensors). Before any weight is copied, every
tensor is checked against the shape the base expects, so an adapter trained on another base
fails with the name of the first tensor that does not fit.

A fully fine-tuned model written by ``dpaudit train --method full`` (a Hugging Face model directory
with the card, ``method`` "full") loads through the same :func:`load_adapter`: the model comes back
with a ``disable_adapter()`` that swaps its base's weights in, so that every "score under the base"
path (``ref``, RMIA, base perplexity and adherence, PII extraction on the base) works unchanged.
It cannot carry shadow adapters.

Shadow models share one frozen base in memory::

    loaded = load_adapter("runs/target")                 # adapter "default"
    attach_adapter(loaded, "runs/shadow-0", "shadow-0")  # same PeftModel, second adapter
    use_adapter(loaded, "shadow-0")                      # forward passes now use shadow-0
"""

from __future__ import annotations

import contextlib
import json
import pickle
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpaudit.errors import InputError, MissingFileError
from dpaudit.io import read_json_object, sha256_file
from dpaudit.models.base import DEFAULT_SPEC, LoadedBase, load_base
from dpaudit.scale.device import Placement, ResolvedPlacement

CONFIG_FILE = "adapter_config.json"
SAFETENSORS_FILE = "adapter_model.safetensors"
MODEL_CONFIG_FILE = "config.json"  # a whole model (``train --method full``)
MODEL_WEIGHTS_FILE = "model.safetensors"
MODEL_INDEX_FILE = "model.safetensors.index.json"  # a sharded whole model
LEGACY_FILE = "adapter_model.bin"
CARD_FILE = "dpaudit.json"
DEFAULT_ADAPTER = "default"

_TRAIN_HINT = "train one with `dpaudit train` (or point at a directory written by peft's save_pretrained)"


@dataclass(eq=False)
class LoadedAdapter:
    """A PeftModel over ``base.model``; ``adapters`` maps every loaded adapter name to its directory."""

    model: Any  # peft.PeftModel
    tokenizer: Any
    base: LoadedBase
    path: Path
    card: dict | None
    adapters: dict[str, Path] = field(default_factory=dict)

    @property
    def active(self) -> str:
        active = self.model.active_adapter
        return active if isinstance(active, str) else active[0]


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def read_card(path: str | Path) -> dict | None:
    """The dpaudit training card (``<adapter>/dpaudit.json``), or None for adapters made elsewhere."""
    card_path = Path(path) / CARD_FILE
    if not card_path.is_file():
        return None
    return read_json_object(card_path)


def is_full_model_dir(path: str | Path) -> bool:
    """A model fully fine-tuned by dpaudit: ``config.json``, no ``adapter_config.json``, a card saying ``full``."""
    path = Path(path)
    return (path.is_dir() and not (path / CONFIG_FILE).is_file() and (path / MODEL_CONFIG_FILE).is_file()
            and (read_card(path) or {}).get("method") == "full")


def check_model_dir(path: str | Path) -> None:
    """Fail early, with a clear message, on anything but an adapter or a dpaudit full-model directory."""
    if not is_full_model_dir(path):
        read_adapter_config(path)


def adapter_weights_file(path: str | Path) -> Path:
    """``adapter_model.safetensors``, else the legacy ``adapter_model.bin`` (for a full model:
    ``model.safetensors`` or its shard index); MissingFileError if none."""
    path = _adapter_dir(path)
    names = (MODEL_WEIGHTS_FILE, MODEL_INDEX_FILE) if is_full_model_dir(path) else (SAFETENSORS_FILE, LEGACY_FILE)
    for name in names:
        if (path / name).is_file():
            return path / name
    raise MissingFileError(f"{path}: no {SAFETENSORS_FILE} (or legacy {LEGACY_FILE}) in this adapter directory; {_TRAIN_HINT}")


def adapter_sha256(path: str | Path) -> str:
    """sha256 of the adapter's weights file (identifies the exact adapter in reports)."""
    return sha256_file(adapter_weights_file(path))


def adapter_base_spec(path: str | Path, *, base: str | None = None, card: dict | None = None) -> str:
    """The base an adapter goes on: ``base`` override, else card ``base``, else ``base_model_name_or_path``, else tiny."""
    if base:
        return base
    card = card if card is not None else read_card(path)
    if card and isinstance(card.get("base"), str) and card["base"]:
        return card["base"]
    raw = _read_config_json(_adapter_dir(path))
    declared = raw.get("base_model_name_or_path")
    if isinstance(declared, str) and declared:
        return declared
    return DEFAULT_SPEC


def load_adapter(
    path: str | Path,
    *,
    base: str | LoadedBase | None = None,
    adapter_name: str = DEFAULT_ADAPTER,
    placement: Placement | ResolvedPlacement | None = None,
) -> LoadedAdapter:
    """Load the adapter at ``path`` onto its base (see module docstring for how the base is chosen).

    ``base`` may also be an already loaded :class:`LoadedBase`; its model is then wrapped in
    place (its modules gain the adapter layers), so pass a base you do not need bare any more.
    The model comes back in eval mode with ``adapter_name`` active. ``placement`` is where a base
    loaded here goes (see :func:`dpaudit.models.base.load_base`); the adapter follows its base.
    """
    path = _adapter_dir(path)
    card = read_card(path)
    if is_full_model_dir(path):
        return _load_full_model(path, card=card, base=base, placement=placement)
    config = read_adapter_config(path)
    weights = read_adapter_weights(path)  # before the (possibly slow) base load: fail fast on bad files
    if isinstance(base, LoadedBase):
        loaded_base = base
    else:
        spec = adapter_base_spec(path, base=base, card=card)
        loaded_base = load_base(spec, placement=placement)
    _warn_if_other_base(path, config, card, loaded_base)

    from peft import MODEL_TYPE_TO_PEFT_MODEL_MAPPING, PeftModel

    peft_cls = MODEL_TYPE_TO_PEFT_MODEL_MAPPING.get(config.task_type, PeftModel)
    config.inference_mode = True
    try:
        with _quiet_peft():
            model = peft_cls(loaded_base.model, config, adapter_name)
    except (ValueError, KeyError, TypeError) as exc:
        raise _config_mismatch(path, config, exc) from exc
    try:
        _load_weights(model, adapter_name, weights, path=path)
    except BaseException:
        _unwrap(model)
        raise
    model.eval()
    return LoadedAdapter(
        model=model, tokenizer=loaded_base.tokenizer, base=loaded_base, path=path, card=card, adapters={adapter_name: path}
    )


def _load_full_model(path: Path, *, card: dict | None, base: str | LoadedBase | None,
                     placement: Placement | ResolvedPlacement | None) -> LoadedAdapter:
    """The fine-tuned model, with ``disable_adapter()`` swapping in its base's weights (see module doc)."""
    spec = adapter_base_spec(path, base=base if isinstance(base, str) else None, card=card)
    original = base if isinstance(base, LoadedBase) else load_base(spec, placement=placement)
    tuned = load_base(str(path), placement=placement)
    model = tuned.model
    model.disable_adapter = BaseWeights(model, original.model, path=path)
    model.eval()
    return LoadedAdapter(model=model, tokenizer=tuned.tokenizer, base=original, path=path, card=card,
                         adapters={DEFAULT_ADAPTER: path})


class BaseWeights:
    """``with model.disable_adapter():`` for a fully fine-tuned model: its parameters point at the
    base's tensors inside the block (no copy; the base model holds them), and back after it."""

    def __init__(self, model, base_model, *, path: Path) -> None:
        base = dict(base_model.named_parameters())
        self.pairs = []
        for name, param in model.named_parameters():
            other = base.get(name)
            if other is None or other.shape != param.shape:
                found = "missing" if other is None else f"shaped {tuple(other.shape)}"
                raise InputError(f"does not fit its base: {name} is {tuple(param.shape)} here, {found} in the base",
                                 path=path)
            self.pairs.append((param, other.data))

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        tuned = [param.data for param, _ in self.pairs]
        for param, base_data in self.pairs:
            param.data = base_data
        try:
            yield
        finally:
            for (param, _), data in zip(self.pairs, tuned):
                param.data = data


def attach_adapter(loaded: LoadedAdapter, path: str | Path, name: str) -> str:
    """Add the adapter at ``path`` to ``loaded.model`` under ``name`` (same frozen base, no copy).

    It is inactive until :func:`use_adapter`. Returns ``name``.
    """
    path = _adapter_dir(path)
    if name in loaded.model.peft_config:
        raise InputError(f"an adapter named {name!r} is already loaded (from {loaded.adapters.get(name)})", path=path)
    config = read_adapter_config(path)
    weights = read_adapter_weights(path)
    _warn_if_other_base(path, config, read_card(path), loaded.base)
    config.inference_mode = True
    try:
        with _quiet_peft():
            loaded.model.add_adapter(name, config)
    except (ValueError, KeyError, TypeError) as exc:
        _delete(loaded.model, name)
        raise _config_mismatch(path, config, exc) from exc
    try:
        _load_weights(loaded.model, name, weights, path=path)
    except BaseException:
        _delete(loaded.model, name)
        raise
    loaded.model.eval()
    loaded.adapters[name] = path
    return name


def use_adapter(loaded: LoadedAdapter, name: str) -> None:
    """Make ``name`` the adapter that forward passes use."""
    if name not in loaded.model.peft_config:
        raise InputError(f"no adapter named {name!r} is loaded; loaded: {', '.join(loaded.adapters)}")
    loaded.model.set_adapter(name)
    loaded.model.eval()


def detach_adapter(loaded: LoadedAdapter, name: str) -> None:
    """Free an attached adapter (never the active one)."""
    if name == loaded.active:
        raise InputError(f"adapter {name!r} is active; switch with use_adapter before removing it")
    _delete(loaded.model, name)
    loaded.adapters.pop(name, None)


def read_adapter_config(path: str | Path):
    """Parse and validate ``adapter_config.json`` into a peft config (errors name the file and field)."""
    from peft import PEFT_TYPE_TO_CONFIG_MAPPING

    path = _adapter_dir(path)
    config_path = path / CONFIG_FILE
    raw = _read_config_json(path)
    peft_type = raw.get("peft_type")
    if peft_type is None:
        raise InputError("missing; expected a peft type such as 'LORA'", path=config_path, field="peft_type")
    known = {str(getattr(k, "value", k)): v for k, v in PEFT_TYPE_TO_CONFIG_MAPPING.items()}
    if not isinstance(peft_type, str) or peft_type not in known:
        raise InputError(
            f"unknown peft type {peft_type!r}; peft knows {', '.join(sorted(known))}", path=config_path, field="peft_type"
        )
    _check_fields(raw, config_path)
    config_cls = known[peft_type]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unknown keys from newer peft versions are dropped with a warning
            config = config_cls.from_pretrained(str(path))
    except (TypeError, ValueError, KeyError) as exc:
        raise InputError(str(exc).splitlines()[0], path=config_path, field=_field_in(str(exc), raw)) from exc
    return config


def read_adapter_weights(path: str | Path) -> dict[str, Any]:
    """The adapter tensors on the CPU, without unpickling anything but plain tensors."""
    import torch

    weights_path = adapter_weights_file(path)
    if weights_path.name == SAFETENSORS_FILE:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(weights_path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise InputError(f"not a readable safetensors file ({exc})", path=weights_path) from exc
    else:
        try:
            state = torch.load(str(weights_path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise InputError(
                "refusing to unpickle: this legacy .bin holds more than plain tensors "
                f"(torch.load(weights_only=True) rejected it: {str(exc).splitlines()[0]})",
                path=weights_path,
            ) from exc
        except (RuntimeError, EOFError, OSError) as exc:
            raise InputError(f"not a readable torch checkpoint ({str(exc).splitlines()[0]})", path=weights_path) from exc
        if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
            raise InputError("expected a flat mapping of tensor names to tensors", path=weights_path)
    if not state:
        raise InputError("holds no tensors", path=weights_path)
    return state


# ----------------------------------------------------------------------------------------------
# Internals
# ----------------------------------------------------------------------------------------------


def _adapter_dir(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise MissingFileError(f"{path}: no such adapter directory; {_TRAIN_HINT}")
    if not path.is_dir():
        raise InputError(f"an adapter is a directory holding {CONFIG_FILE} and {SAFETENSORS_FILE}, not a file", path=path)
    if not (path / CONFIG_FILE).is_file() and not is_full_model_dir(path):
        raise MissingFileError(f"{path}: no {CONFIG_FILE}, so this is not a PEFT adapter directory; {_TRAIN_HINT}")
    return path


def _read_config_json(path: Path) -> dict[str, Any]:
    return read_json_object(path / CONFIG_FILE)


# Types of the fields most adapters carry; peft checks the rest (and its messages name the field).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "r": (int,),
    "lora_alpha": (int, float),
    "lora_dropout": (int, float),
    "target_modules": (str, list, type(None)),
    "modules_to_save": (list, type(None)),
    "base_model_name_or_path": (str, type(None)),
    "task_type": (str, type(None)),
    "fan_in_fan_out": (bool,),
    "use_dora": (bool,),
    "use_rslora": (bool,),
    "bias": (str,),
    "rank_pattern": (dict,),
    "alpha_pattern": (dict,),
}


def _check_fields(raw: dict[str, Any], config_path: Path) -> None:
    for name, types in _FIELD_TYPES.items():
        if name not in raw:
            continue
        value = raw[name]
        if isinstance(value, bool) and bool not in types:
            ok = False
        else:
            ok = isinstance(value, types)
        if not ok:
            expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise InputError(f"must be {expected}, got {json.dumps(value)}", path=config_path, field=name)
        if name == "r" and value <= 0:
            raise InputError(f"must be > 0, got {value}", path=config_path, field=name)
        if name == "target_modules" and isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise InputError("must be a list of module names (strings)", path=config_path, field=name)


def _field_in(message: str, raw: dict[str, Any]) -> str | None:
    """The config field a peft error message is about (the first key of the file it mentions)."""
    for key in sorted(raw, key=len, reverse=True):
        if key in message:
            return key
    return None


def _config_mismatch(path: Path, config, exc: BaseException) -> InputError:
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    field_name = "target_modules" if "target" in message.lower() else None
    return InputError(f"does not fit the base model: {message}", path=path / CONFIG_FILE, field=field_name)


def _load_weights(model, name: str, weights: dict[str, Any], *, path: Path) -> None:
    """Check every tensor against the shape the base expects, then copy them into adapter ``name``."""
    from peft.mapping import PEFT_TYPE_TO_PREFIX_MAPPING
    from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

    weights_path = adapter_weights_file(path)
    # save_embedding_layers=False: "auto" would look the base up on the hub just to compare vocab sizes
    expected = get_peft_model_state_dict(model, adapter_name=name, save_embedding_layers=False)
    for key, tensor in weights.items():
        want = expected.get(key)
        if want is not None and tuple(want.shape) != tuple(tensor.shape):
            raise InputError(
                f"tensor has shape {tuple(tensor.shape)} but the base model expects {tuple(want.shape)}: the adapter was "
                "trained on another base (pass the right one with --base)",
                path=weights_path,
                field=key,
            )
    try:
        result = set_peft_model_state_dict(model, weights, adapter_name=name)
    except RuntimeError as exc:  # a size mismatch the key-by-key check could not see (remapped keys)
        raise InputError(f"does not fit the base model: {_size_mismatch(str(exc))}", path=weights_path) from exc
    config = model.peft_config[name]
    prefix = PEFT_TYPE_TO_PREFIX_MAPPING.get(config.peft_type, "")
    missing = [k for k in getattr(result, "missing_keys", []) if prefix in k and name in k]
    unexpected = [k for k in getattr(result, "unexpected_keys", []) if prefix in k]
    if missing:
        raise InputError(
            f"{len(missing)} adapter tensor(s) the base expects are missing, first {missing[0]!r}: "
            "the adapter was saved for another architecture or is truncated",
            path=weights_path,
        )
    if unexpected:
        raise InputError(
            f"{len(unexpected)} tensor(s) match no module of the base model, first {unexpected[0]!r}: "
            "the adapter was trained on another base (pass the right one with --base)",
            path=weights_path,
            field=unexpected[0],
        )
    cast = getattr(model.base_model, "_cast_adapter_dtype", None)
    if cast is not None:
        cast(adapter_name=name, autocast_adapter_dtype=True)


def _size_mismatch(message: str) -> str:
    for line in message.splitlines():
        if "size mismatch" in line:
            return line.strip()
    return message.splitlines()[0] if message else "size mismatch"


def _warn_if_other_base(path: Path, config, card: dict | None, loaded_base: LoadedBase) -> None:
    """Warn when the adapter says it was trained on a different copy of its base (e.g. another tiny build)."""
    if card and isinstance(card.get("base_resolved"), str) and card.get("base") == loaded_base.spec:
        if card["base_resolved"] != loaded_base.resolved and Path(card["base_resolved"]).name != Path(loaded_base.resolved).name:
            warnings.warn(
                f"{path}: trained on {card['base_resolved']}, loading onto {loaded_base.resolved}; "
                "scores are only comparable on the same base build",
                stacklevel=3,
            )


@contextlib.contextmanager
def _quiet_peft() -> Iterator[None]:
    """Hide transformers' deprecation chatter that peft triggers when it wraps a model."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def _delete(model, name: str) -> None:
    if name in getattr(model, "peft_config", {}):
        try:
            model.delete_adapter(name)
        except (ValueError, KeyError, AttributeError):
            model.peft_config.pop(name, None)


def _unwrap(model) -> None:
    """Best effort: strip adapter layers from a base we wrapped, so a failed load leaves it usable."""
    try:
        model.base_model.unload()
    except Exception:  # noqa: BLE001 - the caller's error matters more than a failed cleanup
        pass
