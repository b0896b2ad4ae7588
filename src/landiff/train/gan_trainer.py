"""The DCGAN training loop: one function that reads top to bottom, on the diffusion trainer's machinery.

    from landiff.train import recipe, train
    train(recipe("dcgan"), "runs/dcgan")      # re-running resumes from runs/dcgan/checkpoints

Same run-directory contract as diffusion (config.json, stats.jsonl, checkpoints/, samples/), same
checkpoints (modules {"g", "d"}, optimisers {"g", "d"}, EMA {"g"} when ``gan.ema``), same exact
resume. Loss: the non-saturating GAN loss of Goodfellow et al. 2014 §3 on logits, i.e. binary cross
entropy with logits (DCGAN §4 trains with it):

    L_D = softplus(−D(x)) + softplus(D(G(z)))       L_G = softplus(−D(G(z)))

Each step makes ``gan.d_steps`` discriminator updates (each on a fresh real batch and fresh z),
then one generator update through the last fakes (as the PyTorch DCGAN example does). In the
class-conditional variant the fakes take the labels of the real batch they are paired with, so
classes are generated as often as the data holds them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from landiff.data import open_dataset
from landiff.errors import UserError
from landiff.grid import from_uint8
from landiff.nets.dcgan import DCGANConfig, Discriminator, Generator, latents
from landiff.progress import Progress
from landiff.train.checkpoint import save_checkpoint
from landiff.train.components import Checkpointable, TrainState, make_adamw, pick_device
from landiff.train.config import TrainConfig, finalize
from landiff.train.data_stream import batch_stream
from landiff.train.ema import EMA
from landiff.train.gan_stats import DiscriminatorStep, GANStatsAccumulator
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


def gan_net_config(config: TrainConfig) -> DCGANConfig:
    """The DCGAN shape of a (finalised) run config."""
    g = config.gan
    return DCGANConfig(resolution=config.resolution, z_dim=g.z_dim, ngf=g.ngf, ndf=g.ndf, num_classes=g.num_classes)


def build_generator(config: TrainConfig, device: torch.device) -> Generator:
    """G with DCGAN init, on ``device`` (channels-last when ``config.channels_last``)."""
    model = Generator(gan_net_config(config)).to(device)
    return model.to(memory_format=torch.channels_last) if config.channels_last else model


def build_discriminator(config: TrainConfig, device: torch.device) -> Discriminator:
    """D with DCGAN init, on ``device`` (channels-last when ``config.channels_last``)."""
    model = Discriminator(gan_net_config(config)).to(device)
    return model.to(memory_format=torch.channels_last) if config.channels_last else model


def train_gan(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    device: str | None = None,
    restart: bool = False,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
) -> TrainState:
    """Trains (or resumes) a DCGAN; returns the final counters. Arguments as :func:`landiff.train.train`."""
    if config.model != "gan":
        raise UserError(f"train_gan needs a GAN config (--model gan), got model {config.model!r}")
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
    g, d = build_generator(config, dev), build_discriminator(config, dev)
    opt_g, opt_d = make_adamw(g.parameters(), config.optim, dev), make_adamw(d.parameters(), config.optim, dev)
    ema = EMA(g, config.ema_decay, warmup=config.ema_warmup) if config.gan.ema else None
    generator = torch.Generator().manual_seed(config.seed + 1)  # z of every step
    precision = Precision.create(config.precision, dev)
    parts = Checkpointable(
        modules={"g": g, "d": d}, optimizers={"g": opt_g, "d": opt_d}, emas={"g": ema} if ema else {},
        generators={"train": generator}, precision=precision, extra={},
    )
    state = resume_state(parts, run, log)

    batch, z_dim = config.optim.batch, config.gan.z_dim
    count = sum(p.numel() for p in g.parameters()) / 1e6, sum(p.numel() for p in d.parameters()) / 1e6
    log(f"training DCGAN (G {count[0]:.2f} M, D {count[1]:.2f} M params) at {config.resolution} px on {dev}, "
        f"{precision.mode}; batch {batch}, {config.gan.d_steps} D step(s) per G step")
    batches = batch_stream(dataset, batch, config.seed, start=state.images_seen, num_workers=config.num_workers)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    g_params = list(g.parameters())
    g_fwd, d_fwd = (torch.compile(g), torch.compile(d)) if config.compile else (g, d)

    stats = GANStatsAccumulator()
    progress = Progress(config.train_steps, "train", start=state.step, unit="step")
    last_step = config.train_steps if stop_after is None else min(config.train_steps, state.step + stop_after)
    g.train()
    d.train()
    step_start = time.monotonic()
    while state.step < last_step and not out_of_time(config.max_minutes, state):
        lr = learning_rate(config.optim, state.step, config.train_steps)
        for group in [*opt_g.param_groups, *opt_d.param_groups]:
            group["lr"] = lr
        for _ in range(config.gan.d_steps):  # --- discriminator: push D(x) up, D(G(z)) down
            images, labels = next(batches)
            real = from_uint8(images).to(dev, memory_format=memory_format, non_blocking=True)
            y = labels.to(dev) if config.class_cond else None
            z = torch.randn(len(real), z_dim, generator=generator).to(dev)
            with precision.autocast():
                fake = g_fwd(z, y)
                logits_real, logits_fake = d_fwd(real, y).float(), d_fwd(fake.detach(), y).float()
            loss_d = F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean()
            precision.scale(loss_d).backward()
            _, applied = clipped_step(opt_d, d.parameters(), precision, config.optim.grad_clip)
            state.skipped_steps += int(not applied)
            stats.add_d(DiscriminatorStep(loss_d.detach(), logits_real.detach().sigmoid().mean(),
                                          logits_fake.detach().sigmoid().mean()), len(real))
            state.images_seen += len(real)
        # --- generator: non-saturating loss through the updated D; only G's gradients are taken
        with precision.autocast():
            loss_g = F.softplus(-d_fwd(fake, y).float()).mean()
        precision.scale(loss_g).backward(inputs=g_params)
        _, applied = clipped_step(opt_g, g_params, precision, config.optim.grad_clip)
        if applied and ema is not None:
            ema.update(g)
        state.skipped_steps += int(not applied)
        stats.add_g(loss_g.detach(), lr)
        state.step += 1
        now = time.monotonic()
        state.seconds += now - step_start
        step_start = now
        progress.update(state.step, stats.progress_fields())
        final = state.step == last_step or out_of_time(config.max_minutes, state)

        if state.step % config.log_every == 0 or final:
            record = stats.flush(state.step, state.images_seen)
            record.update(seconds=state.seconds, skipped_steps=state.skipped_steps)
            append_stats(run.stats, record)
            progress.log(f"D {record['loss_d']:.3f} G {record['loss_g']:.3f} "
                         f"D(x) {record['d_real']:.2f} D(G(z)) {record['d_fake']:.2f} {record['img_per_s']:.1f} img/s")
        if config.preview_count and (state.step % config.sample_every == 0 or final):
            write_gan_preview(ema.model if ema is not None else g, config, run, state.step, dev)
        if state.step % config.checkpoint_every == 0 or final:
            save_checkpoint(run.checkpoints, state.step, *parts.to_checkpoint(state, config), keep=config.keep_checkpoints)
    progress.close()
    return state


@torch.no_grad()
def write_gan_preview(model: Generator, config: TrainConfig, run: RunDir, step: int, dev: torch.device) -> Path:
    """``samples/step-N.png`` from z of seeds 0..n−1 (batch-norm in eval mode, so per-seed exact)."""
    count = config.preview_count
    was_training = model.training
    model.eval()
    images = model(latents(range(count), config.gan.z_dim, dev), preview_labels(count, config.gan.num_classes, dev))
    model.train(was_training)
    return save_preview(images.float(), run, step)
