"""Learning-rate schedule: linear warm-up, then constant, cosine or linear decay (a pure function of step)."""

from __future__ import annotations

import math

from landiff.train.config import OptimConfig


def learning_rate(optim: OptimConfig, step: int, total_steps: int) -> float:
    """LR for optimiser step ``step`` (0-based) of ``total_steps``."""
    if optim.warmup > 0 and step < optim.warmup:
        return optim.lr * (step + 1) / optim.warmup
    if optim.decay == "none" or total_steps <= optim.warmup:
        return optim.lr
    progress = min(1.0, (step - optim.warmup) / max(1, total_steps - optim.warmup))
    floor = optim.lr * optim.min_lr_ratio
    if optim.decay == "cosine":
        return floor + (optim.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return optim.lr + (floor - optim.lr) * progress
