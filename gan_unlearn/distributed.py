"""Data-parallel training under ``torchrun``: the process group, batch shards, synced BatchNorm, rank 0's say.

A trainer launched by ``torchrun --nproc_per_node N`` (``WORLD_SIZE`` > 1 in the environment) joins the
process group itself (gloo on CPU, NCCL on CUDA), gives each process a 1/N slice of every global batch,
wraps its networks in ``DistributedDataParallel``, and lets only rank 0 write files or show progress.

BatchNorm is synced: every rank normalises with the statistics of the whole global batch, so N processes
compute the same gradients as one process with the same global batch (to float rounding), and the
running statistics stay identical on every rank. Without syncing, each rank's BatchNorm would see only
its slice, a different model from the one a single process trains.
"""

from __future__ import annotations

import datetime
import inspect
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from .errors import UserError


def env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def launched_by_torchrun() -> bool:
    """True in a process that ``torchrun --nproc_per_node N`` (N > 1) started."""
    return env_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else env_world_size()


def rank() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def is_main_process() -> bool:
    """Rank 0, the one process that writes checkpoints and prints (also after the group is gone)."""
    return rank() == 0


@dataclass
class Session:
    """This process's place in a data-parallel run (one process: rank 0 of 1, no group)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this session created the process group, so it destroys it
    bn_group: object = None  # a group of its own for BatchNorm statistics

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, global_batch: int) -> slice:
        """This rank's part of a global batch of ``global_batch`` items."""
        if global_batch % self.world_size:
            raise UserError(f"batch size {global_batch} does not split evenly across {self.world_size} processes; "
                            f"use a multiple of {self.world_size}")
        b = global_batch // self.world_size
        return slice(self.rank * b, (self.rank + 1) * b)

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
        self.owns_group = False


def start(device: torch.device | str) -> Session:
    """Join the torchrun process group if this process is one of several (and has not joined yet).

    Under torchrun the device becomes this process's own: ``cuda`` -> ``cuda:LOCAL_RANK``. The backend is
    NCCL for CUDA and gloo for the CPU. One process (no ``WORLD_SIZE`` > 1) gets a session of one.
    """
    device = torch.device(device)
    if not launched_by_torchrun() and not (dist.is_available() and dist.is_initialized()):
        return Session(device=device)
    if not dist.is_available():
        raise UserError("this PyTorch build has no torch.distributed; run without torchrun")
    owns = False
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise UserError(f"process {local} has no GPU of its own ({torch.cuda.device_count()} visible); "
                            "use --nproc_per_node at most the number of GPUs")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        for name in ("MASTER_ADDR", "MASTER_PORT", "RANK"):
            if name not in os.environ:
                raise UserError(f"WORLD_SIZE is set but {name} is not; launch with torchrun --nproc_per_node N")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(minutes=30))
        owns = True
    bn_group = dist.new_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Session(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device, owns_group=owns,
                   bn_group=bn_group)


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes whose gradient is again the sum over processes (every rank's loss depends on
    every rank's contribution)."""

    @staticmethod
    def forward(ctx, tensor, group):
        ctx.group = group
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class SyncedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are those of the global batch across all processes.

    Works on CPU (gloo) and CUDA; ``torch.nn.SyncBatchNorm`` accepts only GPU inputs. Each rank sends its
    slice's mean and sum of squared deviations (one all-reduce) and combines them exactly (Chan et al.),
    so the result equals one process normalising the whole batch. Running statistics are updated as
    ``nn.BatchNorm2d`` does (unbiased variance over the global count). Eval mode, or a single process,
    is plain ``nn.BatchNorm2d``.
    """

    group = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized() or dist.get_world_size(self.group) == 1:
            return super().forward(x)
        world, me = dist.get_world_size(self.group), dist.get_rank(self.group)
        xf = x.float()
        var, mean = torch.var_mean(xf, dim=(0, 2, 3), correction=0)
        n = xf.numel() // xf.shape[1]  # the same on every rank: the global batch splits evenly
        slots = xf.new_zeros(world, 2, xf.shape[1])
        slots = slots.index_copy(0, torch.tensor([me], device=x.device), torch.stack([mean, var]).unsqueeze(0))
        every = _AllReduceSum.apply(slots, self.group)
        means, variances = every[:, 0], every[:, 1]
        g_mean = means.mean(0)
        g_var = (variances + (means - g_mean) ** 2).mean(0)  # biased variance of the union
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                total = n * world
                self.running_mean.mul_(1 - f).add_(g_mean.detach(), alpha=f)
                self.running_var.mul_(1 - f).add_(g_var.detach() * total / max(total - 1, 1), alpha=f)
        scale = torch.rsqrt(g_var + self.eps)
        if self.affine:
            scale = scale * self.weight
        shift = -g_mean * scale + (self.bias if self.affine else 0)
        return (xf * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)).to(x.dtype)


def sync_batchnorm(module: nn.Module, group=None) -> nn.Module:
    """Turn every ``nn.BatchNorm2d`` in ``module`` into a ``SyncedBatchNorm2d`` in place: the same
    parameters, buffers and state-dict keys, only ``forward`` differs. ``unsync_batchnorm`` undoes it."""
    for m in module.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = SyncedBatchNorm2d
            m.group = group
    return module


def unsync_batchnorm(module: nn.Module) -> nn.Module:
    for m in module.modules():
        if type(m) is SyncedBatchNorm2d:
            m.__class__ = nn.BatchNorm2d
            del m.group
    return module


def wrap(module: nn.Module, session: Session) -> nn.Module:
    """``module`` itself for one process; else a ``DistributedDataParallel`` around it (BatchNorm synced, so
    no buffer broadcasts are needed: every rank computes the same running statistics)."""
    if not session.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    sync_batchnorm(module, session.bn_group)
    ids = [session.device.index] if session.device.type == "cuda" else None
    # torch >= 2.10 renamed broadcast_buffers (it warns on the old name)
    no_buffer_sync = ({"forward_sync_buffers": False}
                      if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                      else {"broadcast_buffers": False})
    return DistributedDataParallel(module, device_ids=ids, **no_buffer_sync)


def all_reduce_mean(values: dict, session: Session) -> dict:
    """Per-rank numbers averaged over ranks (every rank must call this at the same point)."""
    if not session.distributed or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=session.device)
    dist.all_reduce(t)
    return {k: (t[i] / session.world_size).item() for i, k in enumerate(keys)}


def all_gather_object(obj, session: Session) -> list:
    if not session.distributed:
        return [obj]
    out = [None] * session.world_size
    dist.all_gather_object(out, obj)
    return out
