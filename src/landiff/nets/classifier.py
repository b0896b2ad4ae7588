"""ADM's noisy classifier (Dhariwal & Nichol 2021, arXiv 2105.05233, §4 and appendix): the UNet's
encoder half followed by an attention-pooling head, conditioned on the noise level.

``NoisyClassifier(config)(x_t, sigma)`` maps (B, C, H, W) variance-preserving noisy images
x_t = √ᾱ·x0 + √(1 − ᾱ)·ε (data in [−1, 1]) and their (B,) noise levels σ = √((1 − ᾱ)/ᾱ) to
(B, num_classes) logits of p(y | x_t). The guidance of ADM §4 (Algorithm 1) takes
∇_{x_t} log p(y | x_t) through it.

Noise conditioning is continuous in σ, so one classifier serves every landiff diffusion model
(discrete schedule or EDM): c_noise = ¼ ln max(σ, σ_min) (EDM's c_noise, arXiv 2206.00364 Table 1,
with σ_min = 0.002 so that a clean image, σ = 0, gets the smallest level EDM samples), times
:data:`~landiff.diffusion.edm.NOISE_EMBEDDING_SCALE`, through the UNet's sinusoidal embedding and MLP.

Layout for ``channel_mult = (1, 2, 2)`` at 32 px (``c`` = base channels)::

    in conv                         c × 32 × 32
    encoder levels (as the UNet)   2c ×  8 ×  8     (ResBlocks [+attn], down between levels)
    middle: ResBlock, attn, ResBlock
    head: GN → SiLU → attention pool (query: spatial mean + position) → linear   num_classes

There is no batch norm and no cross-sample operation, so logits of image i depend on image i only
and the gradient of Σ_i log p(y_i | x_i) w.r.t. the batch is the per-image gradient.

Quick check::

    python -c "from landiff.nets import *
    print(NoisyClassifier(with_overrides(CLASSIFIER_PRESETS['classifier-32'], num_classes=4)))"
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from landiff.diffusion.edm import NOISE_EMBEDDING_SCALE, SIGMA_MIN, EDMProcess
from landiff.errors import UserError
from landiff.nets.config import UNetConfig
from landiff.nets.layers import group_norm, timestep_embedding
from landiff.nets.unet import build_encoder, middle_block, time_mlp

__all__ = ["CLASSIFIER_PRESETS", "AttentionPool", "NoisyClassifier", "noise_conditioning"]

# Trunk shapes of the classifier recipes (runs/config.py RECIPES; num_classes comes from the data).
# ADM's ImageNet classifiers are the diffusion UNet's encoder at full width (128 ch, attention at
# 32/16/8, 64 channels per head). On a 2-core CPU a 10-minute run must see tens of thousands of
# noisy images, so the 32 px trunk is the `tiny` UNet's encoder minus its 4 px level: 32 channels,
# (1, 2, 2), 2 blocks per level, attention at 8 px only (a 64-token map, the same place `tiny` has
# it), BigGAN up/down and AdaGN as ADM: 0.79 M parameters (4 classes), 6 ms of forward+backward per image on one
# CPU thread against the tiny UNet's 23 ms (at 64 channels: 3.1 M and 29 ms, too slow for the budget).
# The 64 px trunk adds one level so the pool still sees an 8 × 8 map, with attention at 16 and 8 px.
CLASSIFIER_PRESETS: dict[str, UNetConfig] = {
    "classifier-32": UNetConfig(
        resolution=32, base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=2, attention_resolutions=(8,),
        head_channels=32, dropout=0.0, resblock_updown=True, use_scale_shift_norm=True,
    ),
    "classifier-64": UNetConfig(
        resolution=64, base_channels=32, channel_mult=(1, 2, 2, 2), num_res_blocks=2, attention_resolutions=(16, 8),
        head_channels=32, dropout=0.0, resblock_updown=True, use_scale_shift_norm=True,
    ),
}


def noise_conditioning(sigma: torch.Tensor) -> torch.Tensor:
    """The value the timestep embedding receives for noise level σ: 250 · ¼ ln max(σ, 0.002), float32 (B,)."""
    return NOISE_EMBEDDING_SCALE * EDMProcess.c_noise(sigma.float().clamp(min=SIGMA_MIN))


class AttentionPool(nn.Module):
    """Attention pooling over a (B, C, H, W) map (the idea of ADM's ``AttentionPool2d``, from CLIP).

    The tokens are the H·W positions plus their mean, each with a learned positional embedding; one
    query, from the mean token, attends over all of them with ``num_heads`` heads; a linear map of
    the pooled vector gives the (B, out_features) output. The positional embedding fixes H·W.
    """

    def __init__(self, channels: int, tokens: int, num_heads: int, out_features: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.position = nn.Parameter(torch.randn(tokens + 1, channels) / channels**0.5)
        self.query = nn.Linear(channels, channels)
        self.key_value = nn.Linear(channels, 2 * channels)
        self.proj = nn.Linear(channels, out_features)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Args: h (B, C, H, W) with H·W = ``tokens``. Returns (B, out_features)."""
        batch, channels = h.shape[:2]
        tokens = h.flatten(2).transpose(1, 2)  # (B, L, C)
        tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1) + self.position.to(h.dtype)
        head_dim = channels // self.num_heads
        q = self.query(tokens[:, :1]).reshape(batch, 1, self.num_heads, head_dim).transpose(1, 2)
        k, v = self.key_value(tokens).reshape(batch, -1, 2, self.num_heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        pooled = F.scaled_dot_product_attention(q, k, v)  # (B, heads, 1, d)
        return self.proj(pooled.transpose(1, 2).reshape(batch, channels))


class NoisyClassifier(nn.Module):
    """p(y | x_t, σ): the ADM UNet's encoder and middle block, then GN → SiLU → attention pool → linear.

    Args:
        config: the trunk (base_channels, channel_mult, num_res_blocks, attention_resolutions, heads,
            dropout, resblock_updown, use_scale_shift_norm) at ``config.resolution`` px, the only
            input size (the pool's positional embedding is per position); ``num_classes`` (≥ 2) is
            the number of outputs. ``learn_sigma`` and ``augment_dim`` must be off.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        if config.num_classes < 2 or config.learn_sigma or config.augment_dim:
            raise UserError(f"a noisy classifier needs num_classes >= 2 and no learn_sigma or augment_dim; got "
                            f"num_classes={config.num_classes}, learn_sigma={config.learn_sigma}, "
                            f"augment_dim={config.augment_dim}")
        self.config = config
        self.time_mlp = time_mlp(config)
        self.in_conv = nn.Conv2d(config.in_channels, config.base_channels, 3, padding=1)
        self.encoder, channels = build_encoder(config)
        ch = channels[-1]
        self.middle = middle_block(config, ch)
        side = config.resolution // config.size_multiple
        self.out = nn.Sequential(group_norm(ch), nn.SiLU(),
                                 AttentionPool(ch, side * side, config.heads_for(ch), config.num_classes))

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def forward(self, x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Logits of p(y | x_t) for variance-preserving noisy images.

        Args:
            x_t: (B, in_channels, R, R) √ᾱ·x0 + √(1 − ᾱ)·ε with x0 in [−1, 1], R = ``config.resolution``.
            sigma: (B,) float σ = √((1 − ᾱ)/ᾱ) ≥ 0 of each image (0 = clean; a 0-d tensor is broadcast);
                values below 0.002 are conditioned as 0.002.

        Returns:
            (B, num_classes) float32 logits; differentiable w.r.t. ``x_t``.
        """
        self._check_input(x_t, sigma)
        if sigma.ndim == 0:
            sigma = sigma.expand(x_t.shape[0])
        emb = self.time_mlp(timestep_embedding(noise_conditioning(sigma.to(x_t.device)), self.config.base_channels))
        h = self.in_conv(x_t)
        for stage in self.encoder:
            h = stage(h, emb)
        h = self.middle(h, emb)
        return self.out(h).float()

    def _check_input(self, x_t: torch.Tensor, sigma: torch.Tensor) -> None:
        cfg = self.config
        if x_t.ndim != 4 or tuple(x_t.shape[1:]) != (cfg.in_channels, cfg.resolution, cfg.resolution):
            raise UserError(f"this noisy classifier takes images of shape (B, {cfg.in_channels}, {cfg.resolution}, "
                            f"{cfg.resolution}), got {tuple(x_t.shape)}; resize the images to {cfg.resolution} px or "
                            "train a classifier at their resolution")
        if sigma.ndim not in (0, 1) or (sigma.ndim == 1 and sigma.shape[0] != x_t.shape[0]):
            raise UserError(f"sigma must have shape ({x_t.shape[0]},) (one noise level per image), got {tuple(sigma.shape)}")
