"""The run directory: what ``landiff train`` writes and every other command reads.

A run directory holds ``config.json`` (:mod:`landiff.runs.config`), ``stats.jsonl`` and the
lock (:mod:`landiff.runs.run_dir`), ``checkpoints/step-*.safetensors``
(:mod:`landiff.runs.checkpoint`), ``classes.json`` and the samples and metrics the other commands
add. Every file is written atomically (:mod:`landiff.runs.files`). :func:`load_run` turns one
into the networks a sampler or a metric needs (:mod:`landiff.runs.load`, built by
:mod:`landiff.runs.models`). This package sits below ``train``, ``metrics``, ``report`` and the
workflows: reading a run never imports the trainer (docs/architecture.md).
"""

from landiff.runs.checkpoint import TrainState
from landiff.runs.config import ClassifierConfig, DiffusionConfig, GANConfig, OptimConfig, TrainConfig
from landiff.runs.load import LoadedRun, load_run, refuse_classifier

__all__ = ["ClassifierConfig", "DiffusionConfig", "GANConfig", "LoadedRun", "OptimConfig", "TrainConfig", "TrainState",
           "load_run", "refuse_classifier"]
