"""Tiny training configs shared by the compare and provenance tests (32 px, seconds to train on 2 cores)."""

from __future__ import annotations

import dataclasses

from landiff.train import TrainConfig, recipe


def tiny_diffusion(num_steps: int = 50, **changes) -> TrainConfig:
    """The tiny recipe at 16 base channels, two levels and a ``num_steps``-step process."""
    config = recipe("tiny")
    net = dataclasses.replace(config.net, base_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(16,))
    config = dataclasses.replace(config, net=net, synthetic_n=64, precision="fp32", preview_count=0,
                                 diffusion=dataclasses.replace(config.diffusion, num_steps=num_steps))
    return dataclasses.replace(config, optim=dataclasses.replace(config.optim, batch=8), **changes)


def tiny_gan(**changes) -> TrainConfig:
    """The DCGAN recipe at 32 px with 8-channel G and D."""
    config = recipe("dcgan")
    config = dataclasses.replace(config, resolution=32, synthetic_n=64, preview_count=0,
                                 gan=dataclasses.replace(config.gan, ngf=8, ndf=8))
    return dataclasses.replace(config, optim=dataclasses.replace(config.optim, batch=8), **changes)
