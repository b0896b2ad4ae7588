"""The diffusion training loop, :func:`diffusion_loop`: one function that reads top to bottom (EDM / nanoGPT
style), a handful of named steps per iteration; :func:`landiff.train.train` runs it for ``model="diffusion"``.

    from landiff.train import recipe, train
    train(recipe("tiny"), "runs/tiny")      # re-running resumes from runs/tiny/checkpoints

    torchrun --nproc_per_node=4 -m landiff -- train --run runs/tiny --preset tiny   # data-parallel (DDP)

Under torchrun the network is wrapped in DistributedDataParallel; ``--batch`` is per rank, so the
global batch is batch × ranks × accumulation. Each example's noise, timestep and label dropout
are keyed by its stream position (see :mod:`landiff.train.data_stream`), so N ranks with batch B
compute what one process with batch N·B computes, up to float summation order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from landiff.diffusion import EDMProcess, GaussianDiffusion, SigmaSampler, TimestepSampler, TrainingLosses, make_timestep_sampler
from landiff.grid import from_uint8
from landiff.runs.checkpoint import TrainState
from landiff.runs.config import TrainConfig
from landiff.runs.models import build_diffusion, build_edm_process, build_unet, sampling_network
from landiff.runs.posthoc_ema import POSTHOC_SIGMA_RELS, write_snapshot
from landiff.runs.run_dir import RunDir
from landiff.samplers import sample
from landiff.train.augment import apply_augmentations, draw_augmentations
from landiff.train.components import Checkpointable, make_adamw
from landiff.train.data_stream import StreamBatch, batch_stream, example_noise, stream_order
from landiff.train.distributed import Dist, gather_cat
from landiff.train.ema import EMA, PowerEMA
from landiff.train.loop_common import (
    Bookkeeping,
    OneNetRun,
    Session,
    clipped_step,
    out_of_time,
    preview_labels,
    resume_state,
    save_preview,
    seed_rank,
    set_learning_rate,
)
from landiff.train.precision import Precision
from landiff.train.stats import StatsAccumulator


def diffusion_loop(session: Session, stop_after: int | None) -> TrainState:
    """The diffusion loop behind :func:`landiff.train.train`: resumes the session's run, trains to
    ``train_steps`` (or ``stop_after`` more steps, or the ``--minutes`` budget); returns the counters."""
    config, dev, dist = session.config, session.device, session.dist
    torch.manual_seed(config.seed)  # same initial weights on every rank
    run = _build(config, dev)
    seed_rank(config.seed, dist.rank)  # dropout differs per rank
    state = resume_state(run.parts, session)

    global_batch = config.optim.batch * dist.world * config.optim.accum
    session.log(_describe(run, session, global_batch))
    batches = batch_stream(session.dataset, config.optim.batch, config.seed, start=state.images_seen,
                           num_workers=config.num_workers, rank=dist.rank, world=dist.world)
    run.wrap(session)
    stats = StatsAccumulator(run.diffusion.num_steps)
    progress = session.progress(state)
    book = Bookkeeping(
        session, run.parts, progress, session.last_step(state, stop_after),
        status=lambda: f"loss {stats.last_loss():.4f}", flush=stats.flush,
        summary=lambda record: f"loss {record['loss']:.4f} {record['img_per_s']:.1f} img/s",
        preview=lambda step: write_preview(sampling_network(config, run.ema.model), run.diffusion, config, session.run,
                                           step, dev),  # EMA: no collectives
    )
    run.model.train()
    session.start_clock()
    while state.step < book.last_step and not out_of_time(config.max_minutes, state):
        lr = set_learning_rate([run.optimizer], config, state)
        seen, objective = _micro_batches(run, batches, dist)
        grad_norm, applied = clipped_step(run.optimizer, run.model.parameters(), run.precision, config.optim.grad_clip, objective)
        _record_losses(run, stats, seen, applied)
        if applied:
            run.update_emas()
        state.step += 1
        state.images_seen += global_batch
        run.snapshot(session, state)
        stats.add_step(grad_norm, lr)
        if book.finish_step(state, skipped=not applied):
            break
    progress.close()
    return state


@dataclass
class _DiffusionRun(OneNetRun):
    """Everything with state in a diffusion run, and how this rank calls its network."""

    diffusion: GaussianDiffusion  # what the samplers walk (for EDM: its sampling table)
    process: GaussianDiffusion | EDMProcess  # what the loss comes from (the same object for the discrete process)
    timestep_sampler: TimestepSampler | SigmaSampler
    precision: Precision
    parts: Checkpointable
    posthoc: list[PowerEMA] = field(default_factory=list)  # EDM2's power EMAs (--posthoc-ema)

    def update_emas(self) -> None:
        self.ema.update(self.model)
        for power in self.posthoc:
            power.update(self.model)

    def snapshot(self, session: Session, state: TrainState) -> None:
        """Every ``--ema-snapshot-every`` steps, the power EMAs to ``RUN/ema-snapshots/`` (main rank; never rotated)."""
        if self.posthoc and state.step % self.config.ema_snapshot_every == 0 and session.dist.is_main:
            write_snapshot(session.run.root, state.step, self.posthoc[0].num_updates,
                           {power.sigma_rel: power.model.state_dict() for power in self.posthoc})

    def net(self, x_t: torch.Tensor, t: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        """The network's output in float32, under the run's autocast."""
        with self.precision.autocast():
            return self.forward(x_t, t, **kwargs).float()

    def sync(self, last_micro_batch: bool) -> contextlib.AbstractContextManager[Any]:
        """DDP all-reduces gradients on the last micro-batch only (accumulates locally before)."""
        return self.ddp.no_sync() if self.ddp is not None and not last_micro_batch else contextlib.nullcontext()


def _build(config: TrainConfig, dev: torch.device) -> _DiffusionRun:
    """The network, its EMA and optimiser, the diffusion and its timestep sampler (in this order: the RNG)."""
    model = build_unet(config, dev)
    ema = EMA(model, config.ema_decay, warmup=config.ema_warmup)
    posthoc = [PowerEMA(model, rel) for rel in POSTHOC_SIGMA_RELS] if config.posthoc_ema else []
    optimizer = make_adamw(model.parameters(), config.optim, dev)
    diffusion = build_diffusion(config)
    d = config.diffusion
    process: GaussianDiffusion | EDMProcess = build_edm_process(config) if d.formulation == "edm" else diffusion
    timestep_sampler: TimestepSampler | SigmaSampler = (
        SigmaSampler(process) if isinstance(process, EDMProcess) else
        make_timestep_sampler(d.timestep_sampler, diffusion.num_steps, diffusion.alphas_cumprod, d.p_mean, d.p_std)  # type: ignore[arg-type]
    )
    precision = Precision.create(config.precision, dev)
    parts = Checkpointable(
        modules={"net": model}, optimizers={"net": optimizer},
        emas={"net": ema, **{f"posthoc{i}": power for i, power in enumerate(posthoc)}},
        generators={}, precision=precision, extra={"timestep_sampler": timestep_sampler},
    )
    return _DiffusionRun(config, dev, model, ema, optimizer, diffusion, process, timestep_sampler, precision, parts,
                         posthoc)


def _describe(run: _DiffusionRun, session: Session, global_batch: int) -> str:
    """The log line that opens training: size, device, precision and how the global batch is made."""
    config, dist = run.config, session.dist
    params = sum(p.numel() for p in run.model.parameters()) / 1e6
    return (f"training {config.preset} ({params:.2f} M params) on {run.device}, {run.precision.mode}; global batch "
            f"{config.optim.batch} per rank x {dist.world} rank(s) x {config.optim.accum} accumulation = {global_batch}")


def _micro_batches(
    run: _DiffusionRun, batches: Iterator[StreamBatch], dist: Dist
) -> tuple[list[tuple[torch.Tensor, TrainingLosses]], torch.Tensor]:
    """Forward and backward over ``accum`` chunks; returns each chunk's (t, losses) from every rank,
    in stream order, and the summed objective (its finiteness guards the optimiser step)."""
    seen: list[tuple[torch.Tensor, TrainingLosses]] = []
    objective = torch.zeros((), device=run.device)
    accum = run.config.optim.accum
    for micro in range(accum):
        chunk = next(batches)
        with run.sync(micro == accum - 1):
            t, losses, loss = _micro_batch(chunk, run.net, run.process, run.timestep_sampler, run.config, run.device,
                                           run.memory_format)
            run.precision.scale(loss).backward()
        objective = objective + loss.detach()
        seen.append(_gather(t, losses, dist.world))
    return seen, objective


def _record_losses(
    run: _DiffusionRun, stats: StatsAccumulator, seen: list[tuple[torch.Tensor, TrainingLosses]], applied: bool
) -> None:
    """Adds the step's losses to the statistics and, when the step was applied, to the timestep sampler's history."""
    for t, losses in seen:
        if applied:  # a skipped step's losses (NaN/Inf) must not enter the importance-sampler history
            run.timestep_sampler.update(t, losses.loss)
        stats.add(t, losses)


def _micro_batch(
    chunk: StreamBatch, net: Callable[..., torch.Tensor], process: GaussianDiffusion | EDMProcess,
    timestep_sampler: TimestepSampler | SigmaSampler, config: TrainConfig, dev: torch.device,
    memory_format: torch.memory_format,
) -> tuple[torch.Tensor, TrainingLosses, torch.Tensor]:
    """Losses of this rank's share of one chunk; returns (t (B,), per-example terms, the scalar to backprop).
    For an EDM run the sampler draws noise levels σ and t is the nearest level of the sampling table
    (for the per-level statistics).

    Timesteps and label dropout are drawn once per chunk (identically on every rank) and shared
    out by position; the noise of each example comes from its own position-keyed generator.
    """
    generator = chunk.chunk_generator(config.seed)
    t_all, weights_all = timestep_sampler.sample(chunk.chunk_size, generator)
    drop_all = torch.rand(chunk.chunk_size, generator=generator) < config.label_dropout
    t, weights, drop = chunk.share(t_all), chunk.share(weights_all), chunk.share(drop_all)
    x0 = from_uint8(chunk.images).to(dev, memory_format=memory_format, non_blocking=True)
    noise = example_noise(config.seed, chunk.positions.tolist(), x0.shape[1:])
    kwargs = {}
    if config.class_cond:  # drop labels to the null class for classifier-free guidance
        kwargs["y"] = torch.where(drop, config.net.num_classes, chunk.labels).to(dev)
    if config.augment > 0:  # drawn for the whole chunk like t, so every rank and a resume agree
        labels, matrices = draw_augmentations(chunk.chunk_size, config.augment, generator)
        x0 = apply_augmentations(x0, chunk.share(matrices))
        kwargs["augment_labels"] = chunk.share(labels).to(dev)
    noise = noise.to(dev, memory_format=memory_format)
    if isinstance(process, EDMProcess):
        losses = process.training_losses(net, x0, t, noise, kwargs)
        t = process.level(t)
    else:
        losses = process.training_losses(net, x0, t.to(dev), noise, kwargs)
    loss = (losses.loss * weights.to(dev)).mean() / config.optim.accum
    return t, losses, loss


def _gather(t: torch.Tensor, losses: TrainingLosses, world: int) -> tuple[torch.Tensor, TrainingLosses]:
    """(t, losses) of the whole chunk in stream order, from every rank (identity on one process)."""
    if world == 1:
        return t, losses
    missing = torch.full_like(losses.loss, float("nan"))  # a term this process does not have (same on every rank)
    columns = [t.to(losses.loss.device), losses.loss.detach(),
               missing if losses.vb is None else losses.vb.detach(), missing if losses.mse is None else losses.mse.detach()]
    packed = stream_order(gather_cat(torch.stack([c.double() for c in columns], dim=1)), world).cpu()
    mse = packed[:, 3].float() if losses.mse is not None else None
    vb = packed[:, 2].float() if losses.vb is not None else None
    return packed[:, 0].long(), TrainingLosses(loss=packed[:, 1].float(), mse=mse, vb=vb)


@torch.no_grad()
def write_preview(
    model: torch.nn.Module, diffusion: GaussianDiffusion, config: TrainConfig, run: RunDir, step: int, dev: torch.device
) -> Path:
    """``samples/step-N.png``: a grid from fixed per-sample seeds (0..n−1), so grids are comparable."""
    count = config.preview_count
    labels = preview_labels(count, config.net.num_classes if config.class_cond else 0, dev)
    kwargs = {} if labels is None else {"y": labels}
    was_training = model.training
    model.eval()
    try:
        images = sample(
            model, diffusion, (config.net.in_channels, config.resolution, config.resolution), list(range(count)),
            sampler=config.preview_sampler, steps=config.preview_steps, model_kwargs=kwargs, device=dev,  # type: ignore[arg-type]
        )
    finally:  # a failed preview must leave the model as it found it
        model.train(was_training)
    return save_preview(images, run, step)
