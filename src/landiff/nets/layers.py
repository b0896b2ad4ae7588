"""Building blocks of the ADM UNet: embeddings, residual blocks, attention, resampling.

Every block takes ``(h, emb)`` so a level of the UNet is a plain list of blocks. Blocks keep the
memory format of their input (NCHW or channels_last): no ``.view`` on activations, and the
attention block moves tokens into the (B, L, C) layout that channels_last already stores.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Resample = Literal["none", "up", "down"]


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups, or the largest divisor of ``channels`` below 32 for tiny nets."""
    groups = max(g for g in range(1, min(32, channels) + 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


def zero_init(module: nn.Module) -> nn.Module:
    """Zeroes all parameters of ``module`` so a residual branch starts as the identity (ADM)."""
    for param in module.parameters():
        nn.init.zeros_(param)
    return module


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of timesteps (Transformer positional encoding, DDPM appendix B).

    Args:
        t: (B,) timesteps, integer or float; any scale (the net does not know what t means).
        dim: embedding width.
        max_period: longest wavelength, in units of t.

    Returns:
        (B, dim) float32: [cos(t·f_k), sin(t·f_k)] with f_k = max_period^(−k/half), zero-padded
        when ``dim`` is odd.
    """
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float32, device=t.device) / half
    freqs = torch.exp(-math.log(max_period) * exponent)
    angles = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class Downsample(nn.Module):
    """Halves H and W with a stride-2 3×3 conv (DDPM)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, h: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(h)


class Upsample(nn.Module):
    """Doubles H and W by nearest-neighbour repeat followed by a 3×3 conv (DDPM)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, h: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))


def _resample(h: torch.Tensor, mode: Resample) -> torch.Tensor:
    """Parameter-free resampling used inside BigGAN-style residual blocks (ADM §3)."""
    if mode == "down":
        return F.avg_pool2d(h, kernel_size=2, stride=2)
    if mode == "up":
        return F.interpolate(h, scale_factor=2.0, mode="nearest")
    return h


class ResBlock(nn.Module):
    """Residual block conditioned on the embedding (DDPM appendix B; ADM §3 for AdaGN, up/down).

    h → GN → SiLU → [resample] → conv3×3 → (+emb | AdaGN) → SiLU → dropout → conv3×3 (zero init),
    plus a skip path (identity, or a 1×1 conv when the channel count changes; resampled too).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        emb_channels: int,
        dropout: float = 0.0,
        use_scale_shift_norm: bool = True,
        resample: Resample = "none",
    ) -> None:
        super().__init__()
        self.resample = resample
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_norm = group_norm(in_channels)
        self.in_conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        # AdaGN needs a scale and a shift per channel; the additive variant only a shift.
        emb_out = 2 * out_channels if use_scale_shift_norm else out_channels
        self.emb_proj = nn.Linear(emb_channels, emb_out)
        self.out_norm = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.out_conv = zero_init(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Args: h (B, C_in, H, W); emb (B, E). Returns (B, C_out, H', W'), H' = H·{1, 2, ½}."""
        x = _resample(h, self.resample)
        h = F.silu(self.in_norm(h))
        h = self.in_conv(_resample(h, self.resample))
        e = self.emb_proj(F.silu(emb))[:, :, None, None]
        if self.use_scale_shift_norm:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_norm(h) * (1 + scale) + shift
        else:
            h = self.out_norm(h + e)
        h = self.out_conv(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over all H·W positions, with a residual connection.

    Uses ``scaled_dot_product_attention`` (flash / memory-efficient kernels where available).
    The output projection starts at zero so the block is the identity at initialisation.
    """

    def __init__(self, channels: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj_out = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, h: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        """Args: h (B, C, H, W). Returns (B, C, H, W)."""
        batch, channels, height, width = h.shape
        head_dim = channels // self.num_heads
        qkv = self.qkv(self.norm(h))
        # (B, 3C, H, W) → (B, H·W, 3, heads, d): free for channels_last memory, one copy otherwise.
        tokens = qkv.permute(0, 2, 3, 1).reshape(batch, height * width, 3, self.num_heads, head_dim)
        q, k, v = tokens.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, L, d)
        out = F.scaled_dot_product_attention(q, k, v)
        # (B, heads, L, d) → (B, H, W, C) → NCHW view with channels_last strides.
        out = out.transpose(1, 2).reshape(batch, height, width, channels).permute(0, 3, 1, 2)
        return h + self.proj_out(out)
