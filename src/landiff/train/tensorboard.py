"""TensorBoard event files of a training run (``landiff train --tensorboard``; the ``tensorboard`` extra).

``stats.jsonl`` stays the run's record; this is a second view of the same numbers, written by rank 0
into ``RUN/tensorboard/`` through :class:`torch.utils.tensorboard.SummaryWriter`:

- every number of every stats record, as a scalar at the record's step, under the record's own key
  (``loss``, ``lr``, ``grad_norm``, ``img_per_s``, ``loss_d`` …); a list becomes one tag per entry
  (``loss_q/0`` … ``loss_q/3``: the loss in the timestep quartiles, lowest t first) and a null is
  left out, so what is plotted is exactly what the line holds (:func:`scalars`);
- each preview grid (``samples/step-N.png``) as the image ``preview`` at its step;
- the resolved config (what ``config.json`` holds) as the text ``config`` at the step it starts from.

The writer is opened with ``purge_step`` = the resume step + 1: TensorBoard then hides the points an
interrupted invocation logged after its last checkpoint (the steps the resume trains again, whose
stats lines :func:`~landiff.train.loop_common.resume_state` drops), so the step axis continues
without duplicates. Nothing here reads or changes the training state or any random stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from landiff.errors import UserError

INSTALL = "pip install 'landiff[tensorboard]'"
FOLDER = "tensorboard"  # RUN/tensorboard


def summary_writer() -> type:
    """torch's SummaryWriter, imported on first use (so a run without --tensorboard never pays for the
    import), or the one-line :class:`UserError` naming the fix when the tensorboard package cannot be imported."""
    try:  # optional: the tensorboard extra; without it --tensorboard is refused
        from torch.utils.tensorboard import SummaryWriter
    except Exception as err:  # noqa: BLE001 - a missing or broken install disables --tensorboard only, never training
        text = str(err).strip().splitlines()[0] if str(err).strip() else "no message"
        why = ("it is not installed" if isinstance(err, ModuleNotFoundError)
               else f"importing it failed ({type(err).__name__}: {text})")
        raise UserError(f"--tensorboard needs the tensorboard package and {why}: {INSTALL}, "
                        "or train without --tensorboard") from None
    return SummaryWriter


def require_tensorboard() -> None:
    """Refuses ``--tensorboard`` before any training when the package cannot be imported (see :func:`summary_writer`)."""
    summary_writer()


def scalars(record: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """(tag, value) of every number in a stats record but its ``step`` (the axis); lists and dicts are
    flattened as ``key/index`` and ``key/name``; nulls, strings and booleans are left out."""
    for key, value in record.items():
        tag = f"{prefix}{key}"
        if not prefix and key == "step":
            continue
        if isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        if isinstance(value, (int, float)):
            yield tag, float(value)
        elif isinstance(value, (list, tuple)):
            yield from scalars({str(i): item for i, item in enumerate(value)}, f"{tag}/")
        elif isinstance(value, dict):
            yield from scalars({str(k): item for k, item in value.items()}, f"{tag}/")


def config_text(config: dict[str, Any]) -> str:
    """The config as the text plugin shows it: the JSON of ``config.json`` as a Markdown code block."""
    return "\n".join("    " + line for line in json.dumps(config, indent=2).splitlines())


class TensorBoardLog:
    """One invocation's writer into ``RUN/tensorboard/`` (rank 0 only: see :func:`open_tensorboard`)."""

    def __init__(self, root: Path, resume_step: int) -> None:
        require_tensorboard()
        self.folder = Path(root) / FOLDER
        # Every event at or after resume_step + 1 in the earlier files is dropped by TensorBoard's reader.
        self.writer = summary_writer()(log_dir=str(self.folder), purge_step=resume_step + 1)

    def config(self, config: dict[str, Any], step: int) -> None:
        self.writer.add_text("config", config_text(config), global_step=step)
        self.writer.flush()

    def stats(self, record: dict[str, Any]) -> None:
        """Every scalar of one stats.jsonl record at its step; flushed, so a killed run loses nothing logged."""
        step = int(record["step"])
        for tag, value in scalars(record):
            self.writer.add_scalar(tag, value, global_step=step)
        self.writer.flush()

    def preview(self, path: Path, step: int) -> None:
        """The grid written to ``path`` (the PNG itself, read back) as the image ``preview``."""
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        self.writer.add_image("preview", pixels, global_step=step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_tensorboard(root: Path, config: dict[str, Any], resume_step: int) -> TensorBoardLog:
    """The writer of an invocation that resumes from ``resume_step`` (−1: a fresh run), with the config logged."""
    log = TensorBoardLog(root, resume_step)
    log.config(config, max(resume_step, 0))
    return log
