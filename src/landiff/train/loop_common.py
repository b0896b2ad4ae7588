"""Pieces the training loops (diffusion, GAN, noisy classifier) share, so each loop can stay one readable function.

- :func:`training_session`: process group (torchrun), data, run directory (rank 0 writes, under
  a lock), signal handling, the TensorBoard writer with ``tensorboard`` (rank 0); yields a :class:`Session`.
- :func:`resume_state`: restores a checkpoint (if any) and drops stats lines the resume will redo.
- :func:`clipped_step`: unscale, clip, skip non-finite losses/gradients on every rank, step.
- :func:`set_learning_rate`: the step's learning rate on every parameter group.
- :func:`count_skip` / :func:`end_step`: the K-consecutive-skips guard; the per-step vote on
  stopping (signal, time budget) so all ranks leave the loop at the same step.
- :class:`Bookkeeping`: the end of every step, the same in both loops: skip guard, stop vote,
  progress, then log / checkpoint / preview (in that order) / stop.
- :func:`save_state`: gather every rank's RNG, rank 0 writes the checkpoint.
- :func:`preview_labels` / :func:`save_preview`: the fixed-seed ``samples/step-N.png`` grids;
  :func:`draw_preview`: a failed preview is one warning line, never the end of training (the
  loops write a step's checkpoint before its preview, so a preview can never cost a checkpoint).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from landiff.data import open_dataset
from landiff.data.folder import write_skipped_report
from landiff.data.prepared import is_prepared
from landiff.errors import TrainingDiverged, UnlabelledData, UserError
from landiff.grid import save_grid, to_uint8
from landiff.progress import Progress
from landiff.runs.checkpoint import TrainState, checkpoint_name, latest_checkpoint, load_checkpoint, save_checkpoint
from landiff.runs.config import TrainConfig, check_resume_horizon, finalize, read_config
from landiff.runs.files import atomic_write_text
from landiff.runs.run_dir import RunDir, RunLock, append_stats, open_run_dir, truncate_stats
from landiff.train.components import Checkpointable
from landiff.train.data_stream import keyed_seed
from landiff.train.distributed import Dist, all_max, any_rank, main_first, process_group, wrap_for_training
from landiff.train.ema import EMA
from landiff.train.precision import MIN_LOSS_SCALE, Precision
from landiff.train.schedule import learning_rate
from landiff.train.signals import GracefulStop
from landiff.train.tensorboard import TensorBoardLog, open_tensorboard, require_tensorboard


def memory_format(config: TrainConfig) -> torch.memory_format:
    """The layout a loop keeps its images and networks in: channels-last with ``--channels-last``."""
    return torch.channels_last if config.channels_last else torch.contiguous_format


@dataclass
class LoopRun:
    """What every loop's run holds first: its config and device, and the memory layout they give."""

    config: TrainConfig
    device: torch.device

    @property
    def memory_format(self) -> torch.memory_format:
        return memory_format(self.config)


@dataclass
class OneNetRun(LoopRun):
    """A loop that trains one network (diffusion, classifier): the network, its EMA and optimiser, and
    how this rank calls it (``forward``: the network; after :meth:`wrap`, DDP-wrapped and maybe compiled)."""

    model: torch.nn.Module
    ema: EMA
    optimizer: torch.optim.Optimizer
    forward: Callable[..., torch.Tensor] = field(init=False)
    ddp: DistributedDataParallel | None = field(default=None, init=False)  # set by wrap() under torchrun

    def __post_init__(self) -> None:
        self.forward = self.model

    def wrap(self, session: Session) -> None:
        """DistributedDataParallel under torchrun, then torch.compile (:func:`wrap_for_training`)."""
        self.ddp, self.forward = wrap_for_training(self.model, session.dist, self.device, self.config.compile)


def _quiet(_: str) -> None:
    pass


class _Discard:
    """A text stream that drops everything (progress output of ranks other than 0)."""

    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


