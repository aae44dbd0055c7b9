"""Checkpoints for ``--resume``: tensors in safetensors, everything else in JSON.

A checkpoint is taken between logical steps and holds all the state that decides what
happens next: the trainable weights, the optimizer state, every random generator (torch's
global CPU/CUDA state, numpy's and Python's global ones and the trainer's own seeded streams:
batch sampler, DP noise, DyLoRA rank, gradient canaries), the privacy ledger and loop counters.
A resumed run therefore draws the same batches and the same noise and ends with the same
adapter as an uninterrupted one. Written atomically (temp dir, then rename), so an interruption
while writing leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from dpaudit.errors import InputError, MissingFileError
from dpaudit.io import atomic_dir

CHECKPOINT_DIR = ".checkpoint"
TENSORS_FILE = "state.safetensors"
STATE_FILE = "state.json"


def _global_rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    np_state = np.random.get_state()
    py_state = random.getstate()
    meta = {
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    return tensors, meta


def _set_global_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    kind, keys, *rest = meta["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(
    directory: Path,
    *,
    tensors: dict[str, torch.Tensor],
    generators: dict[str, torch.Generator],
    optimizer_state: dict,
    state: dict[str, Any],
) -> None:
    """Atomically replace ``directory`` with a checkpoint of the given state."""
    out = {f"tensor.{k}": v.detach().cpu().contiguous() for k, v in tensors.items()}
    out.update({f"gen.{k}": g.get_state() for k, g in generators.items()})
    rng_tensors, rng_meta = _global_rng_state()
    out.update(rng_tensors)
    opt_tensors, opt_meta = _flatten_optimizer_state(optimizer_state)
    out.update(opt_tensors)
    meta = {"state": state, "rng": rng_meta, "optimizer": opt_meta}
    with atomic_dir(directory) as tmp:
        save_file(out, str(tmp / TENSORS_FILE))
        (tmp / STATE_FILE).write_text(json.dumps(meta, sort_keys=True), encoding="utf-8")


def load_checkpoint(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict, dict[str, Any]]:
    """(tensors, generator states, optimizer state dict, state); restores the global RNGs."""
    if not (directory / STATE_FILE).is_file():
        raise MissingFileError(f"{directory}: no checkpoint to resume from (run without --resume)")
    try:
        flat = load_file(str(directory / TENSORS_FILE))
        meta = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable checkpoint: {exc}", path=directory) from None
    tensors = {k[len("tensor.") :]: v for k, v in flat.items() if k.startswith("tensor.")}
    generators = {k[len("gen.") :]: v for k, v in flat.items() if k.startswith("gen.")}
    optimizer_state = _unflatten_optimizer_state({k: v for k, v in flat.items() if k.startswith("optim.")}, meta["optimizer"])
    _set_global_rng_state({k: v for k, v in flat.items() if k.startswith("rng.")}, meta["rng"])
    return tensors, generators, optimizer_state, meta["state"]


def _flatten_optimizer_state(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state_dict["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}
