"""Per-log-interval GAN statistics, kept as device tensors until the interval ends (no host syncs).

One ``stats.jsonl`` record per interval::

    {"step", "images_seen", "loss_d", "loss_g", "d_real", "d_fake", "lr", "img_per_s", "seconds"}

With ``--r1-gamma`` the record also holds ``r1``: the mean squared gradient norm E‖∇_x D(x)‖² on
real images over the interval's regularised updates.

``d_real`` / ``d_fake`` are the mean of sigmoid(D(x)) on real and generated batches as seen by the
discriminator step (before its update): ~0.5 both when D cannot tell them apart; d_real → 1 with
d_fake → 0 means D is winning (DCGAN practice for spotting a collapse).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class DiscriminatorStep:
    """Detached scalars of one discriminator update."""

    loss: torch.Tensor  # the D loss of --gan-loss (ns: softplus(−D(x)) + softplus(D(G(z))), nats)
    d_real: torch.Tensor  # mean sigmoid(D(x))
    d_fake: torch.Tensor  # mean sigmoid(D(G(z)))
    r1: torch.Tensor | None = None  # E‖∇D(x)‖² on the updates that apply the R1 penalty


class GANStatsAccumulator:
    """Collects D and G step scalars; :meth:`flush` turns an interval into one record."""

    def __init__(self) -> None:
        self.start_time = self.interval_start = time.monotonic()
        self._reset()

    def _reset(self) -> None:
        self.d_steps: list[DiscriminatorStep] = []
        self.g_losses: list[torch.Tensor] = []
        self.images = 0
        self.lr = 0.0

    def add_d(self, step: DiscriminatorStep, images: int) -> None:
        """One discriminator update on ``images`` real images."""
        self.d_steps.append(step)
        self.images += images

    def add_g(self, loss: torch.Tensor, lr: float) -> None:
        """One generator update: its loss softplus(−D(G(z))) (nats) and the LR used."""
        self.g_losses.append(loss)
        self.lr = lr

    def progress_fields(self) -> str:
        """``D <loss> G <loss>`` of the latest steps, for the progress line (syncs once)."""
        loss_d = float(self.d_steps[-1].loss) if self.d_steps else float("nan")
        loss_g = float(self.g_losses[-1]) if self.g_losses else float("nan")
        return f"D {loss_d:.3f} G {loss_g:.3f}"

    def flush(self, step: int, images_seen: int) -> dict[str, Any]:
        now = time.monotonic()

        def mean(values: list[torch.Tensor]) -> float:
            return float(torch.stack(values).float().mean()) if values else float("nan")

        record: dict[str, Any] = {
            "step": step,
            "images_seen": images_seen,
            "loss_d": mean([s.loss for s in self.d_steps]),
            "loss_g": mean(self.g_losses),
            "d_real": mean([s.d_real for s in self.d_steps]),
            "d_fake": mean([s.d_fake for s in self.d_steps]),
            "lr": self.lr,
            "img_per_s": self.images / max(now - self.interval_start, 1e-9),
            "seconds": now - self.start_time,
        }
        penalties = [s.r1 for s in self.d_steps if s.r1 is not None]
        if penalties:
            record["r1"] = mean(penalties)
        self.interval_start = now
        self._reset()
        return record
