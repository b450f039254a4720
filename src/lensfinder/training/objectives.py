"""What training optimises and how fast: losses, learning-rate schedules, LR scaling.

Two of gen2's failure mechanisms live here as config switches: focal loss with alpha 0.25
(``train.loss``, ``focal_alpha``; down-weights the positives) and
``CosineAnnealingLR(T_max=epochs)`` stepped every optimiser step
(``train.schedule: gen2_epoch_tmax_per_step``; the LR oscillates every 2 x epochs steps).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lensfinder.training.config import TrainConfig


def loss_fn(logits: torch.Tensor, y: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Mean BCE or focal loss of logits (B,) against labels (B,) in {0, 1}, always in
    float32 (bf16 logits lose the small losses). Focal loss: Lin et al. 2017."""
    logits, y = logits.float(), y.float()
    ce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    if cfg.loss == "bce":
        return ce.mean()
    if cfg.loss != "focal":
        raise ValueError(f"unknown loss {cfg.loss!r}")
    p = torch.sigmoid(logits)
    p_t = p * y + (1 - p) * (1 - y)
    alpha_t = cfg.focal_alpha * y + (1 - cfg.focal_alpha) * (1 - y)
    return (alpha_t * (1 - p_t) ** cfg.focal_gamma * ce).mean()


def make_scheduler(opt, cfg: TrainConfig, total_steps: int):
    """Per-step LR schedule. ``cosine_steps``: linear warmup then cosine to min_lr over
    ``total_steps`` optimiser steps. ``gen2_epoch_tmax_per_step``: gen2's
    CosineAnnealingLR(T_max=epochs) stepped every step."""
    if cfg.schedule == "gen2_epoch_tmax_per_step":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.min_lr)
    if cfg.schedule != "cosine_steps":
        raise ValueError(f"unknown schedule {cfg.schedule!r}")
    warm = max(1, int(cfg.warmup_frac * total_steps))
    floor = cfg.min_lr / cfg.lr  # relative to the (possibly scaled) base LR of the optimiser

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = min(1.0, (step - warm) / max(1, total_steps - warm))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def scaled_lr(cfg: TrainConfig, effective_batch: int) -> float:
    """Learning rate for an effective (all-rank) batch under ``cfg.lr_scaling``
    (``linear``: Goyal et al. 2017; ``sqrt``: Krizhevsky 2014)."""
    ratio = effective_batch / cfg.lr_reference_batch
    factor = {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}.get(cfg.lr_scaling)
    if factor is None:
        raise ValueError(f"unknown lr_scaling {cfg.lr_scaling!r}")
    return cfg.lr * factor
