"""Noise schedules β_1..β_T (float64). Schedules may be added but never changed once shipped.

- ``linear``: DDPM §4 (β from 1e-4 to 0.02 at T = 1000), rescaled by 1000/T so any T gives the
  same ᾱ curve shape (Improved DDPM appendix; diffusers' DDPMScheduler does not rescale).
- ``cosine``: Improved DDPM eq. 17, ᾱ(t) = f(t)/f(0), f(t) = cos²(((t/T)+s)/(1+s)·π/2), s = 0.008,
  with β clipped to 0.999 to avoid the singularity at t = T.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np

from landiff.errors import UserError

ScheduleName = Literal["linear", "cosine"]
SCHEDULES: tuple[str, ...] = ("linear", "cosine")


def beta_schedule(name: ScheduleName, num_steps: int) -> np.ndarray:
    """Returns the forward-process variances for ``num_steps`` steps.

    Args:
        name: ``"linear"`` or ``"cosine"``.
        num_steps: T, the number of diffusion steps (≥ 1).

    Returns:
        float64 array of shape (T,), each value in (0, 1).
    """
    if num_steps < 1:
        raise UserError(f"number of diffusion steps must be >= 1, got {num_steps} (use --diffusion-steps 1000)")
    if name == "linear":
        if num_steps <= 20:
            raise UserError(
                f"the linear schedule needs T > 20 (its last beta is 20/T; T={num_steps} gives >= 1); "
                "use --schedule cosine, or train with more steps and respace at sampling time"
            )
        scale = 1000.0 / num_steps
        return np.linspace(scale * 1e-4, scale * 0.02, num_steps, dtype=np.float64)
    if name == "cosine":
        return _betas_from_alpha_bar(_cosine_alpha_bar, num_steps, max_beta=0.999)
    raise UserError(f"unknown noise schedule {name!r}; choose one of: {', '.join(SCHEDULES)} (--schedule)")


def _cosine_alpha_bar(u: float, s: float = 0.008) -> float:
    """f(u) of Improved DDPM eq. 17 at continuous time u = t/T in [0, 1] (not yet divided by f(0))."""
    return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2


def _betas_from_alpha_bar(alpha_bar: Callable[[float], float], num_steps: int, max_beta: float) -> np.ndarray:
    """β_t = 1 − ᾱ(t/T) / ᾱ((t−1)/T), clipped to ``max_beta``; f(0) cancels in the ratio."""
    betas = [
        min(1.0 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), max_beta)
        for i in range(num_steps)
    ]
    return np.asarray(betas, dtype=np.float64)
