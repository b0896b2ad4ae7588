"""Differentiable augmentation of a GAN discriminator's inputs (DiffAugment, Zhao et al. 2020, arXiv 2006.10738).

The discriminator sees every image, real or generated, through the same random transforms, in its
own update and in the generator's; because the transforms are differentiable, the generator's
gradient flows back through them. D cannot tell real from fake by artefacts of the augmentation
(both carry them), and it sees more varied real images, which is what keeps it from memorising a
small data set. The three policies of the paper, on images in [−1, 1]:

    color        brightness + (u − ½); saturation: (x − mean_c) · 2u + mean_c;
                 contrast: (x − mean_chw) · (u + ½) + mean_chw          (u ~ U(0, 1) per image)
    translation  an integer shift of up to ⅛ of the size in x and y, zeros shifted in
    cutout       a square of half the size, at a random position, set to 0

Every random number comes from the caller's generator and is drawn for the whole chunk (as z is),
so every rank of a torchrun job and a resumed run draw exactly what one uninterrupted process would.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["POLICIES", "DiffAugment", "parse_policy"]

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def _color(x: Tensor, u: Tensor) -> Tensor:
    """Brightness, saturation and contrast with the three columns of ``u`` (B, 3)."""
    x = x + (u[:, 0] - 0.5).view(-1, 1, 1, 1).to(x.dtype)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (u[:, 1] * 2).view(-1, 1, 1, 1).to(x.dtype) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (u[:, 2] + 0.5).view(-1, 1, 1, 1).to(x.dtype) + mean


def _translation(x: Tensor, u: Tensor) -> Tensor:
    """Shifts each image by whole pixels: ⌊u·(2m + 1)⌋ − m with m = ⌊size/8 + ½⌋ in x and y."""
    b, _, h, w = x.shape
    reach = torch.tensor([int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)])
    shift = (u[:, :2] * (2 * reach + 1)).floor().long().clamp_max(2 * reach) - reach  # (B, 2): dy, dx
    rows = torch.arange(h).view(1, h, 1) - shift[:, 0].view(b, 1, 1)  # source row of each output pixel
    cols = torch.arange(w).view(1, 1, w) - shift[:, 1].view(b, 1, 1)
    inside = ((rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)).to(x.device)
    index = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).to(x.device)  # (B, H, W)
    flat = x.flatten(2).gather(2, index.flatten(1).unsqueeze(1).expand(-1, x.shape[1], -1))
    return flat.view_as(x) * inside.unsqueeze(1).to(x.dtype)


def _cutout(x: Tensor, u: Tensor) -> Tensor:
    """Zeros a square of side ⌊size/2 + ½⌋ centred at a random pixel (clipped at the border)."""
    b, _, h, w = x.shape
    side_h, side_w = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    centre_y = (u[:, 0] * (h + (1 - side_h % 2))).floor().long()
    centre_x = (u[:, 1] * (w + (1 - side_w % 2))).floor().long()
    rows = torch.arange(h).view(1, h, 1) - (centre_y - side_h // 2).view(b, 1, 1)
    cols = torch.arange(w).view(1, 1, w) - (centre_x - side_w // 2).view(b, 1, 1)
    cut = (rows >= 0) & (rows < side_h) & (cols >= 0) & (cols < side_w)
    return x * (~cut).unsqueeze(1).to(x.device, x.dtype)


# policy → (its transform, how many uniform numbers it takes per image)
POLICIES: dict[str, tuple[Callable[[Tensor, Tensor], Tensor], int]] = {
    "color": (_color, 3), "translation": (_translation, 2), "cutout": (_cutout, 2),
}


def parse_policy(text: str) -> tuple[str, ...]:
    """``"color,translation,cutout"`` → its policies in the paper's order; ``""`` → none.

    Raises:
        ValueError: an unknown or repeated policy (the config check names ``--diffaugment``).
    """
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [n for n in names if n not in POLICIES]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"{text!r}: a comma-separated subset of {', '.join(POLICIES)} (each at most once)")
    return tuple(n for n in POLICIES if n in names)


class DiffAugment:
    """The policies of ``policy`` applied in order; :meth:`__call__` draws their randomness."""

    def __init__(self, policy: str) -> None:
        self.policies = parse_policy(policy)
        self.draws = sum(POLICIES[name][1] for name in self.policies)

    def __bool__(self) -> bool:
        return bool(self.policies)

    def draw(self, chunk_size: int, generator: torch.Generator) -> Tensor:
        """The uniform numbers of one augmentation of a chunk: (chunk_size, draws) float32."""
        return torch.rand(chunk_size, self.draws, generator=generator)

    def __call__(self, x: Tensor, u: Tensor) -> Tensor:
        """``x`` (B, C, H, W) augmented with this rank's rows ``u`` (B, draws) of a :meth:`draw`."""
        column = 0
        for name in self.policies:
            transform, width = POLICIES[name]
            x = transform(x, u[:, column : column + width].to(x.device))
            column += width
        return x
