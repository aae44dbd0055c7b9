"""Where a base model runs and in which precision: ``--device``, ``--dtype`` and ``--quantize``.

:class:`Placement` is what the user asked for (``auto`` by default); :meth:`Placement.resolve`
turns it into a :class:`ResolvedPlacement` on this machine: ``auto`` is CUDA with bfloat16 when a
GPU is visible, else the CPU with float32, so on a CPU machine the defaults change nothing.
:meth:`ResolvedPlacement.load_kwargs` are the ``from_pretrained`` arguments that load the weights
once, directly on the device in that dtype (quantized through bitsandbytes with ``--quantize``),
with no float32 copy on the CPU first.

Quantized bases (QLoRA) are CUDA-only: bitsandbytes' 4-bit and 8-bit kernels run on CUDA, so a
CPU placement with ``quantize`` is refused with a one-line reason. LoRA weights always train in
float32 (peft keeps adapter weights in float32 over a bf16/fp16/quantized base).

>>> Placement().resolve(cuda_available=False).to_json()
{'device': 'cpu', 'dtype': 'float32', 'quantize': None}
>>> Placement(dtype="bfloat16").resolve(cuda_available=False).dtype
'bfloat16'
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from dpaudit.errors import ConfigError, MissingDependencyError

DTYPES = ("auto", "float32", "bfloat16", "float16")
QUANTIZE = ("4bit", "8bit")
GPU_EXTRA = "pip install 'dpaudit[gpu]'"
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Placement:
    """The user's request: ``device`` auto|cpu|cuda|cuda:N, ``dtype`` auto|float32|bfloat16|float16,
    ``quantize`` None|4bit|8bit. Only validated here; :meth:`resolve` looks at the machine."""

    device: str = "auto"
    dtype: str = "auto"
    quantize: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.device, str) or not _DEVICE.match(self.device):
            problems.append(f"`device` must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.dtype not in DTYPES:
            problems.append(f"`dtype` must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.quantize is not None and self.quantize not in QUANTIZE:
            problems.append(f"`quantize` must be one of {', '.join(QUANTIZE)}, got {self.quantize!r}")
        if problems:
            raise ConfigError("; ".join(problems))

    def resolve(self, *, cuda_available: bool | None = None, cuda_devices: int | None = None) -> ResolvedPlacement:
        """This request on this machine (``cuda_available``/``cuda_devices`` override the probe in tests)."""
        import torch

        if cuda_available is None:
            cuda_available = torch.cuda.is_available()
        if cuda_devices is None:
            cuda_devices = torch.cuda.device_count() if cuda_available else 0
        device = self.device
        if device == "auto":
            device = "cuda:0" if cuda_available else "cpu"
        elif device.startswith("cuda"):
            if not cuda_available:
                raise ConfigError(f"`device` {device!r} asked for, but no CUDA device is visible here (use --device cpu or auto)")
            device = device if ":" in device else "cuda:0"
            index = int(device.split(":")[1])
            if index >= cuda_devices:
                raise ConfigError(f"`device` {device!r}: this machine has {cuda_devices} CUDA device(s) (cuda:0 ... cuda:{cuda_devices - 1})")
        on_cuda = device.startswith("cuda")
        dtype = self.dtype
        if dtype == "auto":
            dtype = ("bfloat16" if _bf16_supported() else "float16") if on_cuda else "float32"
        if self.quantize is not None:
            if not on_cuda:
                raise ConfigError(
                    f"`quantize` {self.quantize!r} needs a CUDA GPU: bitsandbytes' {self.quantize} kernels run on CUDA only "
                    "(drop --quantize on the CPU)"
                )
            if importlib.util.find_spec("bitsandbytes") is None:
                raise MissingDependencyError(f"--quantize {self.quantize} needs bitsandbytes: {GPU_EXTRA}")
        return ResolvedPlacement(device=device, dtype=dtype, quantize=self.quantize)


@dataclass(frozen=True)
class ResolvedPlacement:
    """A concrete placement: ``device`` 'cpu' or 'cuda:N', ``dtype`` a torch dtype name, ``quantize``."""

    device: str = "cpu"
    dtype: str = "float32"
    quantize: str | None = None

    @property
    def torch_device(self):
        import torch

        return torch.device(self.device)

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    def to_json(self) -> dict[str, Any]:
        """What the report and the training card record."""
        return {"device": self.device, "dtype": self.dtype, "quantize": self.quantize}

    @property
    def precision_tag(self) -> str | None:
        """None for the CPU default (float32, not quantized), else e.g. ``bfloat16`` or ``bfloat16/4bit``:
        what cache keys add, because a model in another precision computes other numbers (the
        device alone does not matter, so cached entries are shared between cuda:0 and cuda:1)."""
        if self.dtype == "float32" and self.quantize is None:
            return None
        return self.dtype + (f"/{self.quantize}" if self.quantize else "")

    def load_kwargs(self) -> dict[str, Any]:
        """``from_pretrained`` keyword arguments: weights land once, on the device, in the dtype."""
        kwargs: dict[str, Any] = {"dtype": self.torch_dtype}
        if self.device != "cpu":
            kwargs["device_map"] = {"": self.device}
        if self.quantize is not None:
            from transformers import BitsAndBytesConfig

            if self.quantize == "4bit":
                kwargs["quantization_config"] = BitsAndBytesConfig(
                    load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=self.torch_dtype
                )
            else:
                kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        if _transformers_major() < 5:  # transformers 5 always loads this way and warns about the flag
            kwargs["low_cpu_mem_usage"] = True
        return kwargs


CPU_FLOAT32 = ResolvedPlacement()
_SCOPE: ContextVar[Placement | None] = ContextVar("dpaudit_placement", default=None)


@contextlib.contextmanager
def placement_scope(placement: Placement) -> Iterator[ResolvedPlacement]:
    """Every base loaded inside (``load_base(placement=None)``) goes where ``placement`` says.

    Set once at the edge by each command (``--device/--dtype/--quantize``), so that the layers in
    between (audit → attacks, evaluators, generation) need no extra argument. Resolved here, so a
    bad request fails before any work. Tasks in other processes (Ray, torch.distributed) get
    their placement in their payload instead.
    """
    resolved = placement.resolve()
    token = _SCOPE.set(placement)
    try:
        yield resolved
    finally:
        _SCOPE.reset(token)


def current_placement() -> Placement:
    """The placement of the innermost :func:`placement_scope`, else the default (auto)."""
    return _SCOPE.get() or Placement()


def _bf16_supported() -> bool:
    """Ampere and newer GPUs compute in bfloat16; older ones get float16."""
    import torch

    try:
        return bool(torch.cuda.is_bf16_supported())
    except (AssertionError, RuntimeError):  # no CUDA runtime to ask
        return False


def _transformers_major() -> int:
    from importlib.metadata import version

    return int(version("transformers").split(".")[0])


def placement_of(model) -> ResolvedPlacement:
    """Where a loaded model's weights are: its first parameter's device, its dtype, and the
    bitsandbytes quantization transformers recorded on it (for cards and reports)."""
    import torch

    first = next(model.parameters(), None)
    device = str(first.device) if first is not None else "cpu"
    dtype = getattr(model, "dtype", first.dtype if first is not None else torch.float32)
    config = getattr(getattr(model, "hf_quantizer", None), "quantization_config", None)
    quantize = "4bit" if getattr(config, "load_in_4bit", False) else "8bit" if getattr(config, "load_in_8bit", False) else None
    return ResolvedPlacement(device=device if device != "cuda" else "cuda:0", dtype=str(dtype).removeprefix("torch."), quantize=quantize)
