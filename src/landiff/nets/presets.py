"""Named UNet shapes: two small nets for CPUs and benchmarks, and three from the papers.

=============  ====  ============================================================================
name           px    why
=============  ====  ============================================================================
tiny           32    trains on 2 CPU cores: 32 ch, mult (1,2,2,2), 2 blocks, attention at 8 px
                     (2.41 M params). The 32-channel full-resolution level keeps the costly
                     32×32 convs cheap; the extra 4 px level adds depth, not FLOPs.
small          64    ~6 M params for benchmarks: 48 ch, mult (1,2,2,2), 2 blocks, attention at
                     16 and 8 px, BigGAN up/down and AdaGN (the ADM recipe, scaled down).
ddpm-cifar     32    Ho et al. 2020 appendix B: 128 ch, (1,2,2,2), 2 blocks, attention at 16,
                     dropout 0.1, additive embedding, conv down / nearest+conv up, one head.
iddpm-cifar    32    Nichol & Dhariwal 2021 CIFAR-10: 128 ch, (1,2,2,2), 3 blocks, attention at 16
                     and 8 with 4 heads, dropout 0.3, AdaGN, conv resampling, learned σ.
adm-64         64    Dhariwal & Nichol 2021 ImageNet 64 (appendix, hyper-parameter table): 192 ch,
                     3 blocks, (1,2,3,4), attention at 32/16/8 with 64 channels per head, BigGAN
                     up/down, AdaGN, dropout 0.1, learned σ, 1000 classes.
=============  ====  ============================================================================

Parameter counts (``landiff presets`` prints them; tests pin them):
ddpm-cifar has 35,746,307 (paper: 35.7 M): with additive embeddings and conv resampling our
blocks are DDPM's blocks, so the count is DDPM's to the rounding of the paper.
adm-64 has 295,905,222 (paper: 296 M): the original minus ours is the one extra embedding row
(768 parameters) for the classifier-free-guidance null label.
"""

from __future__ import annotations

import dataclasses

from landiff.errors import UserError
from landiff.nets.config import UNetConfig


@dataclasses.dataclass(frozen=True)
class PaperCount:
    """A parameter count as published, with where it is stated."""

    params: float
    source: str


PRESETS: dict[str, UNetConfig] = {
    "tiny": UNetConfig(
        resolution=32,
        base_channels=32,
        channel_mult=(1, 2, 2, 2),
        num_res_blocks=2,
        attention_resolutions=(8,),
        head_channels=32,
        dropout=0.0,
        use_scale_shift_norm=True,
    ),
    "small": UNetConfig(
        resolution=64,
        base_channels=48,
        channel_mult=(1, 2, 2, 2),
        num_res_blocks=2,
        attention_resolutions=(16, 8),
        head_channels=32,
        dropout=0.1,
        resblock_updown=True,
        use_scale_shift_norm=True,
    ),
    "ddpm-cifar": UNetConfig(
        resolution=32,
        base_channels=128,
        channel_mult=(1, 2, 2, 2),
        num_res_blocks=2,
        attention_resolutions=(16,),
        num_heads=1,
        dropout=0.1,
        resblock_updown=False,
        use_scale_shift_norm=False,
    ),
    "iddpm-cifar": UNetConfig(
        resolution=32,
        base_channels=128,
        channel_mult=(1, 2, 2, 2),
        num_res_blocks=3,
        attention_resolutions=(16, 8),
        num_heads=4,
        dropout=0.3,
        resblock_updown=False,
        use_scale_shift_norm=True,
        learn_sigma=True,
    ),
    "adm-64": UNetConfig(
        resolution=64,
        base_channels=192,
        channel_mult=(1, 2, 3, 4),
        num_res_blocks=3,
        attention_resolutions=(32, 16, 8),
        head_channels=64,
        dropout=0.1,
        resblock_updown=True,
        use_scale_shift_norm=True,
        num_classes=1000,
        learn_sigma=True,
    ),
}

PAPER_COUNTS: dict[str, PaperCount] = {
    "ddpm-cifar": PaperCount(35.7e6, "Ho et al. 2020, §4 (CIFAR-10 model: 35.7 million parameters)"),
    "adm-64": PaperCount(296e6, "Dhariwal & Nichol 2021, appendix hyper-parameter table (ImageNet 64: 296M)"),
}


def get_preset(name: str) -> UNetConfig:
    """Returns the preset called ``name``.

    Raises:
        UserError: for an unknown name, listing the valid ones.
    """
    if name not in PRESETS:
        raise UserError(f"unknown network preset {name!r}; choose one of: {', '.join(PRESETS)} (see `landiff presets`)")
    return PRESETS[name]
