"""Multi-process training: the same ``dbd train`` under ``torchrun --nproc_per_node=N``.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK (and MASTER_ADDR/PORT); we start the process group
(gloo on CPU, NCCL on CUDA), wrap trainable networks in DistributedDataParallel and give each rank its
shard of every epoch through a DistributedSampler. Rank 0 alone logs and writes files.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: nn.Module) -> nn.Module:
        if not self.enabled or not any(p.requires_grad for p in module.parameters()):
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        # find_unused_parameters: a term switched off (e.g. side outputs at weight 0) leaves parameters
        # without gradients, which plain DDP treats as an error.
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)

    def any(self, flag: bool) -> bool:
        """True on every rank if it is True on any rank (cancel requests, non-finite losses)."""
        if not self.enabled:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def sync_buffers(self, modules) -> None:
        """Copy rank 0's buffers (BatchNorm running statistics) to every rank. DDP broadcasts them at
        the start of each forward, so after the last step each rank still holds its own; saved and
        validated networks must be the same on every rank."""
        if not self.enabled:
            return
        for m in modules:
            for b in m.buffers():
                dist.broadcast(b.data, src=0)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def resolve_device(pref: str | None, local_rank: int = 0) -> torch.device:
    """"auto" -> CUDA when present, else CPU; "cpu", "cuda", "cuda:1" as given."""
    pref = (pref or "auto").lower()
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    if pref == "cuda":
        pref = f"cuda:{local_rank}"
    dev = torch.device(pref)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from dbd_core.errors import DBDError

        raise DBDError("--device cuda asked for, but no CUDA device is available (use --device cpu)")
    return dev


def init_from_env(device_pref: str | None = None) -> DistContext:
    """A DistContext from torchrun's environment; a single process when WORLD_SIZE is unset or 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_pref, local)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return DistContext(rank=rank, world_size=world, local_rank=local, device=device)


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    """Rank 0 (or a single process), from torchrun's environment; usable before the group starts."""
    return int(os.environ.get("RANK", "0")) == 0