@dataclass
class Session:
    """One invocation of a trainer: its finalised config, data, run directory, ranks and device.

    ``log`` prints on rank 0 only; ``stop`` records a SIGTERM/SIGINT until the loop acts on it;
    ``step_start`` is the clock reading at the end of the previous step (see :func:`end_step`);
    ``board`` is the TensorBoard writer (``--tensorboard``, rank 0 only), fed by :func:`log_stats` and
    :func:`draw_preview`.
    """

    config: TrainConfig
    dataset: Dataset
    run: RunDir
    dist: Dist
    device: torch.device
    log: Callable[[str], None]
    stop: GracefulStop
    step_start: float = 0.0
    board: TensorBoardLog | None = None

    def start_clock(self) -> None:
        """Starts timing the first step of this invocation (call right before the loop)."""
        self.step_start = time.monotonic()

    def progress(self, state: TrainState) -> Progress:
        """The training progress line (silent on ranks other than 0); its ETA respects --minutes."""
        stream = None if self.dist.is_main else _Discard()
        budget = self.config.max_minutes * 60 - state.seconds if self.config.max_minutes else None
        return Progress(self.config.train_steps, "train", start=state.step, stream=stream, unit="step",  # type: ignore[arg-type]
                        time_left=budget)

    def last_step(self, state: TrainState, stop_after: int | None) -> int:
        """Where this invocation stops: ``train_steps``, or ``stop_after`` steps from now."""
        return self.config.train_steps if stop_after is None else min(self.config.train_steps, state.step + stop_after)


@contextmanager
def training_session(
    config: TrainConfig, run_dir: str | Path, *, device: str | None, restart: bool, log: Callable[[str], None],
    tensorboard: bool = False,
) -> Iterator[Session]:
    """Sets up one trainer invocation and tears it down (lock released, process group left, writer closed).

    Rank 0 alone opens (and maybe restarts) the run directory and writes config.json and the
    data reports; every rank learns the checkpoint to resume from through a collective, so the
    ranks agree even when a shared file system shows them slightly different listings. With
    ``tensorboard``, a missing package is refused before anything else, and rank 0 opens the writer.
    """
    with ExitStack() as stack:
        dist, dev = stack.enter_context(process_group(device))
        if tensorboard:
            main_first(require_tensorboard, dist)
        say = log if dist.is_main else _quiet
        dataset = open_training_data(config, dist)
        config = finalize(config, num_classes=len(dataset_classes(dataset)), num_images=len(dataset))  # type: ignore[arg-type]
        root = Path(run_dir)
        lock = RunLock(root)
        stack.callback(lock.release)

        def open_on_main() -> RunDir:
            lock.acquire()
            if not restart and (root / "config.json").is_file():  # before the generic list of differences
                check_resume_horizon(read_config(root / "config.json"), config)
            run = open_run_dir(root, config, restart=restart)
            describe_data(dataset, run, say)
            return run

        run = main_first(open_on_main, dist)
        resume_step = int(all_max([_step_of(run.resume_from) if run is not None else -1])[0])
        resume_from = root / "checkpoints" / checkpoint_name(resume_step) if resume_step >= 0 else None
        session = Session(config, dataset, RunDir(root, resume_from), dist, dev, say, GracefulStop())
        if tensorboard:
            session.board = main_first(lambda: open_tensorboard(root, config.to_dict(), resume_step), dist)
            if session.board is not None:
                stack.callback(session.board.close)
                say(f"tensorboard: event files in {session.board.folder}; view with tensorboard --logdir {session.board.folder}")
        stack.enter_context(session.stop)
        yield session


def data_cache_dir() -> Path | None:
    """Where image folders are cached as prepared arrays: ``$LANDIFF_DATA_CACHE`` (``off`` disables),
    else ``~/.cache/landiff/prepared``. A cache is reused only while its manifest matches the folder."""
    value = os.environ.get("LANDIFF_DATA_CACHE")
    if value is not None:
        return None if value.strip().lower() in ("", "off", "0", "none") else Path(value)
    return Path.home() / ".cache" / "landiff" / "prepared"


