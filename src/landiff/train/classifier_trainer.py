"""The noisy-classifier training loop, :func:`classifier_loop` (ADM, arXiv 2105.05233 §4): cross-entropy of
p(y | x_t, σ_t) on noisy training images; :func:`landiff.train.train` runs it for ``model="classifier"``.

    from landiff.train import recipe, train
    train(recipe("classifier-32"), "runs/clf")     # re-running resumes from runs/clf/checkpoints

    landiff train --run runs/clf --model classifier --minutes 10          # the same from the shell

Same run-directory contract as the diffusion and GAN loops (config.json, stats.jsonl, classes.json,
safetensors checkpoints with modules {"net"}, optimisers {"net"} and EMA {"net"}; exact resume of
weights, optimiser, RNG and data order; DDP under torchrun; the NaN guard). No previews: a classifier
draws nothing. Each training image at stream position p is noised at t ~ U{0..T−1} (drawn once per chunk)
with ε keyed by p, so N ranks with batch B compute what one process with batch N·B computes.

A seeded split of the data is held out (``classifier.holdout``; :mod:`landiff.train.classifier_heldout`)
and never streamed. Every ``classifier.eval_every`` steps and at the end, the accuracy of the EMA weights
(what :func:`~landiff.runs.load.load_run`'s ``ema_model`` holds, so what guidance uses) on it, per
noise-level quartile, goes into that step's stats.jsonl record; the last one also into
``RUN/classifier-summary.json``, keyed to its checkpoint by SHA-256.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from landiff.grid import from_uint8
from landiff.nets import NoisyClassifier
from landiff.runs.checkpoint import TrainState, checkpoint_name
from landiff.runs.config import TrainConfig
from landiff.runs.files import atomic_write_text
from landiff.runs.models import build_classifier
from landiff.train.classifier_heldout import (
    HeldoutResult,
    HoldoutSplit,
    NoiseLevels,
    TrainSubset,
    evaluate_heldout,
    holdout_split,
)
from landiff.train.classifier_stats import ClassifierStats, quartile_range
from landiff.train.components import Checkpointable, make_adamw
from landiff.train.data_stream import StreamBatch, batch_stream, example_noise, stream_order
from landiff.train.distributed import gather_cat
from landiff.train.ema import EMA
from landiff.train.loop_common import (
    Bookkeeping,
    OneNetRun,
    Session,
    clipped_step,
    dataset_classes,
    out_of_time,
    resume_state,
    seed_rank,
    set_learning_rate,
)
from landiff.train.precision import Precision

SUMMARY_NAME = "classifier-summary.json"


def classifier_loop(session: Session, stop_after: int | None) -> TrainState:
    """The classifier loop behind :func:`landiff.train.train`: resumes the session's run, trains to
    ``train_steps`` (or ``stop_after`` more steps, or the ``--minutes`` budget); returns the counters."""
    config, dev, dist = session.config, session.device, session.dist
    torch.manual_seed(config.seed)  # same initial weights on every rank
    run = _build(config, dev)
    seed_rank(config.seed, dist.rank)  # dropout differs per rank
    state = resume_state(run.parts, session)

    split = holdout_split(len(session.dataset), config.classifier.holdout_count(len(session.dataset)),  # type: ignore[arg-type]
                          config.seed)
    session.log(_describe(run, session, split))
    batches = batch_stream(TrainSubset(session.dataset, split.train), config.optim.batch, config.seed,
                           start=state.images_seen, num_workers=config.num_workers, rank=dist.rank, world=dist.world)
    run.wrap(session)
    stats = ClassifierStats(run.levels.num_steps if run.levels is not None else None)
    heldout = _HeldoutLog(run, session, split, state, session.last_step(state, stop_after))
    book = Bookkeeping(
        session, run.parts, session.progress(state), heldout.last_step,
        status=stats.progress_fields, flush=lambda step, seen: heldout.add_to(stats.flush(step, seen)),
        summary=_summary, preview=_no_preview, flush_due=heldout.due,
    )
    run.model.train()
    session.start_clock()
    while state.step < book.last_step and not out_of_time(config.max_minutes, state):
        lr = set_learning_rate([run.optimizer], config, state)
        chunk = next(batches)
        rows, loss = _train_batch(run, chunk)
        grad_norm, applied = clipped_step(run.optimizer, run.model.parameters(), run.precision, config.optim.grad_clip, loss)
        if applied:
            run.ema.update(run.model)
        state.step += 1
        state.images_seen += chunk.chunk_size
        stats.add(stream_order(gather_cat(rows), dist.world))
        stats.add_step(grad_norm, lr)
        if book.finish_step(state, skipped=not applied):
            break
    book.progress.close()
    heldout.write_summary(state)
    return state


@dataclass
class _ClassifierRun(OneNetRun):
    """Everything with state in a classifier run, and how this rank calls its network."""

    model: NoisyClassifier
    levels: NoiseLevels | None  # the training noise; None for a clean classifier
    precision: Precision
    parts: Checkpointable


def _build(config: TrainConfig, dev: torch.device) -> _ClassifierRun:
    """The classifier, its EMA and optimiser (in this order: the RNG), and the training noise."""
    model = build_classifier(config, dev)
    ema = EMA(model, config.ema_decay, warmup=config.ema_warmup)
    optimizer = make_adamw(model.parameters(), config.optim, dev)
    precision = Precision.create(config.precision, dev)
    parts = Checkpointable(modules={"net": model}, optimizers={"net": optimizer}, emas={"net": ema},
                           generators={}, precision=precision, extra={})
    return _ClassifierRun(config, dev, model, ema, optimizer, NoiseLevels.of(config.classifier), precision, parts)


def _describe(run: _ClassifierRun, session: Session, split: HoldoutSplit) -> str:
    """The log line that opens training: size, classes, device, precision, batch, split and noise."""
    config, world = run.config, session.dist.world
    params = sum(p.numel() for p in run.model.parameters()) / 1e6
    c = config.classifier
    noise = f"x_t at t ~ U{{0..{c.num_steps - 1}}} of the {c.schedule} schedule" if run.levels else "clean images"
    kind = "noisy classifier" if run.levels else "clean classifier"
    return (f"training {kind} {config.preset} ({params:.2f} M params, {config.net.num_classes} classes: "
            f"{', '.join(dataset_classes(session.dataset))}) on {run.device}, {run.precision.mode}; global batch "
            f"{config.optim.batch} per rank x {world} rank(s) = {config.optim.batch * world}; {len(split.train)} training "
            f"and {len(split.heldout)} held-out images; {noise}")


def _train_batch(run: _ClassifierRun, chunk: StreamBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward on this rank's share of one chunk; returns rows (B, 3) of (t, cross-entropy,
    correct) and the mean loss (its finiteness guards the optimiser step).

    t is drawn once per chunk (identically on every rank) and shared out by position; the noise of
    each example comes from its own position-keyed generator.
    """
    config, dev = run.config, run.device
    x0 = from_uint8(chunk.images).to(dev, memory_format=run.memory_format, non_blocking=True)
    y = chunk.labels.to(dev)
    if run.levels is None:  # a clean classifier: x0 at σ = 0
        t, x_t, sigma = torch.zeros(len(y), dtype=torch.long), x0, torch.zeros(len(y), device=dev)
    else:
        t = chunk.share(torch.randint(0, run.levels.num_steps, (chunk.chunk_size,), generator=chunk.chunk_generator(config.seed)))
        noise = example_noise(config.seed, chunk.positions.tolist(), x0.shape[1:])
        x_t, sigma = run.levels.noisy(x0, t, noise.to(dev, memory_format=run.memory_format))
    with run.precision.autocast():
        logits = run.forward(x_t, sigma).float()
    losses = F.cross_entropy(logits, y, reduction="none")
    loss = losses.mean()
    run.precision.scale(loss).backward()
    correct = (logits.detach().argmax(dim=1) == y).double()
    rows = torch.stack([t.double().to(dev), losses.detach().double(), correct], dim=1)
    return rows, loss.detach()


