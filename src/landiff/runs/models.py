"""The networks and the diffusion process of a run, built from its config.

Training (:mod:`landiff.train`) builds them to train; :func:`landiff.runs.load.load_run` builds
the same ones to load a checkpoint into. One builder each (UNet, DCGAN G and D, noisy classifier),
so both always agree on the shape.
"""

from __future__ import annotations

from typing import TypeVar

import torch

from landiff.diffusion import EDMNetwork, EDMProcess, GaussianDiffusion, beta_schedule
from landiff.nets import NoisyClassifier, UNet
from landiff.nets.dcgan import DCGANConfig, Discriminator, Generator
from landiff.runs.config import TrainConfig

__all__ = ["build_classifier", "build_diffusion", "build_discriminator", "build_edm_process", "build_generator",
           "build_unet", "gan_net_config", "sampling_network"]

_Module = TypeVar("_Module", bound=torch.nn.Module)


def build_diffusion(config: TrainConfig) -> GaussianDiffusion:
    """The discrete process every sampler walks: for ``--formulation discrete`` the run's own
    (schedule, prediction, variance, loss, weighting); for ``edm`` its sampling table
    (:meth:`~landiff.diffusion.edm.EDMProcess.sampling_process`), whose model is :func:`sampling_network`."""
    d = config.diffusion
    if d.formulation == "edm":
        return build_edm_process(config).sampling_process()
    return GaussianDiffusion(
        beta_schedule(d.schedule, d.num_steps), prediction=d.prediction, variance=d.variance, loss=d.loss,  # type: ignore[arg-type]
        weighting=d.weighting, snr_gamma=d.snr_gamma,  # type: ignore[arg-type]
    )


def build_edm_process(config: TrainConfig) -> EDMProcess:
    """EDM's preconditioning and noise-level distribution of an ``--formulation edm`` run."""
    d = config.diffusion
    return EDMProcess(sigma_data=d.sigma_data, p_mean=d.p_mean, p_std=d.p_std, num_levels=d.num_steps)


def sampling_network(config: TrainConfig, net: torch.nn.Module) -> torch.nn.Module:
    """The model the samplers call for ``net``: ``net`` itself, or for an EDM run the preconditioned
    denoiser on :func:`build_diffusion`'s table (:class:`~landiff.diffusion.edm.EDMNetwork`)."""
    if config.diffusion.formulation == "edm":
        return EDMNetwork(net, build_edm_process(config)).to(next(net.parameters()).device)
    return net


def build_unet(config: TrainConfig, device: torch.device) -> UNet:
    """The run's UNet on ``device`` (channels-last when ``config.channels_last``)."""
    return _placed(UNet(config.net), config, device)


def build_classifier(config: TrainConfig, device: torch.device) -> NoisyClassifier:
    """The noisy classifier of a (finalised) ``model="classifier"`` run on ``device`` (channels-last when asked)."""
    return _placed(NoisyClassifier(config.net), config, device)


def gan_net_config(config: TrainConfig) -> DCGANConfig:
    """The DCGAN shape of a (finalised) run config."""
    g = config.gan
    return DCGANConfig(resolution=config.resolution, z_dim=g.z_dim, ngf=g.ngf, ndf=g.ndf, num_classes=g.num_classes,
                       spectral_norm=g.spectral_norm)


def build_generator(config: TrainConfig, device: torch.device) -> Generator:
    """G with DCGAN init, on ``device`` (channels-last when ``config.channels_last``)."""
    return _placed(Generator(gan_net_config(config)), config, device)


def build_discriminator(config: TrainConfig, device: torch.device) -> Discriminator:
    """D with DCGAN init, on ``device`` (channels-last when ``config.channels_last``)."""
    return _placed(Discriminator(gan_net_config(config)), config, device)


def _placed(model: _Module, config: TrainConfig, device: torch.device) -> _Module:
    """``model`` moved to ``device`` and, when ``config.channels_last``, to the channels-last layout (in place)."""
    model = model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # Module.to's stubs omit this keyword
    return model