def open_training_data(config: TrainConfig, dist: Dist) -> Dataset:
    """The run's dataset; an image folder goes through the automatic prepared cache (decoded once,
    reused while the folder is unchanged). Rank 0 builds or refreshes the cache before the others read it."""
    cache = data_cache_dir()
    folder = config.data != "synthetic" and Path(config.data).is_dir() and not is_prepared(Path(config.data))

    def open_(cache_dir: Path | None) -> Dataset:
        return open_dataset(config.data, config.resolution, class_cond=config.class_cond, flip=config.flip,
                            seed=config.seed, synthetic_n=config.synthetic_n, cache_dir=cache_dir)

    try:
        if not folder or cache is None:
            return open_(None)
        if dist.world > 1:
            main_first(lambda: open_(cache), dist)
        return open_(cache)
    except UnlabelledData as err:
        if config.model != "classifier":
            raise
        raise UserError(f"--model classifier needs labelled data and {err.reason}: put each class's images in its own "
                        "subfolder (DATA/<class>/image.png) or prepare them with --class-cond, or train on --data "
                        "synthetic") from None


def _step_of(path: Path | None) -> int:
    return -1 if path is None else int(path.name.split("-")[1].split(".")[0])


def seed_rank(seed: int, rank: int) -> None:
    """Seeds the global RNGs differently on each rank, from (seed, rank): torch (dropout; CPU and
    CUDA), Python's ``random`` and NumPy's legacy one, so a fresh run is reproducible and a resumed
    one restores exactly what an uninterrupted one would hold."""
    value = keyed_seed(seed, "rank", rank)
    torch.manual_seed(value)
    random.seed(value)
    np.random.seed(value % 2**32)


def dataset_classes(dataset: Dataset) -> list[str]:
    """The dataset's class names (every dataset :func:`landiff.data.open_dataset` returns has them; ``[]``
    when unconditional)."""
    classes: list[str] = getattr(dataset, "classes", [])
    return classes


def describe_data(dataset: Dataset, run: RunDir, log: Callable[[str], None]) -> None:
    """Saves the class mapping and, for folders, the skipped-files report; logs the summary line."""
    if classes := dataset_classes(dataset):
        mapping = {name: index for index, name in enumerate(classes)}
        atomic_write_text(run.root / "classes.json", json.dumps(mapping, indent=2) + "\n")
    summary = getattr(dataset, "summary", None)
    if summary is not None:
        log(f"data: {write_skipped_report(summary, run.root)}")
    else:
        log(f"data: {len(dataset)} images")  # type: ignore[arg-type]


def resume_state(parts: Checkpointable, session: Session) -> TrainState:
    """Loads the session's checkpoint (if any) into ``parts`` on every rank (fresh counters when none).

    Stats lines logged after the checkpoint's step are dropped (rank 0): the resumed run logs them again.
    """
    state = TrainState()
    run = session.run
    if run.resume_from is not None:
        tensors, meta = load_checkpoint(run.resume_from)
        state = parts.load_checkpoint(tensors, meta, session.dist, source=str(run.resume_from))
        session.log(f"resumed from {run.resume_from} (step {state.step}, {state.images_seen} images seen)")
    if session.dist.is_main:
        truncate_stats(run.stats, state.step)
    return state


def clipped_step(
    optimizer: torch.optim.Optimizer,
    params: Iterable[torch.nn.Parameter],
    precision: Precision,
    max_norm: float,
    loss: torch.Tensor | None = None,
) -> tuple[torch.Tensor, bool]:
    """One guarded optimiser update from the gradients already accumulated (and averaged) in ``params``.

    Args:
        max_norm: clip the global L2 gradient norm to this; 0 means no clipping (norm still measured).
        loss: the loss the gradients came from; a non-finite value also skips the update.

    Returns:
        (pre-clip gradient norm, whether the update was applied). A non-finite loss or norm on *any*
        rank skips the update on every rank (the decision is all-reduced, so ranks never diverge),
        so a NaN/Inf never reaches the weights; gradients are zeroed either way.
    """
    precision.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm or float("inf"))
    finite = torch.isfinite(grad_norm)
    if loss is not None:
        finite = finite & torch.isfinite(loss.detach()).all()
    applied = not any_rank(not bool(finite))
    if applied:
        precision.step(optimizer)
    elif precision.scaler is not None:
        precision.scaler.update()  # lower the fp16 loss scale after an overflow …
        if precision.scaler.get_scale() < MIN_LOSS_SCALE:
            precision.scaler.update(MIN_LOSS_SCALE)  # … but never below the floor
    optimizer.zero_grad(set_to_none=True)
    return grad_norm, applied


