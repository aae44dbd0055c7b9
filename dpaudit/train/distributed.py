"""Data-parallel DP-SGD on several processes: ``dpaudit train --dp --nproc N`` or ``torchrun``.

The model is Opacus's own distributed examples: one entry function per rank
(:func:`rank_main`), launched by :func:`run_distributed_training` (``torch.multiprocessing``,
one machine) or by ``torchrun`` (each rank runs the ``dpaudit train`` CLI, which finds its rank in
the environment, see :func:`torchrun_world`). Inside a process group of more than one rank,
:func:`training_run_type` gives the trainer :class:`DistributedTrainingRun`, which differs from
the single-process run in four places only:

- the model is wrapped in opacus's ``DPDDP`` (rank 0's adapter initialisation is broadcast);
- each rank owns a fixed shard of the training examples (``rank::world``) and draws its own
  Poisson sample of it with rate q, from its own (secret) generator: the union over ranks is a
  Poisson sample of the whole set with rate q, exactly what the accountant assumes;
- opacus's ``DistributedDPOptimizer`` clips per example on every rank, adds the Gaussian noise
  once (on rank 0) and all-reduces, so the update is (Σ clipped + N(0, σ²C²)) / (q·N) as in one
  process (each rank divides by its expected batch q·N/W, the all-reduce averages over W);
- checkpoints are not written (each rank's sampler state is its own secret).

σ, q, T, δ and the ledger are the single-process ones, so the card and ε are the same. Rank 0
alone shows progress and writes the adapter and the card. Flat clipping only: opacus's
per-layer distributed optimizer adds noise on every rank, and adaptive clipping has no
distributed form; both are refused with the reason.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from opacus.distributed import DifferentiallyPrivateDistributedDataParallel as DPDDP
from opacus.optimizers import DistributedDPOptimizer
from opacus.utils.uniform_sampler import UniformWithReplacementSampler

from dpaudit.errors import ConfigError, DpauditError
from dpaudit.scale.device import Placement
from dpaudit.scale.tasks import FanOut, threads_per_task
from dpaudit.train.config import TrainConfig
from dpaudit.train.dp import _DPStepMixin
from dpaudit.train.loop import Plan, TrainingRun, generator_seed, stream_seed
from dpaudit.train.methods import PreparedModel


class DistributedFlatDPOptimizer(_DPStepMixin, DistributedDPOptimizer):
    """Flat clipping on each rank; noise added once (rank 0) to the sum the ranks all-reduce.

    The first-step noise check of :class:`~dpaudit.train.dp._DPStepMixin` runs on rank 0, the
    only rank whose update carries noise.
    """


def world_size() -> int:
    """Ranks in the current process group (1 outside one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def training_run_type() -> type[TrainingRun]:
    """:class:`DistributedTrainingRun` inside a process group of more than one rank, else :class:`TrainingRun`."""
    return DistributedTrainingRun if world_size() > 1 else TrainingRun


def check_distributed_config(config: TrainConfig, *, nproc: int) -> None:
    """What data-parallel training supports; every problem in one ConfigError."""
    problems = []
    if nproc < 1:
        problems.append(f"`nproc` must be >= 1, got {nproc}")
    if nproc > 1:
        if config.dp is None:
            problems.append("`nproc` > 1 trains DP-SGD on several processes and needs --dp")
        elif config.dp.clipping != "flat":
            problems.append(f"`nproc` > 1 needs `clipping` 'flat' (opacus has no distributed {config.dp.clipping!r} clipping), got {config.dp.clipping!r}")
        if config.gradient_canaries:
            problems.append("`gradient_canaries` are not supported with `nproc` > 1 (each rank would insert them)")
        if config.method == "full":
            problems.append("`nproc` > 1 trains adapters; `method` 'full' is single-process only")
    if problems:
        raise ConfigError("; ".join(problems))


class DistributedTrainingRun(TrainingRun):
    """One rank of a data-parallel DP-SGD run (see the module docstring)."""

    def __init__(self, prepared: PreparedModel, *, config: TrainConfig, plan: Plan, device: torch.device) -> None:
        check_distributed_config(config, nproc=world_size())
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        prepared = dataclasses.replace(prepared, model=DPDDP(prepared.model))
        super().__init__(prepared, config=config, plan=plan, device=device)
        self.dp_optimizer = DistributedFlatDPOptimizer(
            self.base_optimizer,
            noise_multiplier=plan.noise_multiplier,
            max_grad_norm=config.dp.max_grad_norm,
            expected_batch_size=plan.expected_batch_size / self.world,
            loss_reduction="mean",
            generator=self.generators["noise"],
        )
        self.dp_optimizer.noise_scale = config._noise_scale
        self.dp_optimizer.check_noise_next_step = self.rank == 0
        # Each rank's Poisson sample must be independent of the other ranks' (its own stream) and, unless
        # the run opted into insecure reproducible noise, unpredictable (its own secret CSPRNG seed).
        self.generators["sampler"] = torch.Generator().manual_seed(stream_seed(generator_seed(config, "sampler"), f"rank-{self.rank}"))
        self.shard = torch.arange(plan.n)[self.rank :: self.world]

    def batches(self):
        """This rank's part of each logical batch: a Poisson sample (rate q) of its shard, in global indices."""
        sampler = UniformWithReplacementSampler(
            num_samples=len(self.shard),
            sample_rate=self.plan.sample_rate,
            generator=self.generators["sampler"],
            steps=self.plan.steps - self.step,
        )
        return ([int(self.shard[i]) for i in local] for local in sampler)

    def save(self, directory: Path, *, fingerprint: str) -> None:
        """No checkpoints: a resumed run could not restore the other ranks' secret sampler states."""

    def restore(self, directory: Path, *, fingerprint: str) -> None:
        raise ConfigError("--resume is not supported with several processes (no checkpoints are written)")


# ----------------------------------------------------------------------------------------------
# Launching
# ----------------------------------------------------------------------------------------------


def backend_for(placement: Placement) -> str:
    """nccl between GPUs, gloo on the CPU."""
    return "nccl" if placement.resolve().device.startswith("cuda") else "gloo"


def rank_placement(placement: Placement, *, local_rank: int) -> Placement:
    """Each rank on its own GPU (``cuda:local_rank``); on the CPU all ranks share the cores."""
    if placement.resolve().device.startswith("cuda"):
        return dataclasses.replace(placement, device=f"cuda:{local_rank}")
    return placement


def torchrun_world() -> tuple[int, int, int] | None:
    """``(rank, local_rank, world_size)`` when launched by ``torchrun`` with more than one rank, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    return int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", os.environ["RANK"])), world


def rank_main(rank: int, world: int, init_method: str, job: dict[str, Any], errors: Any = None) -> None:
    """The entry function of one rank: join the group, train (rank 0 writes ``out_dir``), leave.

    ``job`` holds :func:`dpaudit.train.trainer.run_training`'s keyword arguments (``placement``
    included). ``errors`` (a queue) receives a :class:`DpauditError` raised here, so that the
    launcher can show it as one line.
    """
    from dpaudit.train.trainer import run_training

    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    placement = rank_placement(job.get("placement") or Placement(), local_rank=local_rank)
    if placement.resolve().device == "cpu":  # the ranks share this machine's cores
        torch.set_num_threads(threads_per_task(FanOut(workers=world)))
    dist.init_process_group(backend=backend_for(placement), init_method=init_method, rank=rank, world_size=world)
    try:
        run_training(
            **{**job, "placement": placement, "out_dir": job["out_dir"] if rank == 0 else None, "progress": job.get("progress", True) and rank == 0}
        )
        dist.barrier()  # rank 0 has written the output before any rank reports success
    except DpauditError as exc:
        if errors is not None:
            errors.put(exc)
        raise
    finally:
        dist.destroy_process_group()


def run_distributed_training(*, nproc: int, **job: Any) -> None:
    """Train on ``nproc`` local processes (``torch.multiprocessing``, spawned); rank 0 writes ``job['out_dir']``.

    ``job`` are :func:`~dpaudit.train.trainer.run_training`'s keyword arguments. A
    :class:`DpauditError` in any rank is raised here unchanged; the other ranks are stopped.
    """
    check_distributed_config(job["config"], nproc=nproc)
    if job.get("resume"):
        raise ConfigError("--resume is not supported with --nproc > 1 (distributed runs write no checkpoints)")
    import torch.multiprocessing as mp

    context = mp.get_context("spawn")
    errors = context.SimpleQueue()
    with tempfile.TemporaryDirectory(prefix="dpaudit-dist-") as rendezvous:
        init_method = Path(rendezvous, "store").as_uri()
        try:
            mp.start_processes(rank_main, args=(nproc, init_method, job, errors), nprocs=nproc, join=True, start_method="spawn")
        except mp.ProcessException as exc:
            if not errors.empty():
                raise errors.get() from None
            raise DpauditError(f"a training process failed: {str(exc).strip().splitlines()[-1]}") from exc


def is_output_rank() -> bool:
    """False on the ``torchrun`` ranks that neither prepare nor write the output (all but rank 0)."""
    world = torchrun_world()
    return world is None or world[0] == 0


def train(*, nproc: int = 1, **job: Any) -> dict[str, Any] | None:
    """``dpaudit train`` on one process, on ``nproc`` spawned processes, or as this process's rank
    under ``torchrun``; ``job`` are :func:`~dpaudit.train.trainer.run_training`'s arguments.

    Returns the training card where the output was written (None on torchrun ranks other than 0).
    """
    from dpaudit.io import read_json_object
    from dpaudit.train.card import CARD_FILE
    from dpaudit.train.trainer import run_training

    ranked = torchrun_world()
    if ranked is None and nproc == 1:
        return run_training(**job).card
    if ranked is not None:
        rank, _, world = ranked
        if nproc not in (1, world):
            raise ConfigError(f"`nproc` {nproc} disagrees with torchrun's {world} processes; drop --nproc under torchrun")
        check_distributed_config(job["config"], nproc=world)
        rank_main(rank, world, "env://", job)
        if rank != 0:
            return None
    else:
        run_distributed_training(nproc=nproc, **job)
    return read_json_object(Path(job["out_dir"]) / CARD_FILE)
