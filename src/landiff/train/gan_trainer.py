"""The DCGAN training loop, :func:`gan_loop`: one function that reads top to bottom, on the diffusion
trainer's machinery (:mod:`landiff.train.loop_common`); :func:`landiff.train.train` runs it for ``model="gan"``.

    from landiff.train import recipe, train
    train(recipe("dcgan"), "runs/dcgan")      # re-running resumes from runs/dcgan/checkpoints

Same run-directory contract as diffusion (config.json, stats.jsonl, checkpoints/, samples/), same
checkpoints (modules {"g", "d"}, optimisers {"g", "d"}, EMA {"g"} when ``gan.ema``), same exact
resume. Losses on D's logits (``gan.loss``):

    ns     L_D = softplus(−D(x)) + softplus(D(G(z)))   L_G = softplus(−D(G(z)))
           (the non-saturating loss of Goodfellow et al. 2014 §3; DCGAN §4 trains with it)
    hinge  L_D = relu(1 − D(x)) + relu(1 + D(G(z)))    L_G = −D(G(z))      (SNGAN, arXiv 1802.05957)
    rsgan  L_D = softplus(D(G(z)) − D(x))              L_G = softplus(D(x) − D(G(z)))
           (relativistic standard GAN, arXiv 1807.00734, real and fake paired by position)

Options of the stronger flavours: a spectrally normalised D (``gan.spectral_norm``, in the net);
DiffAugment (``gan.diffaugment``, arXiv 2006.10738): every image D sees, real or fake, in D's
update and in G's, goes through the same kind of random differentiable transform, drawn per chunk
from a position-keyed generator so resume and ranks agree; the lazy R1 penalty (``gan.r1_gamma``,
Mescheder et al. 2018 eq. 9; lazy as StyleGAN2 §B): every ``gan.r1_every``-th D update adds
r1_every · γ/2 · E‖∇_x D(x)‖² on the (augmented) real batch, the gradient taken in float32.

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

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from landiff.grid import from_uint8
from landiff.nets.dcgan import Discriminator, Generator, latents, standing_statistics
from landiff.nets.diffaugment import DiffAugment
from landiff.runs.checkpoint import TrainState
from landiff.runs.config import TrainConfig
from landiff.runs.models import build_discriminator, build_generator
from landiff.runs.run_dir import RunDir
from landiff.train.components import Checkpointable, make_adamw
from landiff.train.data_stream import StreamBatch, batch_stream, keyed_generator
from landiff.train.distributed import average_gradients, broadcast_buffers
from landiff.train.ema import EMA
from landiff.train.gan_stats import DiscriminatorStep, GANStatsAccumulator
from landiff.train.loop_common import (
    Bookkeeping,
    LoopRun,
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


def gan_loop(session: Session, stop_after: int | None) -> TrainState:
    """The DCGAN loop behind :func:`landiff.train.train`: resumes the session's run, trains to
    ``train_steps`` (or ``stop_after`` more steps, or the ``--minutes`` budget); returns the counters."""
    config, dev, dist = session.config, session.device, session.dist
    torch.manual_seed(config.seed)  # same initial weights on every rank
    run = _build(config, dev)
    seed_rank(config.seed, dist.rank)
    state = resume_state(run.parts, session)

    session.log(_describe(run, session))
    batches = batch_stream(session.dataset, config.optim.batch, config.seed, start=state.images_seen,
                           num_workers=config.num_workers, rank=dist.rank, world=dist.world)
    run.compile()
    stats = GANStatsAccumulator()
    progress = session.progress(state)
    shown = run.ema.model if run.ema is not None else run.g
    book = Bookkeeping(
        session, run.parts, progress, session.last_step(state, stop_after),
        status=stats.progress_fields, flush=stats.flush, summary=_summary,
        preview=lambda step: write_gan_preview(shown, config, session.run, step, dev),  # plain modules: no collectives
    )
    run.g.train()
    run.d.train()
    session.start_clock()
    while state.step < book.last_step and not out_of_time(config.max_minutes, state):
        lr = set_learning_rate([run.opt_g, run.opt_d], config, state)
        fake, y, real, augment, d_applied = _discriminator_steps(run, batches, stats, state)
        loss_g, g_applied = _generator_step(run, fake, y, real, augment)
        broadcast_buffers(run.g)  # batch-norm running statistics: rank 0's everywhere (as DDP does)
        broadcast_buffers(run.d)
        if g_applied and run.ema is not None:
            run.ema.update(run.g)
        stats.add_g(loss_g.detach(), lr)
        state.step += 1
        if book.finish_step(state, skipped=not (d_applied and g_applied)):
            break
    progress.close()
    return state


@dataclass
class _GANRun(LoopRun):
    """Everything with state in a DCGAN run, and how this rank calls G and D."""

    g: Generator
    d: Discriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    ema: EMA | None
    precision: Precision
    parts: Checkpointable
    augment: DiffAugment
    g_fwd: Callable[..., torch.Tensor] = field(init=False)  # G; after compile(), maybe torch.compile'd
    d_fwd: Callable[..., torch.Tensor] = field(init=False)

    def __post_init__(self) -> None:
        self.g_fwd, self.d_fwd = self.g, self.d

    def compile(self) -> None:
        """torch.compile on G and D when ``config.compile``."""
        if self.config.compile:
            self.g_fwd, self.d_fwd = torch.compile(self.g), torch.compile(self.d)


def _build(config: TrainConfig, dev: torch.device) -> _GANRun:
    """G and D, their optimisers and G's EMA (in this order: the RNG)."""
    g, d = build_generator(config, dev), build_discriminator(config, dev)
    opt_g, opt_d = make_adamw(g.parameters(), config.optim, dev), make_adamw(d.parameters(), config.optim, dev)
    ema = EMA(g, config.ema_decay, warmup=config.ema_warmup) if config.gan.ema else None
    precision = Precision.create(config.precision, dev)
    parts = Checkpointable(
        modules={"g": g, "d": d}, optimizers={"g": opt_g, "d": opt_d}, emas={"g": ema} if ema else {},
        generators={}, precision=precision, extra={},
    )
    return _GANRun(config, dev, g, d, opt_g, opt_d, ema, precision, parts, DiffAugment(config.gan.diffaugment))