class _HeldoutLog:
    """When the held-out accuracy is measured (every ``eval_every`` steps and at the last step), adding
    it to that step's stats record, and the summary file of the last measurement."""

    def __init__(self, run: _ClassifierRun, session: Session, split: HoldoutSplit, state: TrainState,
                 last_step: int) -> None:
        self.run, self.session, self.split, self.state, self.last_step = run, session, split, state, last_step
        self.latest: tuple[int, HeldoutResult] | None = None

    def due(self, step: int) -> bool:
        """A held-out evaluation at ``step`` (the same answer on every rank)."""
        config = self.run.config
        return step % config.classifier.eval_every == 0 or step == self.last_step or out_of_time(config.max_minutes,
                                                                                                 self.state)

    def add_to(self, record: dict[str, Any]) -> dict[str, Any]:
        """``record`` with the held-out accuracy of the EMA weights when due (a collective then)."""
        step = record["step"]
        if self.due(step):
            run = self.run
            result = evaluate_heldout(run.ema.model, self.session.dataset, self.split.heldout, run.levels,
                                      seed=run.config.seed, batch=run.config.optim.batch, device=run.device,
                                      dist=self.session.dist, precision=run.precision)
            self.latest = (step, result)
            record.update(result.record())
        return record

    def write_summary(self, state: TrainState) -> Path | None:
        """``RUN/classifier-summary.json`` (rank 0) when the held-out accuracy was measured at the run's final step."""
        if self.latest is None or self.latest[0] != state.step or not self.session.dist.is_main:
            return None
        config, run_dir = self.run.config, self.session.run
        checkpoint = run_dir.checkpoints / checkpoint_name(state.step)
        levels, c = self.run.levels, config.classifier
        summary = {
            "step": state.step, "images_seen": state.images_seen, "checkpoint": str(checkpoint.relative_to(run_dir.root)),
            "checkpoint_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
            "weights": "ema", "noise": c.noise, "schedule": c.schedule if levels else None,
            "num_steps": c.num_steps if levels else None, "holdout": c.holdout, "train_n": len(self.split.train),
            "classes": dataset_classes(self.session.dataset), **self.latest[1].record(),
            "quartiles": _quartile_bounds(levels) if levels else None,
        }
        path = run_dir.root / SUMMARY_NAME
        atomic_write_text(path, json.dumps(summary, indent=2) + "\n")
        return path


def _quartile_bounds(levels: NoiseLevels) -> dict[str, list[list[float]]]:
    """[first, last] timestep of each quartile of the held-out evaluation, and the σ_t range it spans."""
    ranges = [quartile_range(q, levels.num_steps) for q in range(4)]
    sigmas = levels.sigmas.double()
    return {"t": [[low, high - 1] for low, high in ranges],
            "sigma": [[float(sigmas[low]), float(sigmas[high - 1])] for low, high in ranges]}


def _summary(record: dict[str, Any]) -> str:
    """The progress line logged with a stats record (with the held-out accuracy when measured)."""
    line = f"loss {record['loss']:.4f} acc {record['acc']:.3f} {record['img_per_s']:.1f} img/s"
    if "heldout_acc" in record:
        quartiles = record["heldout_acc_q"]
        line += f"; held-out acc {record['heldout_acc']:.3f}" + (
            " (t quartiles " + " ".join("-" if a is None else f"{a:.2f}" for a in quartiles) + ")" if quartiles else "")
    return line


def _no_preview(step: int) -> Path:
    raise RuntimeError("a classifier run draws no previews (validate() keeps preview_count at 0)")
