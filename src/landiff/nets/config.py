"""``UNetConfig``: every option of the ADM UNet, validated when it is built.

Attention placement is given as **feature-map sizes at the design resolution** (``resolution``),
the way the papers write it ("attention at 16×16" for a 32 px net). Internally each size is
turned into a downsample factor ``resolution // size``, so a net built for 32 px and fed 64 px
images applies attention at the same *levels* (now 32×32 maps) and any input whose height and
width are multiples of 2^(levels − 1) works, square or not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from landiff.errors import UserError


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """Shape of an ADM UNet (Dhariwal & Nichol 2021, §3; Improved DDPM; DDPM appendix B).

    Attributes:
        resolution: image size (px) the net was designed for; ``attention_resolutions`` refer to it.
        in_channels: channels of x (3 for RGB).
        base_channels: channels of the first level; the time embedding has 4× this width.
        channel_mult: channels of level i = base_channels · channel_mult[i]; one level per entry,
            each later level halves the feature-map size.
        num_res_blocks: residual blocks per level in the encoder (the decoder has one more).
        attention_resolutions: feature-map sizes (at ``resolution``) that get self-attention
            after each residual block; the middle block always has attention.
        num_heads: attention heads, used when ``head_channels`` is None.
        head_channels: channels per head (ADM uses 64); wins over ``num_heads`` when set.
        dropout: dropout probability inside residual blocks (before the last conv).
        resblock_updown: BigGAN-style resampling with residual blocks (ADM) instead of a strided
            conv down / nearest+conv up (DDPM).
        use_scale_shift_norm: adaptive group norm, norm(h)·(1 + scale) + shift (ADM §3), instead
            of adding the embedding to h (DDPM).
        num_classes: 0 for an unconditional net; otherwise labels are 0..num_classes−1 and index
            ``num_classes`` is the null label used for classifier-free guidance.
        learn_sigma: output 2·in_channels channels, the second half for the Improved DDPM
            variance interpolation v (Improved DDPM eq. 15).
        augment_dim: width of the augmentation label (EDM's non-leaking augmentation, App. C.4):
            a bias-free linear map of it is added to the time embedding, so a zero (or absent)
            label is exactly the un-augmented network; 0 for a net trained without augmentation.
    """

    resolution: int = 32
    in_channels: int = 3
    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (8,)
    num_heads: int = 4
    head_channels: int | None = None
    dropout: float = 0.0
    resblock_updown: bool = False
    use_scale_shift_norm: bool = True
    num_classes: int = 0
    learn_sigma: bool = False
    augment_dim: int = 0

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists; accept them so config.json loads back.
        for name in ("channel_mult", "attention_resolutions"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        _validate(self)

    @property
    def out_channels(self) -> int:
        """Channels of the output: in_channels, doubled when ``learn_sigma``."""
        return 2 * self.in_channels if self.learn_sigma else self.in_channels

    @property
    def emb_channels(self) -> int:
        """Width of the time (and class) embedding: 4 × base_channels (DDPM, ADM)."""
        return 4 * self.base_channels

    @property
    def num_levels(self) -> int:
        """Number of resolution levels (len(channel_mult))."""
        return len(self.channel_mult)

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this: 2^(levels − 1)."""
        return 2 ** (self.num_levels - 1)

    @property
    def attention_downsample_factors(self) -> tuple[int, ...]:
        """``attention_resolutions`` as downsample factors (1 = full resolution), sorted."""
        return tuple(sorted({self.resolution // size for size in self.attention_resolutions}))

    def heads_for(self, channels: int) -> int:
        """Number of attention heads for a block with ``channels`` channels."""
        if self.head_channels is not None:
            return channels // self.head_channels
        return self.num_heads

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the fields (tuples stay tuples; json writes them as lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> UNetConfig:
        """Builds a config from a dict such as the ``net`` part of a run's config.json."""
        _check_field_names(values.keys(), "config")
        return cls(**dict(values))


def with_overrides(config: UNetConfig, **fields: Any) -> UNetConfig:
    """Returns a copy of ``config`` with ``fields`` replaced, validated like a fresh config.

    Raises:
        UserError: for an unknown field name or an invalid value.
    """
    _check_field_names(fields.keys(), "override")
    return dataclasses.replace(config, **fields)


def field_names() -> tuple[str, ...]:
    """Names of the UNetConfig fields, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(UNetConfig))


def _check_field_names(names: Any, what: str) -> None:
    unknown = sorted(set(names) - set(field_names()))
    if unknown:
        raise UserError(
            f"unknown UNet {what} field(s) {', '.join(unknown)}; valid fields: {', '.join(field_names())}"
        )


def _validate(cfg: UNetConfig) -> None:
    """Raises UserError naming the first invalid field (one line, with what would be valid)."""
    for name in ("resolution", "in_channels", "base_channels", "num_res_blocks", "num_heads"):
        _check_int(name, getattr(cfg, name), minimum=1)
    _check_int("num_classes", cfg.num_classes, minimum=0)
    _check_int("augment_dim", cfg.augment_dim, minimum=0)
    if cfg.head_channels is not None:
        _check_int("head_channels", cfg.head_channels, minimum=1)
    for name in ("resblock_updown", "use_scale_shift_norm", "learn_sigma"):
        if not isinstance(getattr(cfg, name), bool):
            raise UserError(f"UNet option {name} must be true or false, got {getattr(cfg, name)!r}")
    if not isinstance(cfg.dropout, (int, float)) or isinstance(cfg.dropout, bool) or not 0 <= cfg.dropout < 1:
        raise UserError(f"UNet option dropout must be a number in [0, 1), got {cfg.dropout!r}")
    if not isinstance(cfg.channel_mult, tuple) or not cfg.channel_mult:
        raise UserError(f"UNet option channel_mult must be a non-empty list of integers, got {cfg.channel_mult!r}")
    for mult in cfg.channel_mult:
        _check_int("channel_mult entry", mult, minimum=1)
    if cfg.resolution % cfg.size_multiple:
        raise UserError(
            f"UNet resolution {cfg.resolution} is not a multiple of {cfg.size_multiple} "
            f"(2^(levels-1) for {cfg.num_levels} levels); change resolution or channel_mult"
        )
    _validate_attention(cfg)


def _validate_attention(cfg: UNetConfig) -> None:
    if not isinstance(cfg.attention_resolutions, tuple):
        raise UserError(f"UNet option attention_resolutions must be a list of sizes, got {cfg.attention_resolutions!r}")
    valid_sizes = [cfg.resolution // 2**level for level in range(cfg.num_levels)]
    for size in cfg.attention_resolutions:
        if size not in valid_sizes:
            raise UserError(
                f"UNet attention_resolutions entry {size!r} is not a feature-map size of this "
                f"{cfg.resolution} px net; choose from {', '.join(map(str, valid_sizes))}"
            )
    # Heads must split the channels evenly at every attention level and in the middle block.
    attn_levels = {valid_sizes.index(size) for size in cfg.attention_resolutions} | {cfg.num_levels - 1}
    for level in sorted(attn_levels):
        channels = cfg.base_channels * cfg.channel_mult[level]
        name, split = ("head_channels", cfg.head_channels) if cfg.head_channels else ("num_heads", cfg.num_heads)
        if channels % split:
            raise UserError(
                f"UNet attention at level {level} has {channels} channels, which {name}={split} does not divide; "
                f"pick head_channels or num_heads dividing {channels}"
            )


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UserError(f"UNet option {name} must be an integer >= {minimum}, got {value!r}")
