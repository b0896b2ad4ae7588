"""Per-log-interval training statistics, accumulated without host syncs until the interval ends."""

from __future__ import annotations

import time
from typing import Any

import torch

from landiff.diffusion import TrainingLosses


class StatsAccumulator:
    """Collects per-example loss terms and per-step norms; ``flush`` turns them into one record."""

    def __init__(self, num_steps: int) -> None:
        self.num_steps = num_steps
        self.start_time = self.interval_start = time.monotonic()
        self._reset()

    def _reset(self) -> None:
        self.t: list[torch.Tensor] = []
        self.loss: list[torch.Tensor] = []
        self.mse: list[torch.Tensor] = []
        self.vb: list[torch.Tensor] = []
        self.grad_norms: list[torch.Tensor] = []
        self.lr = 0.0
        self.images = 0
        self._last: torch.Tensor | None = None

    def add(self, t: torch.Tensor, losses: TrainingLosses) -> None:
        self.t.append(t.detach().cpu())
        self.loss.append(losses.loss.detach())
        if losses.vb is not None:
            self.vb.append(losses.vb.detach())
        if losses.mse is not None:
            self.mse.append(losses.mse.detach())
        self.images += len(t)
        self._last = losses.loss.detach()

    def add_step(self, grad_norm: torch.Tensor, lr: float) -> None:
        self.grad_norms.append(grad_norm.detach())
        self.lr = lr

    def last_loss(self) -> float:
        return float(self._last.mean()) if self._last is not None else float("nan")

    def flush(self, step: int, images_seen: int) -> dict[str, Any]:
        now = time.monotonic()
        t = torch.cat(self.t)
        loss = torch.cat(self.loss).float().cpu()
        quartile = (t * 4 // self.num_steps).clamp(max=3)
        record: dict[str, Any] = {
            "step": step,
            "images_seen": images_seen,
            "loss": float(loss.mean()),
            "mse": float(torch.cat(self.mse).float().mean()) if self.mse else None,
            "vb": float(torch.cat(self.vb).float().mean()) if self.vb else None,
            "loss_q": [float(loss[quartile == q].mean()) if (quartile == q).any() else None for q in range(4)],
            "lr": self.lr,
            "grad_norm": float(torch.stack(self.grad_norms).float().mean()),
            "img_per_s": self.images / max(now - self.interval_start, 1e-9),
            "seconds": now - self.start_time,
        }
        self.interval_start = now
        self._reset()
        return record
