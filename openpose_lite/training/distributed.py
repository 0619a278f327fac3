"""Where training runs: alone or as one rank of a torchrun process group (DDP).

:class:`DistInfo` reads this process's rank from torchrun's environment variables; rank 0 alone logs,
prints, shows progress and writes files. The collectives (:func:`barrier`, :func:`all_reduce_sum`,
:func:`all_reduce_max`, :func:`any_rank`) are no-ops outside DDP, so the training code reads the same
alone and under torchrun.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import Sampler

from openpose_lite.devices import resolve_device

__all__ = ["DistInfo", "ShardSampler", "all_reduce_max", "all_reduce_sum", "any_rank", "barrier", "peer_lost",
           "setup_distributed", "teardown_distributed", "unwrap_model", "wrap_ddp"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @classmethod
    def from_env(cls) -> "DistInfo":
        """What torchrun's ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` say (absent: a single process)."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        return cls(rank=int(os.environ.get("RANK", "0")), world_size=world_size,
                   local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                   local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size))))

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that logs, shows progress and writes files."""
        return self.rank == 0


def _in_group() -> bool:
    return dist.is_available() and dist.is_initialized()


def setup_distributed(device_name: str = "auto") -> tuple[DistInfo, torch.device]:
    """(DistInfo, the device this process trains on), the torchrun process group joined when this process
    is one of several (``nccl`` for CUDA, ``gloo`` for CPU)."""
    info = DistInfo.from_env()
    device = resolve_device(device_name, info.local_rank)
    if info.world_size == 1:
        return info, device
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not _in_group():
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size,
                                **({"device_id": device} if device.type == "cuda" else {}))
    logger.info("joined process group: rank %d of %d (%s, %s)", info.rank, info.world_size, backend, device)
    return info, device


def teardown_distributed() -> None:
    if _in_group():
        dist.destroy_process_group()


def barrier() -> None:
    if _in_group():
        dist.barrier()


def _all_reduce(values: Tensor, op: dist.ReduceOp.RedOpType) -> Tensor:
    if _in_group():
        values = values.clone()
        dist.all_reduce(values, op=op)
    return values


def all_reduce_sum(values: Tensor) -> Tensor:
    """A small tensor summed over the ranks."""
    return _all_reduce(values, dist.ReduceOp.SUM)


def all_reduce_max(values: Tensor) -> Tensor:
    """A small tensor's element-wise maximum over the ranks."""
    return _all_reduce(values, dist.ReduceOp.MAX)


def any_rank(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` holds on any rank (``flag`` itself outside DDP); every rank must call it.
    ``device``: this rank's device (NCCL reduces CUDA tensors only)."""
    if not _in_group():
        return flag
    return bool(all_reduce_max(torch.tensor([float(flag)], device=device)).item() > 0)


# How gloo and NCCL report a rank that died (killed, crashed) to the ranks waiting on it.
_LOST_PEER = re.compile(r"(Connection (closed|reset) by peer|Broken pipe|communicator was aborted|"
                        r"remote process exited)", re.IGNORECASE)


def peer_lost(exc: BaseException) -> str | None:
    """What a collective said of another rank that died (``Connection reset by peer``), under
    torchrun; None when ``exc`` is no such report."""
    if DistInfo.from_env().world_size == 1 or not isinstance(exc, RuntimeError):
        return None
    found = _LOST_PEER.search(str(exc))
    if found:
        return found.group(1)
    return "the process group failed" if isinstance(exc, getattr(dist, "DistBackendError", ())) else None


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """``DistributedDataParallel(model)`` inside a process group, the model itself otherwise. DDP registers only
    the parameters that require grad *when it is built*: wrap again after a frozen group is released."""
    if not _in_group():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside a DistributedDataParallel wrapper, or the model itself."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class ShardSampler(Sampler[int]):
    """Rank ``rank`` of ``world_size`` gets indices ``rank, rank + world_size, ...``, in order. For
    evaluation: unlike ``DistributedSampler`` it pads nothing, so summed metrics are exact."""

    def __init__(self, length: int, rank: int = 0, world_size: int = 1) -> None:
        self.length, self.rank, self.world_size = int(length), int(rank), int(world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))
