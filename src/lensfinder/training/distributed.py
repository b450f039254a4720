"""Where a training process runs: its rank, the world, its device and precision, and the
few collectives the loop needs. One process and DDP (``torchrun``; gloo on CPU, nccl on
GPU) share one code path: with ``world == 1`` every collective is the identity.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from lensfinder import seeding
from lensfinder.training.config import TrainConfig


@dataclass(frozen=True)
class Runtime:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def ddp(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_runtime() -> Runtime:
    """This process's place in the job, from torchrun's environment (WORLD_SIZE, LOCAL_RANK);
    joins the process group when there is more than one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return Runtime(rank=rank, world=world, local_rank=local_rank, device=device)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def autocast_dtype(cfg: TrainConfig, device: torch.device):
    """The autocast dtype of ``cfg.precision`` on ``device`` (None: float32 throughout)."""
    if cfg.precision == "fp32" or (cfg.precision == "auto" and device.type == "cpu"):
        return None
    if cfg.precision in ("auto", "bf16"):
        return torch.bfloat16
    if cfg.precision == "fp16":
        return torch.float16
    raise ValueError(f"unknown precision {cfg.precision!r}")


def autocast(device: torch.device, dtype):
    return torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()


def rank_seed(seed: int, *parts) -> int:
    """A torch seed derived from (config seed, parts): dropout and weight init are a
    function of (seed, epoch, step, rank), not of process history, so a resumed run
    reproduces the uninterrupted one."""
    return int(seeding.row_keys(seed, "torch", *[np.int64(p) for p in parts])[0] % (2**63 - 1))


def any_rank(flag: bool, rt: Runtime) -> bool:
    """True on every rank when ``flag`` is true on any (e.g. one rank got SIGTERM)."""
    if not rt.ddp:
        return flag
    t = torch.tensor([float(flag)], device=rt.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def sum_across(values, rt: Runtime) -> torch.Tensor:
    """float64 tensor of ``values`` summed over ranks."""
    t = torch.tensor(values, dtype=torch.float64, device=rt.device)
    if rt.ddp:
        dist.all_reduce(t)
    return t


def gather_objects(obj, rt: Runtime) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (picklable objects)."""
    if not rt.ddp:
        return [obj]
    parts = [None] * rt.world
    dist.all_gather_object(parts, obj)
    return parts


def barrier(rt: Runtime) -> None:
    if rt.ddp:
        dist.barrier()
