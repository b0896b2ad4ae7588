"""Pieces both training loops (diffusion and GAN) share, so each loop can stay one readable function.

- :func:`describe_data`: writes ``classes.json`` / ``data-skipped.txt`` and logs the data summary.
- :func:`resume_state`: restores a checkpoint (if any) and drops stats lines the resume will redo.
- :func:`clipped_step`: unscale, clip, skip non-finite gradients, step, zero the gradients.
- :func:`preview_labels` / :func:`save_preview`: the fixed-seed ``samples/step-N.png`` grids.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch.utils.data import Dataset

from landiff.grid import save_grid, to_uint8
from landiff.train.checkpoint import load_checkpoint
from landiff.train.components import Checkpointable, TrainState
from landiff.train.files import atomic_write_text
from landiff.train.precision import Precision
from landiff.train.run_dir import RunDir, truncate_stats


def describe_data(dataset: Dataset, run: RunDir, log: Callable[[str], None]) -> None:
    """Saves the class mapping and, for folders, the skipped-files report; logs the summary line."""
    if getattr(dataset, "classes", None):
        mapping = {name: index for index, name in enumerate(dataset.classes)}  # type: ignore[attr-defined]
        atomic_write_text(run.root / "classes.json", json.dumps(mapping, indent=2) + "\n")
    summary = getattr(dataset, "summary", None)
    if summary is not None:
        from landiff.data.folder import write_skipped_report

        log(f"data: {write_skipped_report(summary, run.root)}")
    else:
        log(f"data: {len(dataset)} images")  # type: ignore[arg-type]


def resume_state(parts: Checkpointable, run: RunDir, log: Callable[[str], None]) -> TrainState:
    """Loads ``run.resume_from`` into ``parts`` (fresh counters when there is none).

    Stats lines logged after the checkpoint's step are dropped: the resumed run logs them again.
    """
    state = TrainState()
    if run.resume_from is not None:
        state = parts.load_checkpoint(*load_checkpoint(run.resume_from))
        log(f"resumed from {run.resume_from} (step {state.step}, {state.images_seen} images seen)")
    truncate_stats(run.stats, state.step)
    return state


def clipped_step(
    optimizer: torch.optim.Optimizer, params: Iterable[torch.nn.Parameter], precision: Precision, max_norm: float
) -> tuple[torch.Tensor, bool]:
    """One guarded optimiser update from the gradients already accumulated in ``params``.

    Args:
        max_norm: clip the global L2 gradient norm to this; 0 means no clipping (norm still measured).

    Returns:
        (pre-clip gradient norm, whether the update was applied). A non-finite norm skips the
        update, so a NaN/Inf gradient never reaches the weights; gradients are zeroed either way.
    """
    precision.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm or float("inf"))
    applied = bool(torch.isfinite(grad_norm))
    if applied:
        precision.step(optimizer)
    elif precision.scaler is not None:
        precision.scaler.update()  # lower the fp16 loss scale after an overflow
    optimizer.zero_grad(set_to_none=True)
    return grad_norm, applied


def preview_labels(count: int, num_classes: int, device: torch.device) -> torch.Tensor | None:
    """Labels of preview image k: k mod num_classes (None for an unconditional run)."""
    if not num_classes:
        return None
    return torch.arange(count, device=device) % num_classes


def save_preview(images: torch.Tensor, run: RunDir, step: int) -> Path:
    """Writes (N, C, H, W) images in [−1, 1] as the grid ``samples/step-N.png``; returns its path."""
    path = run.samples / f"step-{step}.png"
    save_grid(to_uint8(images), path)
    return path


def out_of_time(max_minutes: float, state: TrainState) -> bool:
    """True once the run's summed training time has reached its budget (0 = no budget)."""
    return max_minutes > 0 and state.seconds >= max_minutes * 60
