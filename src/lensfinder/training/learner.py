"""The trainable parts of a run, built in one fixed order (the order fixes the random
stream, so a rerun and a resume start from the same weights): the model (compiled and
DDP-wrapped as configured), AdamW, the per-step schedule, the grad scaler, the optional EMA
and the training stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lensfinder.training.config import RunConfig
from lensfinder.training.data import StampStream
from lensfinder.training.distributed import Runtime, autocast_dtype, rank_seed
from lensfinder.training.model import build_model
from lensfinder.training.objectives import make_scheduler, scaled_lr


def optimizer_steps(ds: StampStream, cfg: RunConfig, world: int) -> int:
    """Optimiser steps of ``ds``'s current epoch: the largest rank's batch count (a rank
    with fewer batches takes zero-loss padding steps)."""
    return max(ds.n_batches(r, cfg.loader.num_workers) for r in range(world))


@dataclass
class Learner:
    model: torch.nn.Module      # what the loop calls: compiled / DDP-wrapped
    raw_model: torch.nn.Module  # the plain module whose weights are checkpointed
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    ema: torch.optim.swa_utils.AveragedModel | None
    train_ds: StampStream
    steps_per_epoch: int
    lr: float
    amp_dtype: torch.dtype | None

    @property
    def eval_model(self) -> torch.nn.Module:
        """The weights that are validated and published: the EMA's when there is one."""
        return self.ema.module if self.ema is not None else self.raw_model

    def state_dicts(self) -> dict:
        return {"model": self.raw_model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "scaler": self.scaler.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None}

    def load_state_dicts(self, ckpt: dict) -> None:
        self.raw_model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None and ckpt.get("ema") is not None:
            self.ema.load_state_dict(ckpt["ema"])


def build_learner(cfg: RunConfig, paths: list[str], rt: Runtime) -> Learner:
    """Every trainable part of run ``cfg`` on ``rt.device``, with identical initial weights
    on every rank."""
    tc = cfg.train
    torch.manual_seed(rank_seed(cfg.seed, 0))
    raw_model = build_model(cfg.model).to(rt.device)
    model = torch.compile(raw_model) if cfg.model.compile else raw_model
    if rt.ddp:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[rt.local_rank] if rt.device.type == "cuda" else None)
    lr = scaled_lr(tc, cfg.loader.batch_size * rt.world)
    opt = torch.optim.AdamW(raw_model.parameters(), lr=lr, weight_decay=tc.weight_decay)
    train_ds = StampStream(paths, "train", cfg.loader, cfg.seed, train=True, rank=rt.rank, world_size=rt.world)
    # the epoch-0 step count sets the schedule's horizon (later epochs differ by a few steps)
    spe = optimizer_steps(train_ds, cfg, rt.world)
    amp_dtype = autocast_dtype(tc, rt.device)
    scaler = torch.amp.GradScaler(rt.device.type, enabled=amp_dtype == torch.float16)
    ema = torch.optim.swa_utils.AveragedModel(
        raw_model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(tc.ema_decay)) if tc.ema_decay else None
    return Learner(model=model, raw_model=raw_model, opt=opt, sched=make_scheduler(opt, tc, spe * tc.epochs),
                   scaler=scaler, ema=ema, train_ds=train_ds, steps_per_epoch=spe, lr=lr, amp_dtype=amp_dtype)
