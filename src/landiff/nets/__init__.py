"""Networks: the ADM UNet, its configuration and named presets; ADM's noisy classifier; the DCGAN baseline.

Networks know nothing about β, σ or what t means: they map ``(x, t, y=None)`` to a tensor. The one
exception is the noisy classifier, whose contract is ``(x_t, σ)`` so that it guides any schedule.
"""

from landiff.nets.classifier import CLASSIFIER_PRESETS, NoisyClassifier
from landiff.nets.config import UNetConfig, with_overrides
from landiff.nets.dcgan import DCGAN_SIZES, DCGANConfig, Discriminator, Generator, dcgan_layout, latents
from landiff.nets.presets import PAPER_COUNTS, PRESETS, PaperCount, get_preset
from landiff.nets.unet import UNet, count_parameters

__all__ = [
    "CLASSIFIER_PRESETS",
    "DCGAN_SIZES",
    "DCGANConfig",
    "Discriminator",
    "Generator",
    "dcgan_layout",
    "latents",
    "PAPER_COUNTS",
    "PRESETS",
    "NoisyClassifier",
    "PaperCount",
    "UNet",
    "UNetConfig",
    "count_parameters",
    "get_preset",
    "with_overrides",
]
