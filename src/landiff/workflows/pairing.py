"""Training a diffusion model and GANs on the same data under one wall-clock budget.

Used by ``landiff compare --train`` (:func:`train_entrants`) and ``landiff demo`` (the recipes).
``compare --train`` gives every entrant the same share of the budget as ``max_minutes`` (training
time only, summed over resumes), so re-running continues every run; each entrant's recipe records
how many configurations were tried to choose it (:data:`landiff.runs.config.TUNING`), so a reader
can see that both families had the same chance to be tuned.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
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


DEFAULT_GANS = ("dcgan", "gan-strong")


def train_entrants(data: str, out: Path, minutes: float, resolution: int = 32,
                   gans: Sequence[str] = DEFAULT_GANS, log: Callable[[str], None] = print) -> list[Path]:
    """Trains ``out/diffusion`` (the ``tiny`` recipe) and ``out/<preset>`` for each GAN preset, each for
    the same ``minutes / (1 + len(gans))`` of training time; returns the run directories."""
    share = minutes / (1 + len(gans))
    configs = {"diffusion": diffusion_recipe(data, resolution, share)}
    configs |= {preset: gan_recipe(data, resolution, share, preset=preset) for preset in gans}
    log(f"training {', '.join(configs)} on {data}: {share:.1f} min each")
    for name, config in configs.items():
        train(config, out / name, log=log)
    return [out / name for name in configs]
