"""Learning-rate schedule: linear warm-up, then constant, cosine or linear decay.

The LR of optimiser step ``s`` (0-based) after ``seconds`` of training, with ``w = warmup``,
``floor = lr · min_lr_ratio``:

- warm-up (``s < w``): ``lr · (s + 1) / w``;
- ``decay="none"``: ``lr``;
- otherwise, with the decay progress ``p ∈ [0, 1]``: cosine ``floor + (lr − floor) · ½(1 + cos πp)``
  (SGDR, Loshchilov & Hutter 2017, without restarts), linear ``lr + (floor − lr) · p``.

``p`` runs over the run's *decay horizon*, stored in its config when the run was created
(:func:`landiff.runs.config.resolve_horizon`), never over the current ``--steps``, so a resume
cannot make the LR jump: ``p = (s − w) / (decay_steps − w)`` and, for a run with a time budget
(``--minutes``), ``max(that, seconds / (60 · decay_minutes))``: the decay ends when the first of
the two budgets does. The time is the run's summed training time (``TrainState.seconds``, in the
checkpoint), counted from its first step, warm-up included; past the horizon the LR stays at the floor.
"""

from __future__ import annotations

import math

from landiff.runs.config import OptimConfig


def learning_rate(optim: OptimConfig, step: int, seconds: float = 0.0) -> float:
    """LR for optimiser step ``step`` (0-based), taken after ``seconds`` of training (see the module docstring).

    Raises:
        ValueError: a decaying schedule whose horizon was never resolved (``decay_steps`` and
            ``decay_minutes`` both 0; :func:`landiff.runs.config.finalize` sets them).
    """
    if optim.warmup > 0 and step < optim.warmup:
        return optim.lr * (step + 1) / optim.warmup
    if optim.decay == "none":
        return optim.lr
    if optim.decay_steps <= 0 and optim.decay_minutes <= 0:
        raise ValueError("a decaying LR schedule needs its horizon: set optim.decay_steps (finalize() does it from train_steps)")
    progress = 0.0
    if optim.decay_steps > 0:
        progress = (step - optim.warmup) / max(1, optim.decay_steps - optim.warmup)
    if optim.decay_minutes > 0:
        progress = max(progress, seconds / (60.0 * optim.decay_minutes))
    progress = min(1.0, max(0.0, progress))
    floor = optim.lr * optim.min_lr_ratio
    if optim.decay == "cosine":
        return floor + (optim.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return optim.lr + (floor - optim.lr) * progress
