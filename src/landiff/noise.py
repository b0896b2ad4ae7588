"""Per-sample random streams: image k depends only on its own seed (as EDM's sampler does).

One CPU ``torch.Generator`` per sample draws that sample's x_T and every noise injection after it,
so a seed gives the same image whatever the batch size, the order of the seeds, the number of
devices or the device itself (noise is always drawn on the CPU, then moved).

Example::

    x_T, noise = initial_noise([0, 1, 2, 3], (3, 64, 64), device="cuda")
    images = ddpm_sample(model, diffusion, x_T, timesteps, noise=noise)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from landiff.errors import UserError


class SampleNoise:
    """Independent N(0, I) draws for each sample of a batch, one seeded CPU generator per sample.

    Args:
        seeds: one integer seed per sample; the batch size is ``len(seeds)``.
        device: where the drawn tensors are placed.
        dtype: floating dtype of the drawn tensors (drawn in float32 on the CPU, then cast).
    """

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        seeds = [int(seed) for seed in seeds]
        if not seeds:
            raise UserError("no seeds given: pass at least one seed per image to sample (--seed)")
        if any(seed < 0 for seed in seeds):
            raise UserError(f"seeds must be non-negative integers, got {min(seeds)} (--seed)")
        self.seeds = seeds
        self.device = torch.device(device)
        self.dtype = dtype
        self._generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]

    @property
    def batch_size(self) -> int:
        return len(self.seeds)

    def randn(self, *shape: int) -> Tensor:
        """Draws one standard normal tensor per sample from that sample's own generator.

        Args:
            shape: the per-sample shape, e.g. ``(C, H, W)``.

        Returns:
            (B, *shape) tensor on ``device``; row k comes from generator k only.
        """
        rows = [torch.randn(shape, generator=generator, dtype=torch.float32) for generator in self._generators]
        return torch.stack(rows).to(device=self.device, dtype=self.dtype)

    def check_batch(self, x: Tensor) -> None:
        """Raises if ``x`` does not have one row per seed (a programming error, not a user one)."""
        if x.shape[0] != self.batch_size:
            raise ValueError(f"noise has {self.batch_size} seeds but the batch has {x.shape[0]} samples")


def initial_noise(
    seeds: Sequence[int], shape: Sequence[int], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[Tensor, SampleNoise]:
    """Draws x_T ~ N(0, I) per seed and returns it with the streams that continue after it.

    Args:
        seeds: one seed per sample.
        shape: per-sample shape ``(C, H, W)``.
        device: where x_T and later noise go.
        dtype: floating dtype of x_T and later noise.

    Returns:
        ``(x_T, noise)``: x_T of shape (B, *shape), and the :class:`SampleNoise` whose generators
        have already produced x_T (pass it to samplers that inject noise).
    """
    noise = SampleNoise(seeds, device, dtype)
    return noise.randn(*shape), noise
