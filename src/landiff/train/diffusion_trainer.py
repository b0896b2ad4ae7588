"""The diffusion training loop: one function that reads top to bottom (EDM / nanoGPT style).

    from landiff.train import recipe, train
    train(recipe("tiny"), "runs/tiny")      # re-running resumes from runs/tiny/checkpoints
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from landiff.data import open_dataset
from landiff.diffusion import make_timestep_sampler
from landiff.grid import from_uint8
from landiff.progress import Progress
from landiff.samplers import sample
from landiff.train.checkpoint import save_checkpoint
from landiff.train.components import (
    Checkpointable,
    TrainState,
    build_diffusion,
    build_unet,
    make_adamw,
    pick_device,
)
from landiff.train.config import TrainConfig, finalize
from landiff.train.data_stream import batch_stream
from landiff.train.ema import EMA
from landiff.train.loop_common import (
    clipped_step,
    describe_data,
    out_of_time,
    preview_labels,
    resume_state,
    save_preview,
)
from landiff.train.precision import Precision
from landiff.train.run_dir import RunDir, append_stats, open_run_dir
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
        device: ``cpu``/``cuda``/…; default CUDA when available.
        restart: move an existing run aside and start over.
        log: where one-line messages go.
        stop_after: stop (with a checkpoint) after this many steps in this call; for tests of resume.
    """
    dev = pick_device(device)
    dataset = open_dataset(
        config.data, config.resolution, class_cond=config.class_cond, flip=config.flip, seed=config.seed,
        synthetic_n=config.synthetic_n,
    )
    config = finalize(config, num_classes=len(dataset.classes))
    run = open_run_dir(Path(run_dir), config, restart=restart)
    describe_data(dataset, run, log)

    # --- everything with state
    torch.manual_seed(config.seed)
    model = build_unet(config, dev)
    ema = EMA(model, config.ema_decay, warmup=config.ema_warmup)
    optimizer = make_adamw(model.parameters(), config.optim, dev)
    diffusion = build_diffusion(config)
    timestep_sampler = make_timestep_sampler(config.diffusion.timestep_sampler, diffusion.num_steps)  # type: ignore[arg-type]
    generator = torch.Generator().manual_seed(config.seed + 1)  # timesteps, noise, label dropout
    precision = Precision.create(config.precision, dev)
    parts = Checkpointable(
        modules={"net": model}, optimizers={"net": optimizer}, emas={"net": ema},
        generators={"train": generator}, precision=precision, extra={"timestep_sampler": timestep_sampler},
    )
    state = resume_state(parts, run, log)

    batch = config.optim.batch
    log(
        f"training {config.preset} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params) on {dev}, "
        f"{precision.mode}; global batch {batch} x {config.optim.accum} accumulation = {batch * config.optim.accum}"
    )
    batches = batch_stream(dataset, batch, config.seed, start=state.images_seen, num_workers=config.num_workers)
    null_label = config.net.num_classes
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format

    forward = torch.compile(model) if config.compile else model

    def net(x_t: torch.Tensor, t: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        with precision.autocast():
            return forward(x_t, t, **kwargs).float()

    stats = StatsAccumulator(diffusion.num_steps)
    progress = Progress(config.train_steps, "train", start=state.step, unit="step")
    last_step = config.train_steps if stop_after is None else min(config.train_steps, state.step + stop_after)
    model.train()
    step_start = time.monotonic()
    while state.step < last_step and not out_of_time(config.max_minutes, state):
        lr = learning_rate(config.optim, state.step, config.train_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        for _ in range(config.optim.accum):
            images, labels = next(batches)
            x0 = from_uint8(images).to(dev, memory_format=memory_format, non_blocking=True)
            t, weights = timestep_sampler.sample(len(x0), generator)
            noise = torch.randn(x0.shape, generator=generator)
            kwargs = {}
            if config.class_cond:  # drop labels to the null class for classifier-free guidance
                drop = torch.rand(len(labels), generator=generator) < config.label_dropout
                kwargs["y"] = torch.where(drop, null_label, labels).to(dev)
            losses = diffusion.training_losses(net, x0, t.to(dev), noise.to(dev, memory_format=memory_format), kwargs)
            loss = (losses.loss * weights.to(dev)).mean() / config.optim.accum
            precision.scale(loss).backward()
            timestep_sampler.update(t, losses.loss)
            stats.add(t, losses)
        grad_norm, applied = clipped_step(optimizer, model.parameters(), precision, config.optim.grad_clip)
        if applied:
            ema.update(model)
        else:
            state.skipped_steps += 1  # a non-finite gradient never reaches the weights
        state.step += 1
        state.images_seen += batch * config.optim.accum
        stats.add_step(grad_norm, lr)
        now = time.monotonic()
        state.seconds += now - step_start
        step_start = now
        progress.update(state.step, f"loss {stats.last_loss():.4f}")
        final = state.step == last_step or out_of_time(config.max_minutes, state)

        if state.step % config.log_every == 0 or final:
            record = stats.flush(state.step, state.images_seen)
            record.update(seconds=state.seconds, skipped_steps=state.skipped_steps)
            append_stats(run.stats, record)
            progress.log(f"loss {record['loss']:.4f} {record['img_per_s']:.1f} img/s")
        if config.preview_count and (state.step % config.sample_every == 0 or final):
            write_preview(ema.model, diffusion, config, run, state.step, dev)
        if state.step % config.checkpoint_every == 0 or final:
            save_checkpoint(run.checkpoints, state.step, *parts.to_checkpoint(state, config), keep=config.keep_checkpoints)
    progress.close()
    return state


@torch.no_grad()
def write_preview(model: torch.nn.Module, diffusion, config: TrainConfig, run: RunDir, step: int, dev: torch.device) -> Path:
    """``samples/step-N.png``: a grid from fixed per-sample seeds (0..n−1), so grids are comparable."""
    count = config.preview_count
    labels = preview_labels(count, config.net.num_classes if config.class_cond else 0, dev)
    kwargs = {} if labels is None else {"y": labels}
    was_training = model.training
    model.eval()
    images = sample(
        model, diffusion, (config.net.in_channels, config.resolution, config.resolution), list(range(count)),
        sampler=config.preview_sampler, steps=config.preview_steps, model_kwargs=kwargs, device=dev,  # type: ignore[arg-type]
    )
    model.train(was_training)
    return save_preview(images, run, step)

