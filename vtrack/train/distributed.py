"""torch.distributed helpers for ``torchrun`` launches (env:// initialisation).

``torchrun --nproc_per_node N -m vtrack.cli train CONFIG`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`init_distributed` then joins the process group with NCCL on GPUs and
gloo on CPU. Without those variables everything runs as a single process (rank 0 of 1).

Learning-rate scaling with the global batch (``batch_size x world_size``) is set by
``train.lr_scaling``: ``linear`` multiplies every learning rate by ``global / reference_batch``
(Goyal et al., 2017), ``sqrt`` by its square root, ``none`` keeps the configured rates. E.g.
OSTrack's recipe is lr 4e-4 at a global batch of 128: with ``rule: linear, reference_batch: 128``
a single GPU at batch 32 trains with 1e-4.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "cleanup_distributed", "scaled_lr", "all_reduce_mean", "barrier"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the only rank writing checkpoints and logs)."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when a process group with more than one rank is active."""
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}: expected an int, got {raw!r}") from None


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the torchrun process group if ``WORLD_SIZE > 1`` (NCCL for CUDA, gloo otherwise).

    ``device`` is ``train.device``: ``"cpu"`` forces gloo even where CUDA exists.
    """
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return DistInfo()
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    use_cuda = torch.cuda.is_available() and not str(device).startswith("cpu")
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://")
    log.debug("rank %d/%d joined the %s process group", rank, world, backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, backend=backend)


def cleanup_distributed(info: DistInfo) -> None:
    """Leave the process group (if this module joined one)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Synchronise all ranks (no-op for a single process)."""
    if info.enabled:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of ``value`` over ranks (returned unchanged for a single process)."""
    if not info.enabled:
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / info.world_size


def scaled_lr(lr: float, global_batch: int, rule: str, reference_batch: int) -> float:
    """Scale ``lr`` for ``global_batch`` by ``rule`` (``none``/``linear``/``sqrt``) relative to ``reference_batch``."""
    if global_batch < 1 or reference_batch < 1:
        raise ValueError(f"global_batch/reference_batch: expected positive ints, got {global_batch}/{reference_batch}")
    ratio = global_batch / reference_batch
    if rule == "none":
        return lr
    if rule == "linear":
        return lr * ratio
    if rule == "sqrt":
        return lr * math.sqrt(ratio)
    raise ValueError(f"train.lr_scaling.rule: expected 'none', 'linear' or 'sqrt', got {rule!r}")
