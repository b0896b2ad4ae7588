"""Tiny training configs shared by the training, compare, provenance and reliability tests (seconds to train on
2 cores)."""

from __future__ import annotations

import dataclasses

from landiff.train import TrainConfig, recipe


def tiny_diffusion(num_steps: int = 50, **changes) -> TrainConfig:
    """The tiny recipe at 16 base channels, two levels and a ``num_steps``-step process, with a constant
    LR (a few-step run cannot anneal over a 200-step warm-up)."""
    config = recipe("tiny")
    net = dataclasses.replace(config.net, base_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(16,))
    config = dataclasses.replace(config, net=net, synthetic_n=64, precision="fp32", preview_count=0,
                                 diffusion=dataclasses.replace(config.diffusion, num_steps=num_steps))
    return dataclasses.replace(config, optim=dataclasses.replace(config.optim, batch=8, decay="none"), **changes)


def tiny_gan(**changes) -> TrainConfig:
    """The DCGAN recipe at 32 px with 8-channel G and D."""
    config = recipe("dcgan")
    config = dataclasses.replace(config, resolution=32, synthetic_n=64, preview_count=0,
                                 gan=dataclasses.replace(config.gan, ngf=8, ndf=8))
    return dataclasses.replace(config, optim=dataclasses.replace(config.optim, batch=8), **changes)


def unet16(**changes) -> TrainConfig:
    """The tiny recipe as a 16 px UNet (16 channels, two levels, attention at 8 px) in fp32, with a
    constant LR and the fixed-decay EMA only: the first wave's tiny-v1 training (the post-hoc EMA and
    LR-decay tests turn theirs on)."""
    config = recipe("tiny")
    config = dataclasses.replace(config, posthoc_ema=False, ema_length=0.0,
                                 optim=dataclasses.replace(config.optim, decay="none"))
    net = dataclasses.replace(config.net, resolution=16, base_channels=16, channel_mult=(1, 2), num_res_blocks=1,
                              attention_resolutions=(8,))
    return dataclasses.replace(config, net=net, resolution=16, precision="fp32", **changes)


def small_unet(*, warmup: int = 2, **changes) -> TrainConfig:
    """A 16 px UNet (16 channels, two levels) that trains a step in well under a second; 4-image previews."""
    config = unet16(synthetic_n=64, preview_count=4, preview_steps=3, log_every=2, checkpoint_every=3, sample_every=100)
    config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, batch=8, warmup=warmup))
    return dataclasses.replace(config, **changes)


def four_step_unet(**changes) -> TrainConfig:
    """:func:`unet16` trained 4 steps of batch 4 on 32 images, a 50-step process, a checkpoint every 2
    steps, a log line every step and no previews (the crash-safety and bad-input tests)."""
    config = unet16(synthetic_n=32, preview_count=0, log_every=1, checkpoint_every=2, train_steps=4)
    config = dataclasses.replace(config, diffusion=dataclasses.replace(config.diffusion, num_steps=50),
                                 optim=dataclasses.replace(config.optim, batch=4, warmup=2))
    return dataclasses.replace(config, **changes)


def dcgan32(width: int = 8, *, batch: int = 8, **changes) -> TrainConfig:
    """The DCGAN recipe at 32 px in fp32 with ``width``-channel G and D, a ``width``-dim latent and batches of ``batch``."""
    config = recipe("dcgan")
    return dataclasses.replace(
        config, resolution=32, precision="fp32", gan=dataclasses.replace(config.gan, ngf=width, ndf=width, z_dim=width),
        optim=dataclasses.replace(config.optim, batch=batch), **changes,
    )


def small_dcgan(*, width: int = 16, **changes) -> TrainConfig:
    """A 32 px DCGAN with ``width``-channel G and D and a ``width``-dim latent; 4-image previews."""
    config = dcgan32(width, synthetic_n=32, preview_count=4, log_every=2, checkpoint_every=100, sample_every=100)
    return dataclasses.replace(config, **changes)


def tiny_classifier(**changes) -> TrainConfig:
    """The classifier-32 recipe as a 16 px trunk (16 channels, two levels, attention at 8 px) in fp32 on 64 landscapes,
    batch 8 at a constant LR of 1e-3; a log line and a held-out evaluation every 3 steps, no rotation checkpoints."""
    config = recipe("classifier-32")
    net = dataclasses.replace(config.net, resolution=16, base_channels=16, channel_mult=(1, 2), num_res_blocks=1,
                              attention_resolutions=(8,), head_channels=16)
    config = dataclasses.replace(
        config, net=net, resolution=16, synthetic_n=64, precision="fp32", log_every=3, checkpoint_every=100,
        train_steps=6, optim=dataclasses.replace(config.optim, batch=8, lr=1e-3, warmup=2, decay="none"),
        classifier=dataclasses.replace(config.classifier, eval_every=3, holdout=8),
    )
    return dataclasses.replace(config, **changes)
