"""Run one plain function over many payloads: in-process, on a local Ray runtime, or on a cluster.

The model is Ray's own libraries: a task is a module-level function of one plain, picklable payload
(a config dict, paths) that writes its big artefact to a shared cache and returns something small;
the driver only schedules, collects and shows one progress bar. With ``FanOut(workers=1)`` (the
default) the function runs in this process, in order, and Ray is never imported, so the core
install and the demo never need the ``[scale]`` extra.

With Ray, ``ray.init`` happens once per process, here at the edge (the first ``run_tasks`` that
needs it); later calls reuse the runtime. Every task asks for one CPU (and one GPU on CUDA
machines) and sets torch's thread count before any torch work, so that ``workers`` tasks never
oversubscribe the cores. A task that fails (worker death or exception) is retried once; a task
that fails twice raises its original error in the driver, after the others have finished (their
artefacts stay in the cache).

Example::

    results = run_tasks(train_one, payloads, fanout=FanOut(workers=2), label="shadows")
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from dpaudit.errors import ConfigError, DpauditError
from dpaudit.progress import progress_bar

P = TypeVar("P")
R = TypeVar("R")

SCALE_EXTRA = "pip install 'dpaudit[scale]'"
# Results are small by contract (artefacts go to the cache), so a local runtime needs little shared memory.
_LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2
_MAX_RETRIES = 1


@dataclass(frozen=True)
class FanOut:
    """Where tasks run.

    ``workers``: 1 runs them in this process (no Ray); N > 1 starts a local Ray runtime with N CPUs.
    ``ray_address``: join an existing Ray cluster instead (``"auto"`` or ``"ray://host:10001"``);
    the cluster's resources then decide how many tasks run at once.
    """

    workers: int = 1
    ray_address: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            problems.append(f"`workers` must be an integer >= 1, got {self.workers!r}")
        if self.ray_address is not None and not str(self.ray_address).strip():
            problems.append(f"`ray_address` must be a Ray address such as 'auto' or 'ray://host:10001', got {self.ray_address!r}")
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def uses_ray(self) -> bool:
        """True when tasks leave this process (more than one worker, or a cluster address)."""
        return self.workers > 1 or self.ray_address is not None


def run_tasks(
    fn: Callable[[P], R],
    payloads: Sequence[P],
    *,
    fanout: FanOut,
    label: str,
    gpus_per_task: float | None = None,
    progress: bool = True,
) -> list[R]:
    """``[fn(p) for p in payloads]``, fanned out as ``fanout`` says; results in payload order.

    ``fn`` must be a module-level function (Ray ships it by reference) of one picklable payload.
    ``gpus_per_task``: GPUs each Ray task reserves; ``None`` means none without CUDA, one per task
    on a cluster, and on a local runtime an equal share (``min(1, GPUs / workers)``, so that two
    workers on a one-GPU machine share it instead of waiting for each other). Ray shows a task
    its GPU as ``cuda:0``. ``label`` names the progress bar ("training 4 shadow adapters").
    """
    if not payloads:
        return []
    if not fanout.uses_ray:
        return _run_serial(fn, payloads, label=label, progress=progress)
    return _run_ray(fn, payloads, fanout=fanout, label=label, gpus_per_task=gpus_per_task, progress=progress)


def _run_serial(fn: Callable[[P], R], payloads: Sequence[P], *, label: str, progress: bool) -> list[R]:
    results = []
    with progress_bar(label, len(payloads), enabled=progress) as advance:
        for payload in payloads:
            results.append(fn(payload))
            advance()
    return results


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"more than one worker (or a Ray address) needs Ray, which is not installed: {SCALE_EXTRA}", field="workers") from exc
    return ray


def _ensure_ray(ray: Any, fanout: FanOut) -> None:
    """``ray.init`` once per process: a local runtime with ``workers`` CPUs, or the given cluster."""
    if ray.is_initialized():
        return
    common: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True, "include_dashboard": False}
    if fanout.ray_address is not None:
        init_ray(ray, address=fanout.ray_address, **common)
    else:
        init_ray(ray, num_cpus=fanout.workers, object_store_memory=_LOCAL_OBJECT_STORE_BYTES, **common)


def init_ray(ray: Any, **init_args: Any) -> None:
    """``ray.init(**init_args)``, keeping the caller's SIGTERM handling.

    ``ray.init`` installs a SIGTERM handler of its own (Python's ``sys.exit`` and, in the driver's
    core worker, a C++ crash handler that aborts): SIGTERM during a fanned-out attack or a Flower
    simulation would end in a Ray stack dump, exit 134 and a temporary directory left behind
    instead of the CLI's "interrupted" line and 143 (:mod:`dpaudit.interrupts`). Putting the
    previous handler back replaces both. Ray's notice about a future default is silenced: CPU
    tasks keep GPUs hidden, as today.
    """
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if in_main_thread else None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO.*", category=FutureWarning)
            ray.init(**init_args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def threads_per_task(fanout: FanOut, *, cores: int | None = None) -> int:
    """Torch threads for each task, so that the tasks running at once never oversubscribe the cores.

    A local runtime runs ``workers`` tasks at once on this machine's cores; on a cluster every task
    holds one CPU of its node (``num_cpus=1``), so one thread each.
    """
    if fanout.ray_address is not None:
        return 1
    return max(1, (cores or os.cpu_count() or 1) // fanout.workers)


def _call_with_threads(fn: Callable[[P], R], payload: P, threads: int) -> R:
    """The Ray task body: set torch's threads before any torch work, then run ``fn``."""
    import torch

    torch.set_num_threads(threads)
    return fn(payload)


def default_gpus_per_task(fanout: FanOut) -> float:
    """GPUs a task reserves when the caller does not say (see :func:`run_tasks`)."""
    import torch

    if not torch.cuda.is_available():
        return 0.0
    if fanout.ray_address is not None:
        return 1.0
    return min(1.0, torch.cuda.device_count() / fanout.workers)


def _run_ray(
    fn: Callable[[P], R],
    payloads: Sequence[P],
    *,
    fanout: FanOut,
    label: str,
    gpus_per_task: float | None,
    progress: bool,
) -> list[R]:
    ray = _import_ray()
    _ensure_ray(ray, fanout)
    gpus = default_gpus_per_task(fanout) if gpus_per_task is None else gpus_per_task
    remote = ray.remote(_call_with_threads).options(num_cpus=1, num_gpus=gpus, max_retries=_MAX_RETRIES, retry_exceptions=True)
    threads = threads_per_task(fanout)
    refs = [remote.remote(fn, payload, threads) for payload in payloads]
    index = {ref: i for i, ref in enumerate(refs)}
    results: list[Any] = [None] * len(refs)
    errors: dict[int, BaseException] = {}
    pending = list(refs)
    with progress_bar(label, len(refs), enabled=progress) as advance:
        while pending:
            # A timeout, so that Ctrl-C and SIGTERM reach Python between waits (ray.wait blocks them).
            done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            for ref in done:
                try:
                    results[index[ref]] = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    errors[index[ref]] = exc
                except ray.exceptions.RayError as exc:  # the worker died twice, or the cluster lost it
                    errors[index[ref]] = DpauditError(f"{label}: task {index[ref]} failed twice: {exc}")
                advance()
    if errors:
        first = errors[min(errors)]
        cause = getattr(first, "cause", None)
        if isinstance(cause, BaseException):
            raise cause from first  # the original error; the chained RayTaskError keeps the remote traceback
        raise first
    return results