def _describe(run: _GANRun, session: Session) -> str:
    """The log line that opens training: sizes, device, precision, the global batch and the D/G step ratio."""
    config, world, batch = run.config, session.dist.world, run.config.optim.batch
    g_params, d_params = (sum(p.numel() for p in m.parameters()) / 1e6 for m in (run.g, run.d))
    return (f"training DCGAN (G {g_params:.2f} M, D {d_params:.2f} M params) at {config.resolution} px on {run.device}, "
            f"{run.precision.mode}; global batch {batch} per rank x {world} rank(s) = {batch * world}, "
            f"{config.gan.d_steps} D step(s) per G step")


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The discriminator loss of ``gan.loss`` on float32 logits of real and fake images."""
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "rsgan":
        return F.softplus(fake - real).mean()
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def g_loss(kind: str, fake: torch.Tensor, real: torch.Tensor | None) -> torch.Tensor:
    """The generator loss of ``gan.loss``; ``real`` (detached real logits) only for ``rsgan``."""
    if kind == "hinge":
        return -fake.mean()
    if kind == "rsgan":
        assert real is not None
        return F.softplus(real - fake).mean()
    return F.softplus(-fake).mean()


class _Augmenter:
    """DiffAugment for one chunk: each call draws the next augmentation from the chunk's generator."""

    def __init__(self, run: _GANRun, chunk: StreamBatch) -> None:
        self.run, self.chunk = run, chunk
        self.generator = keyed_generator(run.config.seed, "diffaugment", chunk.chunk_start) if run.augment else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.generator is None:
            return x
        return self.run.augment(x, self.chunk.share(self.run.augment.draw(self.chunk.chunk_size, self.generator)))


