"""Per-log-interval statistics of the noisy-classifier trainer: cross-entropy and accuracy, overall and
per noise-level quartile (t in the quarters of 0..T−1, the split :class:`~landiff.train.stats.StatsAccumulator`
uses for the diffusion loss)."""

from __future__ import annotations

import time
from typing import Any

import torch


def noise_quartile(t: torch.Tensor, num_steps: int) -> torch.Tensor:
    """The quartile (0..3) of timesteps ``t`` (B,) of a T-step schedule: ⌊4t/T⌋."""
    return (t.long() * 4 // num_steps).clamp(max=3)


def quartile_range(quartile: int, num_steps: int) -> tuple[int, int]:
    """The timesteps [low, high) of ``quartile``: exactly the t with ⌊4t/T⌋ = quartile."""
    return -(-quartile * num_steps // 4), -(-(quartile + 1) * num_steps // 4)


def per_quartile(values: torch.Tensor, quartiles: torch.Tensor) -> list[float | None]:
    """Mean of ``values`` within each of the four quartiles (None for an empty one)."""
    return [float(values[quartiles == q].mean()) if bool((quartiles == q).any()) else None for q in range(4)]


class ClassifierStats:
    """Collects per-example (t, loss, correct) rows and per-step norms; ``flush`` turns them into one record.

    Args:
        num_steps: T of the training noise, or None for a clean classifier (no quartiles).
    """

    def __init__(self, num_steps: int | None) -> None:
        self.num_steps = num_steps
        self.start_time = self.interval_start = time.monotonic()
        self._reset()

    def _reset(self) -> None:
        self.rows: list[torch.Tensor] = []
        self.grad_norms: list[torch.Tensor] = []
        self.lr = 0.0

    def add(self, rows: torch.Tensor) -> None:
        """Rows (B, 3) of (t, cross-entropy in nats, 1 if the arg-max was the label) for the step's examples."""
        self.rows.append(rows.detach().cpu())

    def add_step(self, grad_norm: torch.Tensor, lr: float) -> None:
        self.grad_norms.append(grad_norm.detach())
        self.lr = lr

    def progress_fields(self) -> str:
        """The progress bar's text: the last step's loss and accuracy."""
        if not self.rows:
            return ""
        last = self.rows[-1]
        return f"loss {float(last[:, 1].mean()):.3f} acc {float(last[:, 2].mean()):.2f}"

    def flush(self, step: int, images_seen: int) -> dict[str, Any]:
        """The interval's record: loss (nats) and accuracy of the training batches, per quartile when noisy."""
        now = time.monotonic()
        rows = torch.cat(self.rows).double()
        loss, correct = rows[:, 1], rows[:, 2]
        quartiles = noise_quartile(rows[:, 0], self.num_steps) if self.num_steps else None
        record: dict[str, Any] = {
            "step": step,
            "images_seen": images_seen,
            "loss": float(loss.mean()),
            "acc": float(correct.mean()),
            "loss_q": per_quartile(loss, quartiles) if quartiles is not None else None,
            "acc_q": per_quartile(correct, quartiles) if quartiles is not None else None,
            "lr": self.lr,
            "grad_norm": float(torch.stack(self.grad_norms).float().mean()),
            "img_per_s": len(rows) / max(now - self.interval_start, 1e-9),
            "seconds": now - self.start_time,
        }
        self.interval_start = now
        self._reset()
        return record
