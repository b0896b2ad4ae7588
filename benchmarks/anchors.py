"""The two reference UNets the benchmarks measure landiff against, built at a chosen width.

* diffusers ``UNet2DModel`` in the layout of its unconditional-training example (ResNet blocks,
  attention at the low-resolution levels), widths (w, 2w, 2w, 2w).
* denoising-diffusion-pytorch ``Unet`` as its README builds it (``dim``, ``dim_mults``; linear
  attention at every level, full attention in the middle).

Widths are chosen by :func:`match_width` so each anchor costs about the same FLOPs per image as
the landiff net it is compared with (counted by torch's FLOP counter, forward + backward).

denoising-diffusion-pytorch imports torchvision at module level for its Trainer, which the UNet
does not use; where torchvision is missing (PyPI's torchvision does not load beside a CPU-only
torch 2.13) a stand-in module without contents is registered first so the UNet can be imported.
Install both anchors with ``./dev bench`` (no network at run time: they are pip packages).
"""

from __future__ import annotations

import importlib.util
import math
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

ForwardFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Candidate:
    """A network to benchmark: how to build it and how to call it as ``fwd(net, x, t)``."""

    library: str
    label: str
    build: Callable[[], nn.Module]
    fwd: ForwardFn


def available() -> dict[str, bool]:
    """Which anchor libraries are importable."""
    return {name: importlib.util.find_spec(module) is not None
            for name, module in (("diffusers", "diffusers"), ("denoising-diffusion-pytorch", "denoising_diffusion_pytorch"))}


def _stub_torchvision() -> None:
    """Registers an empty ``torchvision`` when the real one cannot be imported (see module docstring)."""
    if "torchvision" in sys.modules:
        return
    try:
        import torchvision  # noqa: F401
        return
    except Exception:  # absent, or a build that does not match this torch
        sys.modules.pop("torchvision", None)
    stub = types.ModuleType("torchvision")
    stub.transforms = types.ModuleType("torchvision.transforms")  # type: ignore[attr-defined]
    stub.utils = types.ModuleType("torchvision.utils")  # type: ignore[attr-defined]
    sys.modules.update({"torchvision": stub, "torchvision.transforms": stub.transforms,  # type: ignore[attr-defined]
                        "torchvision.utils": stub.utils})  # type: ignore[attr-defined]


def diffusers_unet(width: int, resolution: int, attention_px: tuple[int, ...]) -> Candidate:
    """diffusers UNet2DModel, 4 levels (w, 2w, 2w, 2w), 2 ResNet layers each, attention at ``attention_px``."""
    from diffusers import UNet2DModel  # imported before the torchvision stand-in (diffusers probes it)

    sizes = [resolution // 2**level for level in range(4)]
    down = tuple("AttnDownBlock2D" if px in attention_px else "DownBlock2D" for px in sizes)
    up = tuple("AttnUpBlock2D" if px in attention_px else "UpBlock2D" for px in reversed(sizes))
    channels = (width, 2 * width, 2 * width, 2 * width)

    def build() -> nn.Module:
        return UNet2DModel(sample_size=resolution, block_out_channels=channels, layers_per_block=2,
                           down_block_types=down, up_block_types=up, norm_num_groups=min(32, width // 2),
                           attention_head_dim=min(32, 2 * width))

    return Candidate("diffusers", f"UNet2DModel {channels}", build, lambda net, x, t: net(x, t).sample)


def ddpm_pytorch_unet(width: int, dim_mults: tuple[int, ...] = (1, 2, 2, 2)) -> Candidate:
    """denoising-diffusion-pytorch Unet(dim=width, dim_mults), its README's defaults otherwise."""
    import diffusers  # noqa: F401  (import diffusers first: it probes torchvision's metadata)

    _stub_torchvision()
    from denoising_diffusion_pytorch import Unet

    def build() -> nn.Module:
        return Unet(dim=width, dim_mults=dim_mults, flash_attn=False)

    return Candidate("denoising-diffusion-pytorch", f"Unet dim={width} {dim_mults}", build,
                     lambda net, x, t: net(x, t))


def train_flops(candidate: Candidate, resolution: int) -> int:
    """FLOPs of one training image (forward + backward), counted on batch 1."""
    net = candidate.build()
    counter = FlopCounterMode(display=False)
    with counter:
        candidate.fwd(net, torch.randn(1, 3, resolution, resolution), torch.zeros(1, dtype=torch.long)).sum().backward()
    return int(counter.get_total_flops())


def match_width(make: Callable[[int], Candidate], target_flops: int, resolution: int,
                widths: tuple[int, ...] = tuple(range(16, 161, 8))) -> tuple[int, int]:
    """(width, training FLOPs per image) of the width closest to ``target_flops`` (log scale)."""
    best: tuple[float, int, int] | None = None
    for width in widths:
        flops = train_flops(make(width), resolution)
        gap = abs(math.log(flops / target_flops))
        if best is None or gap < best[0]:
            best = (gap, width, flops)
        if flops > target_flops:  # FLOPs grow with width: past the target nothing gets closer
            break
    assert best is not None
    return best[1], best[2]