def _discriminator_steps(
    run: _GANRun, batches: Iterator[StreamBatch], stats: GANStatsAccumulator, state: TrainState
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, _Augmenter, bool]:
    """``gan.d_steps`` updates of D, each on a fresh real chunk and fresh z: push D(x) up, D(G(z)) down.

    Returns the last fakes, their labels, the last real images and that chunk's augmenter (the
    generator step goes through them) and whether every update was applied (see
    :func:`~landiff.train.loop_common.clipped_step`).
    """
    config, dev, precision = run.config, run.device, run.precision
    d_params = list(run.d.parameters())
    all_applied = True
    for i in range(config.gan.d_steps):
        chunk = next(batches)
        real = from_uint8(chunk.images).to(dev, memory_format=run.memory_format, non_blocking=True)
        y = chunk.labels.to(dev) if config.class_cond else None
        z = _chunk_latents(chunk, config).to(dev)
        augment = _Augmenter(run, chunk)
        with precision.autocast():
            fake = run.g_fwd(z, y)
            logits_real = run.d_fwd(augment(real), y).float()
            logits_fake = run.d_fwd(augment(fake.detach()), y).float()
        loss_d = d_loss(config.gan.loss, logits_real, logits_fake)
        penalty = _r1_penalty(run, augment, real, y, state.step * config.gan.d_steps + i)
        total = loss_d if penalty is None else loss_d + config.gan.r1_every * config.gan.r1_gamma / 2 * penalty
        precision.scale(total).backward()
        average_gradients(d_params)
        _, applied = clipped_step(run.opt_d, d_params, precision, config.optim.grad_clip, total)
        all_applied &= applied
        stats.add_d(DiscriminatorStep(loss_d.detach(), logits_real.detach().sigmoid().mean(),
                                      logits_fake.detach().sigmoid().mean(),
                                      None if penalty is None else penalty.detach()), chunk.chunk_size)
        state.images_seen += chunk.chunk_size
    return fake, y, real, augment, all_applied


def _r1_penalty(run: _GANRun, augment: _Augmenter, real: torch.Tensor, y: torch.Tensor | None,
                update: int) -> torch.Tensor | None:
    """E‖∇_x D(x)‖² on this update's real batch (float32, its own augmentation draw), on D update
    number ``update`` when it is a multiple of ``r1_every``; None otherwise and when the penalty is off."""
    gan = run.config.gan
    if not gan.r1_gamma or update % gan.r1_every:
        return None
    x = augment(real).detach().float().requires_grad_(True)
    (grad,) = torch.autograd.grad(run.d_fwd(x, y).float().sum(), x, create_graph=True)
    return grad.square().sum(dim=(1, 2, 3)).mean()


def _generator_step(run: _GANRun, fake: torch.Tensor, y: torch.Tensor | None, real: torch.Tensor,
                    augment: _Augmenter) -> tuple[torch.Tensor, bool]:
    """One update of G with the loss of ``gan.loss`` through the updated D (only G's gradients are
    taken; the fakes and, for rsgan, the real images get a fresh augmentation); returns (loss,
    whether the update was applied)."""
    g_params, kind = list(run.g.parameters()), run.config.gan.loss
    with run.precision.autocast():
        logits_fake = run.d_fwd(augment(fake), y).float()
        logits_real = None
        if kind == "rsgan":
            with torch.no_grad():
                logits_real = run.d_fwd(augment(real), y).float()
    loss_g = g_loss(kind, logits_fake, logits_real)
    run.precision.scale(loss_g).backward(inputs=g_params)
    average_gradients(g_params)
    _, applied = clipped_step(run.opt_g, g_params, run.precision, run.config.optim.grad_clip, loss_g)
    return loss_g, applied


def _summary(record: dict[str, Any]) -> str:
    """The progress line logged with a stats record."""
    return (f"D {record['loss_d']:.3f} G {record['loss_g']:.3f} "
            f"D(x) {record['d_real']:.2f} D(G(z)) {record['d_fake']:.2f} {record['img_per_s']:.1f} img/s")


def _chunk_latents(chunk: StreamBatch, config: TrainConfig) -> torch.Tensor:
    """This rank's z (B, z_dim): drawn for the whole chunk from its position-keyed generator, shared out."""
    z_all = torch.randn(chunk.chunk_size, config.gan.z_dim, generator=chunk.chunk_generator(config.seed))
    return chunk.share(z_all)


@torch.no_grad()
def write_gan_preview(model: torch.nn.Module, config: TrainConfig, run: RunDir, step: int, dev: torch.device) -> Path:
    """``samples/step-N.png`` from z of seeds 0..n−1 (batch-norm in eval mode, so per-seed exact; an EMA
    generator with standing statistics, computed on a copy so the run's state is untouched)."""
    count = config.preview_count
    if config.gan.ema and isinstance(model, Generator):
        model = standing_statistics(copy.deepcopy(model), config.gan.num_classes)
    was_training = model.training
    model.eval()
    try:
        images = model(latents(range(count), config.gan.z_dim, dev), preview_labels(count, config.gan.num_classes, dev))
    finally:  # a failed preview must not leave the training generator's batch norm in eval mode
        model.train(was_training)
    return save_preview(images.float(), run, step)
