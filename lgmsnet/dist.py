"""One place for everything ``torch.distributed``: rank, world size, barriers, gathers and set-up.

Every helper also works in a plain single process (no process group): the rank is 0, the world size is 1,
``barrier()`` does nothing and the gathers return their input. Library code can therefore call them
unconditionally.

Nothing here reads or writes environment variables at import time; :func:`init_distributed` reads torchrun's
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` when it is called, and never writes them.

Typical use in an entry point::

    rank, world_size, local_rank = init_distributed(device=device)
    try:
        ...  # train / evaluate; metrics call all_gather_tensor() inside
    finally:
        cleanup()
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "all_gather_object",
    "all_gather_tensor",
    "barrier",
    "cleanup",
    "get_local_rank",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_distributed",
    "is_main_process",
]

logger = logging.getLogger(__name__)

_ProcessGroup = Any  # torch.distributed.ProcessGroup; kept loose so type hints work where dist is unavailable


def is_distributed() -> bool:
    """Return True when a default process group is initialised (so collectives will communicate)."""
    return dist.is_available() and dist.is_initialized()


def get_rank(group: _ProcessGroup | None = None) -> int:
    """Return this process's rank in ``group`` (the default group when None); 0 outside distributed runs."""
    return dist.get_rank(group) if is_distributed() else 0


def get_world_size(group: _ProcessGroup | None = None) -> int:
    """Return the number of processes in ``group`` (the default group when None); 1 outside distributed runs."""
    return dist.get_world_size(group) if is_distributed() else 1


def get_local_rank() -> int:
    """Return torchrun's ``LOCAL_RANK`` (the process index on this node); 0 when it is not set."""
    return _env_int("LOCAL_RANK", default=0)


def is_main_process() -> bool:
    """Return True on global rank 0 (and always in a single process): the rank that logs and writes files."""
    return get_rank() == 0


def barrier(group: _ProcessGroup | None = None) -> None:
    """Block until every rank of ``group`` reaches this point; does nothing outside distributed runs."""
    if is_distributed():
        dist.barrier(group=group)


def all_gather_tensor(tensor: torch.Tensor, group: _ProcessGroup | None = None) -> torch.Tensor:
    """Gather a tensor from every rank and concatenate along the first dimension, in rank order.

    Ranks may hold different first-dimension sizes (including 0): the sizes are all-gathered first, every
    rank pads to the largest size, and the padding is removed after the gather. The trailing dimensions and
    the dtype must be the same on every rank. With the NCCL backend a CPU tensor is moved to the current CUDA
    device for the transfer and the result is returned on the input's device. Must be called by every rank
    of ``group`` (it is a collective). Outside distributed runs the input is returned unchanged.

    Args:
        tensor: the local tensor, at least 1-D.
        group: process group; None means the default group.

    Returns:
        The concatenation of every rank's tensor (rank 0's rows first), on ``tensor.device``.

    Raises:
        ValueError: ``tensor`` is 0-D, or ranks disagree on the number of dimensions or the trailing shape.

    **Shape:**
        - tensor: ``(n_r, *S)`` on rank ``r``
        - output: ``(sum_r n_r, *S)`` on every rank
    """
    if tensor.ndim == 0:
        raise ValueError(
            "all_gather_tensor needs a tensor with at least one dimension (rows are concatenated along dim 0); "
            "received a 0-D tensor. Call tensor.reshape(1) first."
        )
    if not is_distributed():
        return tensor
    world_size = get_world_size(group)
    comm_device = _comm_device(group, tensor.device)
    local = tensor.detach().to(comm_device).contiguous()

    # 1. number of dims, then the full shape, so that mismatches fail with a message instead of hanging.
    ndim = torch.tensor([local.ndim], dtype=torch.int64, device=comm_device)
    ndims = [torch.zeros_like(ndim) for _ in range(world_size)]
    dist.all_gather(ndims, ndim, group=group)
    ndim_values = [int(n.item()) for n in ndims]
    if len(set(ndim_values)) != 1:
        raise ValueError(
            f"all_gather_tensor: ranks hold tensors with different numbers of dimensions {ndim_values} "
            f"(rank {get_rank(group)} has shape {tuple(local.shape)}). Only the first dimension may differ."
        )
    shape = torch.tensor(list(local.shape), dtype=torch.int64, device=comm_device)
    shapes = [torch.zeros_like(shape) for _ in range(world_size)]
    dist.all_gather(shapes, shape, group=group)
    shape_values = [tuple(int(v) for v in s.tolist()) for s in shapes]
    trailing = {s[1:] for s in shape_values}
    if len(trailing) != 1:
        raise ValueError(
            f"all_gather_tensor: ranks hold tensors whose trailing dimensions differ: shapes {shape_values}. "
            "Only the first dimension may differ between ranks."
        )
    sizes = [s[0] for s in shape_values]
    max_size = max(sizes)
    if max_size == 0:
        return tensor.new_empty((0, *tensor.shape[1:]))

    # 2. pad to the largest size, gather, trim.
    if local.shape[0] < max_size:
        pad = local.new_zeros((max_size - local.shape[0], *local.shape[1:]))
        local = torch.cat([local, pad], dim=0)
    gathered = [torch.empty_like(local) for _ in range(world_size)]
    dist.all_gather(gathered, local, group=group)
    out = torch.cat([g[:n] for g, n in zip(gathered, sizes, strict=True)], dim=0)
    return out.to(tensor.device)


