"""One training epoch and one validation pass.

Ranks can hold different numbers of batches (whole row groups per rank). All ranks take
the same number of optimiser steps -- the largest count -- and a rank out of data takes
zero-loss padding steps: its zero gradient enters DDP's average, every rank applies the
same update, optimiser states stay identical, and every sample is still seen exactly once.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import torch

from lensfinder.contracts import GEN2_HISTORY_KEYS
from lensfinder.metrics import evaluate_scores
from lensfinder.training.config import RunConfig
from lensfinder.training.data import stamp_loader
from lensfinder.training.distributed import Runtime, any_rank, autocast, rank_seed, sum_across
from lensfinder.training.inference import score_split
from lensfinder.training.learner import Learner, optimizer_steps
from lensfinder.training.objectives import loss_fn
from lensfinder.training.preemption import SigtermFlag
from lensfinder.training.state import TrainState


def _padding_batch(cfg: RunConfig) -> dict:
    batch = {"x": torch.zeros(1, 3, 64, 64), "y": torch.zeros(1), "n_skipped": 0}
    if cfg.model.metadata:
        batch["meta"] = torch.zeros(1, 6)
    return batch


def train_step(lrn: Learner, batch: dict, cfg: RunConfig, rt: Runtime, padding: bool) -> float:
    """One optimiser step on ``batch``; returns its float32 mean loss (0 for padding)."""
    x = batch["x"].to(rt.device, non_blocking=True, memory_format=torch.channels_last)
    y = batch["y"].to(rt.device, non_blocking=True)
    meta = batch["meta"].to(rt.device) if "meta" in batch else None
    with autocast(rt.device, lrn.amp_dtype):
        logits = lrn.model(x, meta)
    loss = loss_fn(logits, y, cfg.train) * (0.0 if padding else 1.0)
    lrn.opt.zero_grad(set_to_none=True)
    lrn.scaler.scale(loss).backward()
    if cfg.train.grad_clip:
        lrn.scaler.unscale_(lrn.opt)
        torch.nn.utils.clip_grad_norm_(lrn.raw_model.parameters(), cfg.train.grad_clip)
    lrn.scaler.step(lrn.opt)
    lrn.scaler.update()
    lrn.sched.step()
    if lrn.ema is not None:
        lrn.ema.update_parameters(lrn.raw_model)
    return float(loss.detach())


def train_one_epoch(lrn: Learner, state: TrainState, cfg: RunConfig, rt: Runtime, sigterm: SigtermFlag,
                    steps_done_here: int, progress=None) -> int | None:
    """Train epoch ``state.epoch`` from ``state.step_in_epoch`` (resuming mid-epoch skips
    the batches trained before the kill), adding to ``state.partial``. Returns the steps
    this process has taken so far, or None when it stopped early (SIGTERM on any rank, or
    ``train.stop_after_steps``) -- the caller checkpoints."""
    epoch = state.epoch
    lrn.train_ds.set_epoch(epoch)
    loader = stamp_loader(lrn.train_ds, cfg.loader.num_workers)
    lrn.model.train()
    n_steps = optimizer_steps(lrn.train_ds, cfg, rt.world)
    batches = itertools.chain(loader, itertools.repeat(None))
    stop_after = cfg.train.stop_after_steps
    for step, batch in zip(range(n_steps), batches):
        if step < state.step_in_epoch:
            continue
        torch.manual_seed(rank_seed(cfg.seed, epoch, step, rt.rank))  # dropout / drop-path
        padding = batch is None
        batch = _padding_batch(cfg) if padding else batch
        loss = train_step(lrn, batch, cfg, rt, padding)
        if not padding:
            state.partial.loss_sum += loss * len(batch["y"])
            state.partial.samples += len(batch["y"])
        state.partial.skipped += int(batch["n_skipped"])
        state.step_in_epoch = step + 1
        state.global_step += 1
        steps_done_here += 1
        if progress is not None:
            progress.update(1)
        if any_rank(sigterm.requested or bool(stop_after and steps_done_here >= stop_after), rt):
            return None
    return steps_done_here


def _logit_scale(lab: np.ndarray, lgt: np.ndarray) -> dict:
    pos, neg = lab == 1, lab == 0
    return {"mean_abs_logit_pos": float(np.abs(lgt[pos]).mean()) if pos.any() else None,
            "mean_abs_logit_neg": float(np.abs(lgt[neg]).mean()) if neg.any() else None,
            "max_logit_neg": float(lgt[neg].max()) if neg.any() else None}


def validate(lrn: Learner, state: TrainState, paths, cfg: RunConfig, rt: Runtime, seconds_since: float):
    """Score the validation split with the weights to be published; returns
    (history record of this epoch -- a ``contracts.EpochRecord`` less ``best_epoch`` --,
    sample_id, label, logit)."""
    totals = sum_across(state.partial.values(), rt)
    sid, lab, lgt = score_split(lrn.eval_model, paths, "val", cfg, rt, lrn.amp_dtype)
    n_train = lrn.train_ds.n_rows()
    seen = int(totals[1])
    rec = {"epoch": state.epoch, "train_loss": float(totals[0] / max(totals[1], 1)),
           "samples_seen_epoch": seen, "n_train": n_train, "n_train_pos": lrn.train_ds.n_positives(),
           "duplication_factor": float(totals[1]) / max(n_train, 1),
           "samples_seen": state.samples_seen + seen, "n_skipped_nonfinite": int(totals[2]),
           "lr": float(lrn.sched.get_last_lr()[0]), "seconds": round(time.perf_counter() - seconds_since, 2),
           **_logit_scale(lab, lgt)}
    stored = cfg.train.eval_score_dtype
    rec.update(evaluate_scores(lab, lgt, stored))
    if stored != "logit_float32":
        ref = evaluate_scores(lab, lgt, "logit_float32")
        rec["logit_float32"] = {k: ref[k] for k in GEN2_HISTORY_KEYS + ("auc", "pauc", "n_neg_tied_at_top")}
    return rec, sid, lab, lgt
