"""
torch.distributed from torchrun's environment: CPU (gloo), one GPU, or N GPUs / nodes (nccl).

``torchrun --nproc-per-node N`` (or ``--nnodes``) sets RANK, WORLD_SIZE, LOCAL_RANK and
MASTER_ADDR/PORT; a plain ``python`` run is a world of one and never initialises a process group.
The gathers used inside losses live in :mod:`cliprt_core.collectives` (re-exported here).
"""
from __future__ import annotations

from dataclasses import dataclass
import datetime
import os

from cliprt_core.collectives import all_gather_nograd, all_gather_with_grad  # noqa: F401 (API)
from cliprt_core.config import ConfigError
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = 'auto', timeout_s: float = 1800.0) -> DistContext:
    """
    Join the torchrun job (if any) and pick this process's device.

    ``device``: ``auto`` (CUDA when available), ``cpu`` or ``cuda``. Backend: nccl for CUDA,
    gloo for CPU. ``cuda`` without a GPU is a ConfigError.
    """
    use_cuda = torch.cuda.is_available() if device == 'auto' else device == 'cuda'
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError('train.device=cuda: no CUDA GPU is available (torch.cuda.is_available() '
                          'is False); use train.device=cpu or auto')
    world = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device('cuda', local_rank)
    else:
        dev = torch.device('cpu')
    if world > 1 and not dist.is_initialized():
        dist.init_process_group('nccl' if use_cuda else 'gloo', init_method='env://',
                                timeout=datetime.timedelta(seconds=timeout_s),
                                **({'device_id': dev} if use_cuda else {}))
    return DistContext(rank, world, local_rank, dev)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (in place, returned); identity in a world of one."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor
