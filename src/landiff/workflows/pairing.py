"""Training a diffusion model and a DCGAN on the same data under one wall-clock budget.

Used by ``landiff compare --train`` and ``landiff demo``. Each family gets its share of the budget
as ``max_minutes`` (training time only, summed over resumes), so re-running continues both runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from landiff.runs.config import TrainConfig
from landiff.train import recipe, train


def diffusion_recipe(data: str, resolution: int, minutes: float, preset: str = "tiny") -> TrainConfig:
    """The tiny diffusion preset (or another diffusion ``preset``) with a time budget (steps set high:
    the clock stops it)."""
    config = recipe(preset)
    return dataclasses.replace(
        config, data=data, resolution=resolution, net=dataclasses.replace(config.net, resolution=resolution),
        train_steps=1_000_000, max_minutes=minutes, log_every=50, checkpoint_every=500, sample_every=1_000_000,
    )


def gan_recipe(data: str, resolution: int, minutes: float, preset: str = "dcgan") -> TrainConfig:
    """DCGAN with the paper's optimiser (or another GAN ``preset``) at ``resolution``, with a time budget."""
    config = recipe(preset)
    return dataclasses.replace(
        config, data=data, resolution=resolution, train_steps=1_000_000, max_minutes=minutes, log_every=50,
        checkpoint_every=500, sample_every=1_000_000,
    )


def train_pair(data: str, out: Path, minutes: float, resolution: int = 32,
               share: float = 0.7, log: Callable[[str], None] = print,
               diffusion_config: TrainConfig | None = None, gan_config: TrainConfig | None = None) -> list[Path]:
    """Trains ``out/diffusion`` and ``out/gan``; the diffusion run gets ``share`` of ``minutes``."""
    diffusion = diffusion_config or diffusion_recipe(data, resolution, minutes * share)
    gan = gan_config or gan_recipe(data, resolution, minutes * (1 - share))
    log(f"training diffusion ({diffusion.max_minutes:.1f} min) and DCGAN ({gan.max_minutes:.1f} min) on {data}")
    train(diffusion, out / "diffusion", log=log)
    train(gan, out / "gan", log=log)
    return [out / "diffusion", out / "gan"]
