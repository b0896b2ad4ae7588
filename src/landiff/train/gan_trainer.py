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

Under torchrun every rank holds G and D; after each backward pass the gradients are averaged over
ranks with one all-reduce (:func:`~landiff.train.distributed.average_gradients`, what DDP does)
rather than through DDP wrappers, because a step runs D three times and backpropagates twice
over different parameter sets; batch-norm running statistics are copied from rank 0 after every
step, so G, D and the EMA stay identical on all ranks. Batch norm still normalises with each
rank's own batch in training mode (as DDP without SyncBatchNorm does), so N ranks with batch B
are close to, not equal to, one process with batch N·B.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from landiff.errors import UserError
from landiff.grid import from_uint8
from landiff.nets.dcgan import DCGANConfig, Discriminator, Generator, latents
from landiff.train.components import Checkpointable, TrainState, make_adamw
from landiff.train.config import TrainConfig
from landiff.train.data_stream import StreamBatch, batch_stream
from landiff.train.distributed import average_gradients, broadcast_buffers
from landiff.train.ema import EMA
from landiff.train.gan_stats import DiscriminatorStep, GANStatsAccumulator
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
    with training_session(config, run_dir, device=device, restart=restart, log=log) as session:
        return _train_gan(session, stop_after)


def _train_gan(session: Session, stop_after: int | None) -> TrainState:
    config, dev, dist = session.config, session.device, session.dist
    # --- everything with state (same initial weights on every rank: same seed)
    torch.manual_seed(config.seed)
    g, d = build_generator(config, dev), build_discriminator(config, dev)
    opt_g, opt_d = make_adamw(g.parameters(), config.optim, dev), make_adamw(d.parameters(), config.optim, dev)
    ema = EMA(g, config.ema_decay, warmup=config.ema_warmup) if config.gan.ema else None
    precision = Precision.create(config.precision, dev)
    parts = Checkpointable(
        modules={"g": g, "d": d}, optimizers={"g": opt_g, "d": opt_d}, emas={"g": ema} if ema else {},
        generators={}, precision=precision, extra={},
    )
    seed_rank(config.seed, dist.rank)
    state = resume_state(parts, session)

    batch = config.optim.batch
    count = sum(p.numel() for p in g.parameters()) / 1e6, sum(p.numel() for p in d.parameters()) / 1e6
    session.log(
        f"training DCGAN (G {count[0]:.2f} M, D {count[1]:.2f} M params) at {config.resolution} px on {dev}, "
        f"{precision.mode}; global batch {batch} per rank x {dist.world} rank(s) = {batch * dist.world}, "
        f"{config.gan.d_steps} D step(s) per G step"
    )
    batches = batch_stream(session.dataset, batch, config.seed, start=state.images_seen,
                           num_workers=config.num_workers, rank=dist.rank, world=dist.world)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    g_params, d_params = list(g.parameters()), list(d.parameters())
    g_fwd, d_fwd = (torch.compile(g), torch.compile(d)) if config.compile else (g, d)

    stats = GANStatsAccumulator()
    progress = session.progress(state)
    last_step = session.last_step(state, stop_after)
    g.train()
    d.train()
    session.start_clock()
    while state.step < last_step and not out_of_time(config.max_minutes, state):
        lr = learning_rate(config.optim, state.step, state.seconds)  # the horizon stored in the run
        for group in [*opt_g.param_groups, *opt_d.param_groups]:
            group["lr"] = lr
        all_applied = True
        for _ in range(config.gan.d_steps):  # --- discriminator: push D(x) up, D(G(z)) down
            chunk = next(batches)
            real = from_uint8(chunk.images).to(dev, memory_format=memory_format, non_blocking=True)
            y = chunk.labels.to(dev) if config.class_cond else None
            z = _chunk_latents(chunk, config).to(dev)
            with precision.autocast():
                fake = g_fwd(z, y)
                logits_real, logits_fake = d_fwd(real, y).float(), d_fwd(fake.detach(), y).float()
            loss_d = F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean()
            precision.scale(loss_d).backward()
            average_gradients(d_params)
            _, applied = clipped_step(opt_d, d_params, precision, config.optim.grad_clip, loss_d)
            all_applied &= applied
            stats.add_d(DiscriminatorStep(loss_d.detach(), logits_real.detach().sigmoid().mean(),
                                          logits_fake.detach().sigmoid().mean()), chunk.chunk_size)
            state.images_seen += chunk.chunk_size
        # --- generator: non-saturating loss through the updated D; only G's gradients are taken
        with precision.autocast():
            loss_g = F.softplus(-d_fwd(fake, y).float()).mean()
        precision.scale(loss_g).backward(inputs=g_params)
        average_gradients(g_params)
        _, applied = clipped_step(opt_g, g_params, precision, config.optim.grad_clip, loss_g)
        all_applied &= applied
        broadcast_buffers(g)  # batch-norm running statistics: rank 0's everywhere (as DDP does)
        broadcast_buffers(d)
        if applied and ema is not None:
            ema.update(g)
        stats.add_g(loss_g.detach(), lr)
        state.step += 1
        count_skip(state, not all_applied, session)
        signalled = end_step(state, session)
        progress.update(state.step, stats.progress_fields())
        final = state.step == last_step or out_of_time(config.max_minutes, state) or signalled

        if state.step % config.log_every == 0 or final:
            record = stats.flush(state.step, state.images_seen)
            record.update(seconds=state.seconds, skipped_steps=state.skipped_steps)
            log_stats(record, session)
            progress.log(f"D {record['loss_d']:.3f} G {record['loss_g']:.3f} "
                         f"D(x) {record['d_real']:.2f} D(G(z)) {record['d_fake']:.2f} {record['img_per_s']:.1f} img/s")
        if state.step % config.checkpoint_every == 0 or final:  # the checkpoint first: a preview never costs it
            save_state(parts, state, session)
        preview_due = state.step % config.sample_every == 0 or (final and not signalled)
        if config.preview_count and preview_due and dist.is_main:  # plain modules only: no collectives
            shown = ema.model if ema is not None else g
            draw_preview(lambda: write_gan_preview(shown, config, session.run, state.step, dev), state.step, session)
        if signalled:
            session.log(stopped_message(state, session))
            break
    progress.close()
    return state


def _chunk_latents(chunk: StreamBatch, config: TrainConfig) -> torch.Tensor:
    """This rank's z (B, z_dim): drawn for the whole chunk from its position-keyed generator, shared out."""
    z_all = torch.randn(chunk.chunk_size, config.gan.z_dim, generator=chunk.chunk_generator(config.seed))
    return chunk.share(z_all)


@torch.no_grad()
def write_gan_preview(model: Generator, config: TrainConfig, run: RunDir, step: int, dev: torch.device) -> Path:
    """``samples/step-N.png`` from z of seeds 0..n−1 (batch-norm in eval mode, so per-seed exact)."""
    count = config.preview_count
    was_training = model.training
    model.eval()
    try:
        images = model(latents(range(count), config.gan.z_dim, dev), preview_labels(count, config.gan.num_classes, dev))
    finally:  # a failed preview must not leave the training generator's batch norm in eval mode
        model.train(was_training)
    return save_preview(images.float(), run, step)
