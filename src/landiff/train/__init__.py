"""Training: configs and recipes, the diffusion, DCGAN and noisy-classifier loops, checkpoints and resume, loading a run.

:func:`train` is the one entry point: it opens the run (:func:`~landiff.train.loop_common.training_session`)
and dispatches on ``config.model``: ``"diffusion"`` → :func:`~landiff.train.diffusion_trainer.diffusion_loop`,
``"gan"`` → :func:`~landiff.train.gan_trainer.gan_loop`, ``"classifier"`` →
:func:`~landiff.train.classifier_trainer.classifier_loop`; the loops share the run directory, checkpoint
and resume machinery. :func:`train_diffusion`, :func:`train_gan` and :func:`train_classifier` are
:func:`train` for one family.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from landiff.errors import UserError
from landiff.runs.checkpoint import TrainState
from landiff.runs.config import RECIPES, ClassifierConfig, DiffusionConfig, GANConfig, OptimConfig, TrainConfig, recipe
from landiff.runs.load import LoadedRun, load_run
from landiff.train.classifier_trainer import classifier_loop
from landiff.train.diffusion_trainer import diffusion_loop
from landiff.train.gan_trainer import gan_loop
from landiff.train.loop_common import training_session

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11 on


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    device: str | None = None,
    restart: bool = False,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
    tensorboard: bool = False,
) -> TrainState:
    """Trains (or resumes) the model family named by ``config.model``; returns the final counters.

    Args:
        config: the resolved configuration (see :func:`landiff.train.recipe`).
        run_dir: where config.json, stats.jsonl, checkpoints/ and samples/ live.
        device: ``cpu``/``cuda``/…; default CUDA (``cuda:LOCAL_RANK`` under torchrun) when available.
        restart: move an existing run aside and start over.
        log: where one-line messages go (rank 0 only).
        stop_after: stop (with a checkpoint) after this many steps in this call; for tests of resume.
        tensorboard: also write TensorBoard event files to ``RUN/tensorboard/`` (rank 0; needs the
            ``tensorboard`` extra, refused before training without it). A choice of this invocation, not
            part of the run's config: it changes no result, and a resume may turn it on or off.

    Raises:
        UserError: bad config or run directory; ``tensorboard`` without the tensorboard package.
        TrainingDiverged: ``max_consecutive_skips`` non-finite steps in a row (a :class:`UserError`).
    """
    loop = {"gan": gan_loop, "classifier": classifier_loop}.get(config.model, diffusion_loop)
    with training_session(config, run_dir, device=device, restart=restart, log=log, tensorboard=tensorboard) as session:
        return loop(session, stop_after)


class TrainOptions(TypedDict, total=False):
    """The keyword arguments of :func:`train`, for the per-family entry points that pass them on."""

    device: str | None
    restart: bool
    log: Callable[[str], None]
    stop_after: int | None
    tensorboard: bool


def train_diffusion(config: TrainConfig, run_dir: str | Path, **options: Unpack[TrainOptions]) -> TrainState:
    """:func:`train` for a diffusion config; refuses any other."""
    return train(_family(config, "diffusion", "train_diffusion"), run_dir, **options)


def train_gan(config: TrainConfig, run_dir: str | Path, **options: Unpack[TrainOptions]) -> TrainState:
    """:func:`train` for a DCGAN config (``--model gan``); refuses any other."""
    return train(_family(config, "gan", "train_gan"), run_dir, **options)


def train_classifier(config: TrainConfig, run_dir: str | Path, **options: Unpack[TrainOptions]) -> TrainState:
    """:func:`train` for a noisy-classifier config (``--model classifier``, e.g. ``recipe("classifier-32")``);
    refuses any other."""
    return train(_family(config, "classifier", "train_classifier"), run_dir, **options)


def _family(config: TrainConfig, model: str, caller: str) -> TrainConfig:
    """``config`` itself when it is of family ``model``; otherwise the :class:`UserError` naming ``caller``."""
    if config.model != model:
        kind = "GAN" if model == "gan" else model
        raise UserError(f"{caller} needs a {kind} config (--model {model}), got model {config.model!r}")
    return config


__all__ = [
    "RECIPES",
    "ClassifierConfig",
    "DiffusionConfig",
    "GANConfig",
    "LoadedRun",
    "OptimConfig",
    "TrainConfig",
    "TrainOptions",
    "TrainState",
    "load_run",
    "recipe",
    "train",
    "train_classifier",
    "train_diffusion",
    "train_gan",
]
