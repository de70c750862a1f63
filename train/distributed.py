"""Multi-process training: ``torchrun --nproc_per_node N -m train fit ...`` with DistributedDataParallel.

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`init_distributed` reads them and joins
the process group (NCCL on CUDA, one GPU per process; gloo on CPU). A plain ``python -m train fit`` is a world
of one and uses no process group. Only rank 0 writes checkpoints, metrics and samples; every rank draws
its own batches (a ``DistributedSampler``) and DDP averages the gradients.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the training job.

    Attributes:
        rank: global rank in [0, world_size).
        local_rank: rank on this machine (the GPU index on CUDA).
        world_size: number of processes (1 = not distributed).
        device: the device this process trains on.
        backend: "nccl", "gloo", or "" when not distributed.
    """

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    backend: str

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"environment variable {name}={value!r} must be an integer (torchrun sets it)"
        ) from None


def init_distributed(device_name: str) -> DistributedContext:
    """Join the process group if launched by ``torchrun`` with ``WORLD_SIZE > 1``; pick this process's device.

    Args:
        device_name: the config's ``device``: "auto" (CUDA when available, else CPU), "cpu", "cuda" or
            "cuda:N". Distributed on CUDA, each process takes ``cuda:LOCAL_RANK``.

    Returns:
        the context; call :func:`shutdown_distributed` when done.

    Raises:
        ValueError: if CUDA is asked for but absent, or the torchrun variables are malformed.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    if device_name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device_name!r} but CUDA is not available here; use device=cpu or auto")
    device = torch.device(device_name)
    if world_size <= 1:
        return DistributedContext(0, 0, 1, device, "")
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    log.info("distributed: rank %d of %d (local rank %d), backend %s, %s", rank, world_size, local_rank,
             backend, device)  # fmt: skip
    return DistributedContext(rank, local_rank, world_size, device, backend)


def shutdown_distributed(context: DistributedContext) -> None:
    """Leave the process group (if any). Idempotent."""
    if context.is_distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: DistributedContext) -> None:
    """Wait for every rank (no-op when not distributed)."""
    if context.is_distributed:
        dist.barrier()


def any_rank(context: DistributedContext, flag: bool) -> bool:
    """True on every rank if ``flag`` is true on any rank (e.g. a stop request), so all ranks stop at the same
    step. A no-op when not distributed."""
    if not context.is_distributed:
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=context.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item() > 0)


def mean_over_ranks(context: DistributedContext, values: dict[str, float]) -> dict[str, float]:
    """Each value averaged over the ranks (the same keys on every rank, in the same order)."""
    if not context.is_distributed or not values:
        return values
    tensor = torch.tensor(list(values.values()), dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return dict(zip(values, (tensor / context.world_size).tolist(), strict=True))
