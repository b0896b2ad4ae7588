"""The ADM UNet (Dhariwal & Nichol 2021 §3, building on DDPM appendix B and Improved DDPM).

The network knows nothing about β, σ or what t means: ``UNet(config)(x, t, y)`` maps
(B, C, H, W) images, (B,) timesteps and optional (B,) labels to (B, out_channels, H, W).

Layout for ``channel_mult = (1, 2, 2)``, ``num_res_blocks = 2`` at 32 px (``c`` = base channels)::

    in conv                         c × 32 × 32
    level 0: 2 ResBlocks [+attn]    c × 32 × 32   → down
    level 1: 2 ResBlocks [+attn]   2c × 16 × 16   → down
    level 2: 2 ResBlocks [+attn]   2c ×  8 ×  8
    middle: ResBlock, attn, ResBlock
    decoder: 3 ResBlocks per level on [h, skip] concatenations, up between levels
    out: GN → SiLU → conv (zero init)   out_channels × 32 × 32

Quick check::

    python -c "from landiff.nets import UNet, get_preset; print(UNet(get_preset('tiny')))"
"""

from __future__ import annotations

import torch
from torch import nn

from landiff.errors import UserError
from landiff.nets.config import UNetConfig
from landiff.nets.layers import (
    AttentionBlock,
    Downsample,
    Resample,
    ResBlock,
    Upsample,
    group_norm,
    timestep_embedding,
    zero_init,
)


class Stage(nn.ModuleList):
    """A run of blocks applied in order, each called as ``block(h, emb)``."""

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for block in self:
            h = block(h, emb)
        return h


def time_mlp(config: UNetConfig) -> nn.Sequential:
    """Sinusoidal features (base_channels wide) → Linear → SiLU → Linear, to the embedding width (DDPM appendix B)."""
    base, emb_ch = config.base_channels, config.emb_channels
    return nn.Sequential(nn.Linear(base, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))


def res_block(config: UNetConfig, in_ch: int, out_ch: int, resample: Resample = "none") -> ResBlock:
    """A residual block with the config's embedding width, dropout and norm (AdaGN or additive)."""
    return ResBlock(in_ch, out_ch, config.emb_channels, config.dropout, config.use_scale_shift_norm, resample)


def attention_at(config: UNetConfig, factor: int, ch: int) -> list[nn.Module]:
    """An attention block when downsample ``factor`` is an attention level of ``config``, else nothing."""
    if factor in config.attention_downsample_factors:
        return [AttentionBlock(ch, config.heads_for(ch))]
    return []


def build_encoder(config: UNetConfig) -> tuple[nn.ModuleList, list[int]]:
    """The downsampling trunk: stages, one per skip connection, and each stage's output channels
    (the first entry is the input conv's). Shared by the UNet and the noisy classifier."""
    stages, skip_channels = [], [config.base_channels]
    ch, factor = config.base_channels, 1
    for level, mult in enumerate(config.channel_mult):
        for _ in range(config.num_res_blocks):
            out_ch = config.base_channels * mult
            stages.append(Stage([res_block(config, ch, out_ch), *attention_at(config, factor, out_ch)]))
            ch = out_ch
            skip_channels.append(ch)
        if level < config.num_levels - 1:
            down = res_block(config, ch, ch, "down") if config.resblock_updown else Downsample(ch)
            stages.append(Stage([down]))
            factor *= 2
            skip_channels.append(ch)
    return nn.ModuleList(stages), skip_channels


def middle_block(config: UNetConfig, ch: int) -> Stage:
    """ResBlock → attention → ResBlock at the lowest resolution (ADM §3)."""
    return Stage([res_block(config, ch, ch), AttentionBlock(ch, config.heads_for(ch)), res_block(config, ch, ch)])