def count_skip(state: TrainState, skipped: bool, session: Session) -> None:
    """Counts a skipped step; stops the run after ``max_consecutive_skips`` of them in a row.

    Raises:
        TrainingDiverged: naming the steps and the last good checkpoint (the same on every rank).
    """
    if not skipped:
        state.consecutive_skips = 0
        return
    state.skipped_steps += 1
    state.consecutive_skips += 1
    limit = session.config.max_consecutive_skips
    session.log(f"step {state.step}: non-finite loss or gradient (NaN/Inf); update skipped "
                f"({state.consecutive_skips} in a row, stop at {limit})")
    if state.consecutive_skips >= limit:
        last = latest_checkpoint(session.run.checkpoints)
        raise TrainingDiverged(
            f"training diverged: steps {state.step - limit + 1}-{state.step} all had a non-finite loss or gradient; "
            f"last good checkpoint: {last or 'none yet'}. Lower --lr, raise --grad-clip or --warmup, use "
            f"--precision fp32, or allow more with --max-skips"
        )


def end_step(state: TrainState, session: Session) -> bool:
    """Adds the step's wall-clock (since ``session.step_start``) to ``state.seconds`` and votes on
    stopping; a collective.

    Returns:
        Whether to stop now because of a signal on any rank. The clock is the maximum over ranks,
        so the time budget ends the run at the same step on all of them.
    """
    now = time.monotonic()
    signalled, seconds = all_max([float(session.stop.requested), state.seconds + now - session.step_start])
    state.seconds = seconds
    session.step_start = now
    return signalled > 0.5


def save_state(parts: Checkpointable, state: TrainState, session: Session) -> Path | None:
    """Writes a checkpoint of every rank's state (a collective); rank 0 writes, all learn if it failed.

    Raises:
        UserError: the write failed (disk full, permissions, …); the previous checkpoint is intact.
    """
    tensors, meta = parts.to_checkpoint(state, session.config, session.dist)
    folder, keep = session.run.checkpoints, session.config.keep_checkpoints

    def write() -> Path:
        try:
            return save_checkpoint(folder, state.step, tensors, meta, keep)
        except OSError as err:
            raise UserError(
                f"could not save the step-{state.step} checkpoint in {folder} ({err}); the previous one "
                f"({latest_checkpoint(folder) or 'none'}) is intact: fix the cause and re-run to resume"
            ) from None

    return main_first(write, session.dist)


def log_stats(record: dict, session: Session) -> None:
    """Appends one stats.jsonl record (rank 0), and gives the same record to TensorBoard with ``--tensorboard``."""
    if session.dist.is_main:
        append_stats(session.run.stats, record)
        if session.board is not None:
            session.board.stats(record)


def stopped_message(state: TrainState, session: Session) -> str:
    """What the log says when a signal stopped the run."""
    return (f"stopped by {session.stop.signal_name or 'a signal on another rank'} at step {state.step}; "
            f"checkpoint saved in {session.run.checkpoints}; re-run the same command to resume")


def preview_labels(count: int, num_classes: int, device: torch.device) -> torch.Tensor | None:
    """Labels of preview image k: k mod num_classes (None for an unconditional run)."""
    if not num_classes:
        return None
    return torch.arange(count, device=device) % num_classes


