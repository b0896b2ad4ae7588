"""The DCGAN baseline (Radford, Metz & Chintala 2015, arXiv 1511.06434) at any supported size.

Architecture guidelines of the paper (§3): strided convolutions instead of pooling, batch norm in
both nets except on the generator's output layer and the discriminator's input layer, ReLU in the
generator with a tanh output, LeakyReLU(0.2) in the discriminator, no fully connected hidden
layers, weights drawn from N(0, 0.02).

Sizes: the generator starts from an ``s × s`` map (s = 4 in the paper) and doubles it with 4×4
stride-2 transposed convolutions until it reaches the resolution; the discriminator mirrors it.
Supported resolutions are ``s · 2^k`` with ``s ∈ {4, 5, 6, 7}``, ``k ≥ 3`` and 32 ≤ size ≤ 256
(:data:`DCGAN_SIZES`: 32, 40, 48, 56, 64, 80, …, 224, 256). Channel widths follow the paper's
64 px net (ngf·8 → ngf·4 → ngf·2 → ngf) and are capped at 8× so 128/256 px nets stay the same
size per layer instead of growing to ngf·32.

Class-conditional variant (opt-in, ``num_classes > 0``): the generator concatenates a learned
class embedding (width ``z_dim``) to z (Mirza & Osindero 2014); the discriminator adds a
projection term ⟨embed(y), Σ_hw φ(x)⟩ to its logit (Miyato & Koyama 2018, eq. 3), φ(x) being its
last feature map before the final convolution.

Spectral normalisation (opt-in, ``spectral_norm=True``; Miyato et al. 2018, arXiv 1802.05957): every
weight of the discriminator (convolutions, the logit and the projection embedding) is divided by its
largest singular value, estimated with one power iteration per forward pass, which bounds D's
Lipschitz constant; as in SNGAN, D then has no batch norm. The generator is unchanged.

Standing statistics (:func:`standing_statistics`, BigGAN §3 / App. C of Brock et al. 2018): an
averaged generator (an EMA of G's weights) carries G's batch-norm running statistics, which belong to
other weights; before it is sampled its statistics are re-estimated by averaging the batch moments of
its own outputs over fixed latents.

Example::

    config = DCGANConfig(resolution=64)
    g, d = Generator(config), Discriminator(config)
    x = g(latents(range(16), config.z_dim))       # (16, 3, 64, 64) in [−1, 1]
    logits = d(x)                                  # (16,)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from landiff.errors import UserError
from landiff.noise import SampleNoise

MIN_SIZE, MAX_SIZE = 32, 256
START_SIZES = (4, 5, 6, 7)  # s: the first feature map is s × s
MAX_WIDTH_MULT = 8  # channel multiplier cap (the paper's 64 px net tops out at ngf·8)
INIT_STD = 0.02  # DCGAN §4: "All weights were initialized from a zero-centered Normal ... 0.02"
LEAKY_SLOPE = 0.2  # DCGAN §4: LeakyReLU slope 0.2

DCGAN_SIZES: tuple[int, ...] = tuple(
    sorted(s * 2**k for s in START_SIZES for k in range(3, 7) if MIN_SIZE <= s * 2**k <= MAX_SIZE)
)


def dcgan_layout(resolution: int) -> tuple[int, int]:
    """Splits ``resolution`` into (start size s, number of doublings k) with resolution = s · 2^k.

    Raises:
        UserError: when ``resolution`` is not in :data:`DCGAN_SIZES`.
    """
    if resolution not in DCGAN_SIZES:
        raise UserError(
            f"--resolution {resolution} is not a DCGAN size; use one of {', '.join(map(str, DCGAN_SIZES))} "
            "(s·2^k px with s in 4..7)"
        )
    doublings = 0
    while resolution % 2 == 0 and resolution // 2 >= START_SIZES[0]:
        resolution //= 2
        doublings += 1
    return resolution, doublings


@dataclasses.dataclass(frozen=True)
class DCGANConfig:
    """Shape of a DCGAN pair.

    Attributes:
        resolution: image size in pixels (one of :data:`DCGAN_SIZES`).
        z_dim: latent width (100 in the paper).
        ngf: generator channels at the last (largest) feature map.
        ndf: discriminator channels at the first (largest) feature map.
        channels: image channels (3 for RGB).
        num_classes: 0 for unconditional; otherwise labels are 0..num_classes−1.
        spectral_norm: spectrally normalised discriminator without batch norm (SNGAN).
    """

    resolution: int = 64
    z_dim: int = 100
    ngf: int = 64
    ndf: int = 64
    channels: int = 3
    num_classes: int = 0
    spectral_norm: bool = False

    def __post_init__(self) -> None:
        dcgan_layout(self.resolution)
        for name in ("z_dim", "ngf", "ndf", "channels"):
            if getattr(self, name) < 1:
                raise UserError(f"DCGAN {name} must be >= 1, got {getattr(self, name)}")
        if self.num_classes < 0:
            raise UserError(f"DCGAN num_classes must be >= 0, got {self.num_classes}")

    def widths(self, base: int) -> list[int]:
        """Channels at each feature map from s × s up to resolution / 2, e.g. [8b, 4b, 2b, b] at 64 px."""
        _, doublings = dcgan_layout(self.resolution)
        return [base * min(MAX_WIDTH_MULT, 2 ** (doublings - 1 - i)) for i in range(doublings)]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DCGANConfig:
        return cls(**values)


def latents(seeds: Sequence[int], z_dim: int, device: torch.device | str = "cpu") -> Tensor:
    """z ~ N(0, I) with row k drawn from seed k alone, so an image does not depend on its batch.

    Returns:
        (len(seeds), z_dim) float32 tensor on ``device``.
    """
    return SampleNoise(list(seeds), device).randn(z_dim)


def _up(c_in: int, c_out: int) -> list[nn.Module]:
    """4×4 stride-2 transposed conv (doubles H and W) + BN + ReLU."""
    return [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def _down(c_in: int, c_out: int, norm: bool) -> list[nn.Module]:
    """4×4 stride-2 conv (halves H and W) + optional BN + LeakyReLU(0.2)."""
    conv = nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not norm)  # BN's shift replaces the bias
    layers: list[nn.Module] = [conv, nn.BatchNorm2d(c_out)] if norm else [conv]
    return [*layers, nn.LeakyReLU(LEAKY_SLOPE, inplace=True)]


def _spectrally_normalised(module: nn.Module) -> None:
    """Wraps the weight of every convolution and embedding in ``module`` in spectral normalisation (one
    power iteration per training forward; eval mode reuses the last estimate)."""
    for child in list(module.modules()):
        if isinstance(child, (nn.Conv2d, nn.Embedding)):
            nn.utils.parametrizations.spectral_norm(child)


class Generator(nn.Module):
    """z (B, z_dim) [+ labels (B,)] → images (B, channels, resolution, resolution) in [−1, 1]."""

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__()
        self.config = config
        start, _ = dcgan_layout(config.resolution)
        widths = config.widths(config.ngf)
        in_dim = config.z_dim
        self.embed: nn.Embedding | None = None
        if config.num_classes:
            self.embed = nn.Embedding(config.num_classes, config.z_dim)
            in_dim += config.z_dim
        # (in_dim) x 1 x 1 → (widths[0]) x s x s: the paper's "project and reshape" as a conv
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(in_dim, widths[0], start, 1, 0, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(True)
        ]
        # (widths[i]) x s·2^i x s·2^i → (widths[i+1]) x s·2^(i+1) x s·2^(i+1)
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers += _up(c_in, c_out)
        # (ngf) x res/2 x res/2 → (channels) x res x res; no BN on the output layer (§3)
        layers += [nn.ConvTranspose2d(widths[-1], config.channels, 4, 2, 1), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        init_dcgan_weights(self)
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, 0.0, 1.0)  # same scale as the z it is concatenated to

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Args: z (B, z_dim); y (B,) int64 labels, required iff the net is class-conditional."""
        h = z
        if self.embed is not None:
            if y is None:
                raise ValueError("this generator is class-conditional: pass labels y")
            h = torch.cat([z, self.embed(y).to(z.dtype)], dim=1)
        return self.main(h[:, :, None, None])