def all_gather_object(obj: Any, group: _ProcessGroup | None = None) -> list[Any]:
    """Gather one picklable Python object from every rank (a collective); ``[obj]`` outside distributed runs.

    Args:
        obj: any picklable object (for example a list of image stems).
        group: process group; None means the default group.

    Returns:
        A list with one entry per rank, in rank order.
    """
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * get_world_size(group)
    dist.all_gather_object(out, obj, group=group)
    return out


def init_distributed(
    backend: str | None = None, device: torch.device | str | None = None
) -> tuple[int, int, int]:
    """Initialise the default process group from torchrun's environment when there is more than one process.

    Reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (set by ``torchrun`` / ``python -m torch.distributed.run``,
    together with ``MASTER_ADDR`` and ``MASTER_PORT``). When ``WORLD_SIZE`` is unset or 1, nothing is
    initialised and ``(0, 1, 0)`` is returned, so the same entry point runs unchanged as a single process.
    The environment is only read, never modified. If a process group already exists it is reused.

    Args:
        backend: ``"gloo"``, ``"nccl"`` or another backend torch supports; None picks ``"nccl"`` when
            ``device`` is a CUDA device and ``"gloo"`` otherwise.
        device: the device this rank computes on. For a CUDA device without an index, ``cuda:LOCAL_RANK`` is
            made the current device; with an index, that device is made current.

    Returns:
        ``(rank, world_size, local_rank)``.

    Raises:
        ValueError: an environment variable is not an integer, or the ranks are inconsistent.
        RuntimeError: ``torch.distributed`` is unavailable, or NCCL is requested without CUDA.
    """
    world_size = _env_int("WORLD_SIZE", default=1)
    rank = _env_int("RANK", default=0)
    local_rank = _env_int("LOCAL_RANK", default=0)
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ValueError(
            f"Inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world_size}, LOCAL_RANK={local_rank}. "
            "Allowed: WORLD_SIZE >= 1, 0 <= RANK < WORLD_SIZE, LOCAL_RANK >= 0. Launch with torchrun, or unset them."
        )
    if world_size == 1:
        logger.debug("WORLD_SIZE is %d: running as a single process, no process group created", world_size)
        return 0, 1, 0
    if not dist.is_available():
        raise RuntimeError(
            f"WORLD_SIZE={world_size} asks for a distributed run, but this torch build has no torch.distributed. "
            "Install a torch build with distributed support or run a single process."
        )
    if dist.is_initialized():
        logger.info("process group already initialised (backend %s); reusing it", dist.get_backend())
        return dist.get_rank(), dist.get_world_size(), local_rank

    dev = torch.device(device) if device is not None else torch.device("cpu")
    if backend is None:
        backend = "nccl" if dev.type == "cuda" else "gloo"
    if backend == "nccl" and not torch.cuda.is_available():
        raise RuntimeError(
            "backend 'nccl' needs CUDA, but torch.cuda.is_available() is False. "
            "Use backend='gloo' (or device='cpu') on machines without a GPU."
        )
    if dev.type == "cuda":
        torch.cuda.set_device(dev.index if dev.index is not None else local_rank)
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size)
    logger.info(
        "initialised process group: backend=%s rank=%d world_size=%d local_rank=%d",
        backend,
        rank,
        world_size,
        local_rank,
    )
    return rank, world_size, local_rank


def cleanup() -> None:
    """Destroy the default process group if one exists; safe to call in single-process runs."""
    if is_distributed():
        dist.destroy_process_group()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(
            f"Environment variable {name}={raw!r} is not an integer. torchrun sets it to an integer; "
            f"unset it or set it to an integer."
        ) from None


def _comm_device(group: _ProcessGroup | None, device: torch.device) -> torch.device:
    """Device on which collectives of ``group`` must run (NCCL needs CUDA tensors)."""
    backend = str(dist.get_backend(group)).lower()
    if backend == "nccl" and device.type != "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    return device