class UNet(nn.Module):
    """ADM UNet; see the module docstring for the layout and ``UNetConfig`` for the options."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        base, emb_ch = config.base_channels, config.emb_channels
        # Sinusoidal features → 2-layer MLP with SiLU (DDPM appendix B; width 4·base).
        self.time_mlp = time_mlp(config)
        # One extra row: index num_classes is the null label for classifier-free guidance.
        self.class_emb = nn.Embedding(config.num_classes + 1, emb_ch) if config.num_classes > 0 else None
        # Augmentation label → embedding without a bias: a zero label adds nothing (EDM App. C.4).
        self.augment_emb = nn.Linear(config.augment_dim, emb_ch, bias=False) if config.augment_dim > 0 else None
        self.in_conv = nn.Conv2d(config.in_channels, base, 3, padding=1)
        self.encoder, skip_channels = build_encoder(config)
        self.middle = middle_block(config, skip_channels[-1])
        self.decoder = self._build_decoder(skip_channels)
        out_ch = base * config.channel_mult[0]
        # Zero output conv: the whole UNet outputs exactly 0 at initialisation (ADM).
        out_conv = zero_init(nn.Conv2d(out_ch, config.out_channels, 3, padding=1))
        self.out = nn.Sequential(group_norm(out_ch), nn.SiLU(), out_conv)

    def _build_decoder(self, skip_channels: list[int]) -> nn.ModuleList:
        """Decoder stages: num_res_blocks + 1 per level, each eating one skip (DDPM appendix B)."""
        cfg = self.config
        skips = list(skip_channels)
        stages, ch, factor = [], skips[-1], cfg.size_multiple
        for level in reversed(range(cfg.num_levels)):
            out_ch = cfg.base_channels * cfg.channel_mult[level]
            for i in range(cfg.num_res_blocks + 1):
                blocks = [res_block(cfg, ch + skips.pop(), out_ch), *attention_at(cfg, factor, out_ch)]
                ch = out_ch
                if level > 0 and i == cfg.num_res_blocks:
                    blocks.append(res_block(cfg, ch, ch, "up") if cfg.resblock_updown else Upsample(ch))
                    factor //= 2
                stages.append(Stage(blocks))
        return nn.ModuleList(stages)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None,
                augment_labels: torch.Tensor | None = None) -> torch.Tensor:
        """Predicts the network output for noisy images.

        Args:
            x: (B, in_channels, H, W) images; H and W multiples of ``config.size_multiple``.
            t: (B,) timesteps, integer or float (0-d is broadcast to the batch).
            y: (B,) int64 class labels in [0, num_classes]; None means the null label
                ``num_classes``. Only for class-conditional nets.
            augment_labels: (B, augment_dim) what augmentation each training image had; None (and
                zeros) mean none, which is how a net trained with augmentation is sampled.

        Returns:
            (B, out_channels, H, W): out_channels = 2·in_channels when ``learn_sigma``.
        """
        self._check_input(x, y)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels))
        if self.class_emb is not None:
            if y is None:
                y = torch.full((x.shape[0],), self.config.num_classes, dtype=torch.long, device=x.device)
            emb = emb + self.class_emb(y)
        if augment_labels is not None:
            if self.augment_emb is None:
                raise UserError("augmentation labels were given to a UNet trained without augmentation (augment_dim=0)")
            emb = emb + self.augment_emb(augment_labels.to(emb.dtype))
        h = self.in_conv(x)
        skips = [h]
        for stage in self.encoder:
            h = stage(h, emb)
            skips.append(h)
        h = self.middle(h, emb)
        for stage in self.decoder:
            h = stage(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)

    def _check_input(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        cfg = self.config
        if x.ndim != 4 or x.shape[1] != cfg.in_channels:
            raise UserError(
                f"UNet expects images of shape (B, {cfg.in_channels}, H, W), got {tuple(x.shape)}; "
                f"set in_channels to match the data"
            )
        height, width = x.shape[-2:]
        m = cfg.size_multiple
        if height % m or width % m:
            near = sorted({max(m, height // m * m), height // m * m + m, max(m, width // m * m), width // m * m + m})
            raise UserError(
                f"input of {height}×{width} px does not fit this UNet ({cfg.num_levels} levels): height and "
                f"width must be multiples of {m}, e.g. {', '.join(map(str, near))}; resize the images or "
                f"change channel_mult"
            )
        if y is not None and self.class_emb is None:
            raise UserError("class labels were given to an unconditional UNet (num_classes=0); set num_classes")


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters of ``model`` (works on the meta device, no memory needed)."""
    return sum(param.numel() for param in model.parameters())