class Discriminator(nn.Module):
    """images (B, channels, resolution, resolution) [+ labels (B,)] → logits (B,) (real > 0)."""

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__()
        self.config = config
        start, _ = dcgan_layout(config.resolution)
        widths = config.widths(config.ndf)[::-1]  # [ndf, 2ndf, …] from res/2 down to s
        # (channels) x res x res → (ndf) x res/2 x res/2; no BN on the input layer (§3)
        layers = _down(config.channels, widths[0], norm=False)
        # (widths[i]) x m x m → (widths[i+1]) x m/2 x m/2 (no BN under spectral normalisation)
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers += _down(c_in, c_out, norm=not config.spectral_norm)
        self.features = nn.Sequential(*layers)
        # (widths[-1]) x s x s → 1 x 1 x 1: the logit
        self.head = nn.Conv2d(widths[-1], 1, start, 1, 0)
        self.embed: nn.Embedding | None = None
        if config.num_classes:
            self.embed = nn.Embedding(config.num_classes, widths[-1])
        init_dcgan_weights(self)
        if config.spectral_norm:
            _spectrally_normalised(self)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Args: x (B, C, H, W) in [−1, 1]; y (B,) labels iff class-conditional. Returns logits (B,)."""
        h = self.features(x)
        logits = self.head(h).flatten()
        if self.embed is not None:
            if y is None:
                raise ValueError("this discriminator is class-conditional: pass labels y")
            # projection term (Miyato & Koyama 2018, eq. 3) on the sum-pooled last feature map
            logits = logits + (self.embed(y).to(h.dtype) * h.sum(dim=(2, 3))).sum(dim=1)
        return logits


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN §4 init: conv and embedding weights N(0, 0.02), BN weight N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, INIT_STD)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, INIT_STD)
        bias = getattr(m, "bias", None)
        if isinstance(bias, Tensor):
            nn.init.zeros_(bias)


STANDING_BATCHES, STANDING_BATCH = 16, 64  # 1,024 latents per re-estimate
STANDING_SEED = 2**31 - 1  # their seeds start here, far from the seeds samples are drawn with


@torch.no_grad()
def standing_statistics(generator: Generator, num_classes: int = 0) -> Generator:
    """Re-estimates ``generator``'s batch-norm statistics from its own outputs (in place; returns it).

    Each BN layer's running mean and variance become the average of its batch moments over
    :data:`STANDING_BATCHES` batches of :data:`STANDING_BATCH` fixed latents (seeds from
    :data:`STANDING_SEED`, labels cycling through the classes), so the result is deterministic and
    depends only on the weights. The generator is left in eval mode.
    """
    norms = [m for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    device = next(generator.parameters()).device
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average of the batches below
    generator.train()
    try:
        for b in range(STANDING_BATCHES):
            seeds = range(STANDING_SEED + b * STANDING_BATCH, STANDING_SEED + (b + 1) * STANDING_BATCH)
            labels = (torch.arange(STANDING_BATCH, device=device) % num_classes) if num_classes else None
            generator(latents(seeds, generator.config.z_dim, device), labels)
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        generator.eval()
    return generator


__all__ = ["DCGANConfig", "DCGAN_SIZES", "Discriminator", "Generator", "dcgan_layout", "init_dcgan_weights", "latents",
           "standing_statistics"]
