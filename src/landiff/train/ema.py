"""Exponential moving average of the weights (buffers copied), with the usual warm-up.

decay_n = min(decay, (1 + n) / (10 + n)) for update n when ``warmup`` is on: early updates follow the
weights closely, so a short run's EMA is not stuck near the initial weights (the ``num_updates``
warm-up of TensorFlow's ``tf.train.ExponentialMovingAverage``).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from landiff.runs.posthoc_ema import sigma_rel_to_gamma


class EMA:
    """A shadow copy of a model updated as θ_ema ← d·θ_ema + (1 − d)·θ."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True) -> None:
        self.decay, self.warmup = decay, warmup
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.num_updates = 0

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        ema_params: list[torch.Tensor] = [p for p in self.model.parameters()]
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        for ema_buffer, buffer in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_buffer.copy_(buffer)
        self.num_updates += 1


class PowerEMA(EMA):
    """EDM2's power-function EMA (arXiv 2312.02696 eq. 1–3): θ̂_t = β_t θ̂_{t−1} + (1 − β_t) θ_t with
    β_t = (1 − 1/t)^{γ+1} at update t = 1, 2, …, i.e. the average of every update so far weighted ∝ t^γ.
    No warm-up is needed: at t = 1 it is the weights themselves. See :mod:`landiff.runs.posthoc_ema`
    for how snapshots of two of them give an EMA of any length after training."""

    def __init__(self, model: nn.Module, sigma_rel: float) -> None:
        super().__init__(model, decay=0.0, warmup=False)  # the decay comes from current_decay below
        self.sigma_rel, self.gamma = sigma_rel, sigma_rel_to_gamma(sigma_rel)

    def current_decay(self) -> float:
        """β of the next update."""
        return (1.0 - 1.0 / (self.num_updates + 1)) ** (self.gamma + 1.0)