def draw_preview(draw: Callable[[], Path], step: int, session: Session) -> Path | None:
    """Runs ``draw`` (rank 0, after the step's checkpoint); a failure is logged as one warning line.

    A preview is a by-product: whatever stops it (a bug, out of memory, a full disk) must not stop
    the training it illustrates. Returns the grid's path, None when it failed. With ``--tensorboard``
    the grid also goes to TensorBoard as the image ``preview`` at ``step``.
    """
    try:
        path = draw()
    except Exception as err:  # noqa: BLE001 - any failure; Ctrl-C (KeyboardInterrupt) still propagates
        reason = str(err).strip().splitlines()[0] if str(err).strip() else "no message"
        session.log(f"warning: step {step}: preview grid not written ({type(err).__name__}: {reason}); training continues")
        return None
    if session.board is not None:
        session.board.preview(path, step)
    return path


def save_preview(images: torch.Tensor, run: RunDir, step: int) -> Path:
    """Writes (N, C, H, W) images in [−1, 1] as the grid ``samples/step-N.png``; returns its path."""
    path = run.samples / f"step-{step}.png"
    save_grid(to_uint8(images), path)
    return path


def out_of_time(max_minutes: float, state: TrainState) -> bool:
    """True once the run's summed training time has reached its budget (0 = no budget)."""
    return max_minutes > 0 and state.seconds >= max_minutes * 60


def set_learning_rate(optimizers: Iterable[torch.optim.Optimizer], config: TrainConfig, state: TrainState) -> float:
    """Sets the learning rate of step ``state.step`` on every parameter group; returns it.

    The schedule runs over the decay horizon stored in the run (:mod:`landiff.train.schedule`), so a
    resume continues the same curve.
    """
    lr = learning_rate(config.optim, state.step, state.seconds)
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = lr
    return lr


@dataclass
class Bookkeeping:
    """The end of every step of a training loop (see :meth:`finish_step`), wired to one loop's statistics.

    ``status()`` is the progress bar's text after each step; ``flush(step, images_seen)`` turns the
    interval's statistics into a stats.jsonl record and ``summary(record)`` into the line logged with
    it; ``preview(step)`` writes ``samples/step-N.png`` (called on rank 0 only, so no collectives).
    ``flush_due(step)`` asks for a record at steps besides every ``log_every``-th and the last (the
    classifier's held-out evaluations); it must answer the same on every rank.
    """

    session: Session
    parts: Checkpointable
    progress: Progress
    last_step: int
    status: Callable[[], str]
    flush: Callable[[int, int], dict[str, Any]]
    summary: Callable[[dict[str, Any]], str]
    preview: Callable[[int], Path]
    flush_due: Callable[[int], bool] | None = None

    def finish_step(self, state: TrainState, *, skipped: bool) -> bool:
        """Bookkeeping after step ``state.step`` (already counted); returns whether the loop must stop now.

        In order: the skip guard (:func:`count_skip`, may raise), the stop vote and clock
        (:func:`end_step`, a collective), the progress bar, then at the intervals and on the last
        step: the stats record, the checkpoint (a collective), the preview — after the checkpoint,
        so a failed preview (one warning line, :func:`draw_preview`) never costs it — and the stop
        message. Every rank takes the same branches, so the collectives match across ranks.
        """
        session, config = self.session, self.session.config
        count_skip(state, skipped, session)
        signalled = end_step(state, session)
        self.progress.update(state.step, self.status())
        final = state.step == self.last_step or out_of_time(config.max_minutes, state) or signalled
        if state.step % config.log_every == 0 or final or (self.flush_due is not None and self.flush_due(state.step)):
            record = self.flush(state.step, state.images_seen)
            record.update(seconds=state.seconds, skipped_steps=state.skipped_steps)
            log_stats(record, session)
            self.progress.log(self.summary(record))
        if state.step % config.checkpoint_every == 0 or final:
            save_state(self.parts, state, session)
        preview_due = state.step % config.sample_every == 0 or (final and not signalled)
        if config.preview_count and preview_due and session.dist.is_main:
            step = state.step
            draw_preview(lambda: self.preview(step), step, session)
        if signalled:
            session.log(stopped_message(state, session))
        return signalled
