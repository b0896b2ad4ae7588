"""The diffusion training loop: one function that reads top to bottom (EDM / nanoGPT style).

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
from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from landiff.diffusion import GaussianDiffusion, TrainingLosses, make_timestep_sampler
from landiff.diffusion.timestep_sampler import LossAwareSampler, UniformSampler
from landiff.grid import from_uint8
from landiff.samplers import sample
from landiff.train.components import Checkpointable, TrainState, build_diffusion, build_unet, make_adamw
from landiff.train.config import TrainConfig
from landiff.train.data_stream import StreamBatch, batch_stream, example_noise, stream_order
from landiff.train.distributed import gather_cat
from landiff.train.ema import EMA
from landiff.train.loop_common import (
    Session,
    clipped_step,
    count_skip,
    draw_preview,
    end_step,
    log_stats,
    out_of_time,
    preview_labels,
    resume_state,
    save_preview,
    save_state,
    seed_rank,
    stopped_message,
    training_session,
)
from landiff.train.precision import Precision
from landiff.train.run_dir import RunDir
from landiff.train.schedule import learning_rate
from landiff.train.stats import StatsAccumulator


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    device: str | None = None,
    restart: bool = False,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
) -> TrainState:
    """Trains (or resumes) a diffusion model; returns the final counters.

    Args:
        config: the resolved configuration (see :func:`landiff.train.recipe`).
        run_dir: where config.json, stats.jsonl, checkpoints/ and samples/ live.
        device: ``cpu``/``cuda``/…; default CUDA (``cuda:LOCAL_RANK`` under torchrun) when available.
        restart: move an existing run aside and start over.
        log: where one-line messages go (rank 0 only).
        stop_after: stop (with a checkpoint) after this many steps in this call; for tests of resume.

    Raises:
        UserError: bad config or run directory, or ``max_consecutive_skips`` non-finite steps in a row.
    """
    with training_session(config, run_dir, device=device, restart=restart, log=log) as session:
        return _train(session, stop_after)


def _train(session: Session, stop_after: int | None) -> TrainState:
    config, dev, dist = session.config, session.device, session.dist
    # --- everything with state (same initial weights on every rank: same seed)
    torch.manual_seed(config.seed)
    model = build_unet(config, dev)
    ema = EMA(model, config.ema_decay, warmup=config.ema_warmup)
    optimizer = make_adamw(model.parameters(), config.optim, dev)
    diffusion = build_diffusion(config)
    timestep_sampler = make_timestep_sampler(config.diffusion.timestep_sampler, diffusion.num_steps)  # type: ignore[arg-type]
    precision = Precision.create(config.precision, dev)
    parts = Checkpointable(
        modules={"net": model}, optimizers={"net": optimizer}, emas={"net": ema},
        generators={}, precision=precision, extra={"timestep_sampler": timestep_sampler},
    )
    seed_rank(config.seed, dist.rank)  # dropout differs per rank
    state = resume_state(parts, session)

    batch, accum = config.optim.batch, config.optim.accum
    global_batch = batch * dist.world * accum
    session.log(
        f"training {config.preset} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params) on {dev}, "
        f"{precision.mode}; global batch {batch} per rank x {dist.world} rank(s) x {accum} accumulation = {global_batch}"
    )
    batches = batch_stream(session.dataset, batch, config.seed, start=state.images_seen,
                           num_workers=config.num_workers, rank=dist.rank, world=dist.world)
    ddp = DistributedDataParallel(model, device_ids=[dev] if dev.type == "cuda" else None) if dist.enabled else model
    forward = torch.compile(ddp) if config.compile else ddp
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format

    def net(x_t: torch.Tensor, t: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        with precision.autocast():
            return forward(x_t, t, **kwargs).float()

    stats = StatsAccumulator(diffusion.num_steps)
    progress = session.progress(state)
    last_step = session.last_step(state, stop_after)
    model.train()
    session.start_clock()
    while state.step < last_step and not out_of_time(config.max_minutes, state):
        lr = learning_rate(config.optim, state.step, state.seconds)  # the horizon stored in the run
        for group in optimizer.param_groups:
            group["lr"] = lr
        seen: list[tuple[torch.Tensor, TrainingLosses]] = []
        objective = torch.zeros((), device=dev)
        for micro in range(accum):
            chunk = next(batches)
            # DDP all-reduces gradients on the last micro-batch only (accumulate locally before).
            sync = micro == accum - 1 or not dist.enabled
            with contextlib.nullcontext() if sync else ddp.no_sync():  # type: ignore[union-attr]
                t, losses, loss = _micro_batch(chunk, net, diffusion, timestep_sampler, config, dev, memory_format)
                precision.scale(loss).backward()
            objective = objective + loss.detach()
            seen.append(_gather(t, losses, dist.world))
        grad_norm, applied = clipped_step(optimizer, model.parameters(), precision, config.optim.grad_clip, objective)
        for t, losses in seen:
            if applied:  # a skipped step's losses (NaN/Inf) must not enter the importance-sampler history
                timestep_sampler.update(t, losses.loss)
            stats.add(t, losses)
        if applied:
            ema.update(model)
        state.step += 1
        state.images_seen += global_batch
        count_skip(state, not applied, session)
        stats.add_step(grad_norm, lr)
        signalled = end_step(state, session)
        progress.update(state.step, f"loss {stats.last_loss():.4f}")
        final = state.step == last_step or out_of_time(config.max_minutes, state) or signalled

        if state.step % config.log_every == 0 or final:
            record = stats.flush(state.step, state.images_seen)
            record.update(seconds=state.seconds, skipped_steps=state.skipped_steps)
            log_stats(record, session)
            progress.log(f"loss {record['loss']:.4f} {record['img_per_s']:.1f} img/s")
        if state.step % config.checkpoint_every == 0 or final:  # the checkpoint first: a preview never costs it
            save_state(parts, state, session)
        preview_due = state.step % config.sample_every == 0 or (final and not signalled)
        if config.preview_count and preview_due and dist.is_main:  # EMA model only: no collectives
            draw_preview(lambda: write_preview(ema.model, diffusion, config, session.run, state.step, dev), state.step, session)
        if signalled:
            session.log(stopped_message(state, session))
            break
    progress.close()
    return state


def _micro_batch(
    chunk: StreamBatch, net: Callable[..., torch.Tensor], diffusion: GaussianDiffusion,
    timestep_sampler: UniformSampler | LossAwareSampler, config: TrainConfig, dev: torch.device,
    memory_format: torch.memory_format,
) -> tuple[torch.Tensor, TrainingLosses, torch.Tensor]:
    """Losses of this rank's share of one chunk; returns (t (B,), per-example terms, the scalar to backprop).

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
    losses = diffusion.training_losses(net, x0, t.to(dev), noise.to(dev, memory_format=memory_format), kwargs)
    loss = (losses.loss * weights.to(dev)).mean() / config.optim.accum
    return t, losses, loss


def _gather(t: torch.Tensor, losses: TrainingLosses, world: int) -> tuple[torch.Tensor, TrainingLosses]:
    """(t, losses) of the whole chunk in stream order, from every rank (identity on one process)."""
    if world == 1:
        return t, losses
    columns = [t.to(losses.loss.device), losses.loss.detach(), losses.vb.detach()]
    if losses.mse is not None:
        columns.append(losses.mse.detach())
    packed = stream_order(gather_cat(torch.stack([c.double() for c in columns], dim=1)), world).cpu()
    mse = packed[:, 3].float() if losses.mse is not None else None
    return packed[:, 0].long(), TrainingLosses(loss=packed[:, 1].float(), mse=mse, vb=packed[:, 2].float())


@torch.no_grad()
def write_preview(model: torch.nn.Module, diffusion, config: TrainConfig, run: RunDir, step: int, dev: torch.device) -> Path:
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
