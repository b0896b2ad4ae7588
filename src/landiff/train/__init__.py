"""Training: configs and recipes, the diffusion and DCGAN loops, checkpoints and resume, loading a run.

:func:`train` dispatches on ``config.model``: ``"diffusion"`` → :func:`train_diffusion`,
``"gan"`` → :func:`train_gan`; both share the run directory, checkpoint and resume machinery.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from landiff.train.components import TrainState
from landiff.train.config import RECIPES, DiffusionConfig, GANConfig, OptimConfig, TrainConfig, recipe
from landiff.train.diffusion_trainer import train as train_diffusion
from landiff.train.gan_trainer import train_gan
from landiff.train.run import LoadedRun, load_run


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    device: str | None = None,
    restart: bool = False,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
) -> TrainState:
    """Trains (or resumes) the model family named by ``config.model``; returns the final counters.

    Args:
        config: the resolved configuration (see :func:`landiff.train.recipe`).
        run_dir: where config.json, stats.jsonl, checkpoints/ and samples/ live.
        device: ``cpu``/``cuda``/…; default CUDA when available.
        restart: move an existing run aside and start over.
        log: where one-line messages go.
        stop_after: stop (with a checkpoint) after this many steps in this call; for tests of resume.
    """
    loop = train_gan if config.model == "gan" else train_diffusion
    return loop(config, run_dir, device=device, restart=restart, log=log, stop_after=stop_after)


__all__ = [
    "RECIPES",
    "DiffusionConfig",
    "GANConfig",
    "LoadedRun",
    "OptimConfig",
    "TrainConfig",
    "TrainState",
    "load_run",
    "recipe",
    "train",
    "train_diffusion",
    "train_gan",
]
