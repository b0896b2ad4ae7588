"""Non-leaking augmentation for small data sets (EDM, Karras et al. 2022, App. C.4, after
StyleGAN2-ADA's pipeline, Karras et al. 2020, arXiv 2006.06676).

Each training image is transformed, with probability ``p`` per transform, by a random geometric
augmentation; the network is told which one through a 9-number *augmentation label* (added to its
time embedding, :class:`~landiff.nets.unet.UNet` ``augment_dim``) and learns the augmented
distribution *conditioned on it*. Sampling passes no label (zeros), which is the un-augmented
distribution, so the augmentations do not leak into the samples — unlike a plain random crop or
rotation of the data, which the model would learn to reproduce.

The transforms and their labels, as in EDM's CIFAR-10 setting (``--augment 0.12`` there):

    x-flip    (coin flip)                          label: 1 if flipped
    y-flip    (coin flip)                          label: 1 if flipped
    scale     2^N(0, 0.2²), isotropic              label: log2 s
    rotation  θ ~ U(−π, π)                         labels: sin θ, cos θ − 1
    aniso     2^N(0, 0.2²) along a random angle φ  labels: log2 s · cos φ, log2 s · sin φ
    translate N(0, 0.125²) of the image size       labels: t_x, t_y

All of them compose into one affine map per image, applied by bilinear resampling with
reflection padding (EDM resamples with a wavelet filter; bilinear is the simpler equivalent at the
small scale changes drawn here). Every random number comes from the caller's generator, drawn for
the whole chunk, so a resumed run and every rank augment exactly as one uninterrupted process.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from landiff.runs.config import AUGMENT_DIM

__all__ = ["AUGMENT_DIM", "apply_augmentations", "draw_augmentations"]

SCALE_STD, ANISO_STD, TRANSLATE_STD = 0.2, 0.2, 0.125


def draw_augmentations(batch: int, p: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Random augmentations for ``batch`` images: (labels (B, 9) float32, affine maps (B, 2, 3) float64).

    Each of the six transforms applies to an image with probability ``p``; the draws do not depend
    on ``p``, so a run's other random streams are the same at any ``p``.
    """
    u = torch.rand(batch, 6, generator=generator, dtype=torch.float64)  # which transforms apply
    z = torch.randn(batch, 4, generator=generator, dtype=torch.float64)  # their magnitudes
    angles = (torch.rand(batch, 2, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi
    coins = torch.randint(0, 2, (batch, 2), generator=generator).double()
    on = (u < p).double()
    flip_x, flip_y = coins[:, 0] * on[:, 0], coins[:, 1] * on[:, 1]
    log_scale = z[:, 0] * SCALE_STD * on[:, 2]
    theta = angles[:, 0] * on[:, 3]
    log_aniso, phi = z[:, 1] * ANISO_STD * on[:, 4], angles[:, 1]
    shift = z[:, 2:4] * TRANSLATE_STD * on[:, 5:6]
    labels = torch.stack([flip_x, flip_y, log_scale, theta.sin(), theta.cos() - 1,
                          log_aniso * phi.cos(), log_aniso * phi.sin(), shift[:, 0], shift[:, 1]], dim=1)
    return labels.float(), _matrix(flip_x, flip_y, log_scale, theta, log_aniso, phi, shift)


def apply_augmentations(images: Tensor, matrices: Tensor) -> Tensor:
    """``images`` (B, C, H, W) resampled through ``matrices`` (B, 2, 3); an identity map returns them exactly."""
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=matrices.dtype)
    moved = ~torch.isclose(matrices.cpu(), identity, atol=1e-12).flatten(1).all(dim=1)
    if not moved.any():
        return images
    grid = F.affine_grid(matrices[moved].to(device=images.device, dtype=torch.float32),
                         [int(moved.sum()), *images.shape[1:]], align_corners=False)
    out = images.clone()
    index = moved.nonzero().flatten().to(images.device)
    resampled = F.grid_sample(images[index].float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    out[index] = resampled.to(images.dtype)
    return out


def _matrix(flip_x: Tensor, flip_y: Tensor, log_scale: Tensor, theta: Tensor, log_aniso: Tensor, phi: Tensor,
            shift: Tensor) -> Tensor:
    """(B, 2, 3) maps from output to input coordinates in [−1, 1] (``affine_grid``'s convention)."""
    batch = flip_x.shape[0]
    eye = torch.eye(2, dtype=torch.float64).expand(batch, 2, 2)

    def rotation(a: Tensor) -> Tensor:
        c, s = a.cos(), a.sin()
        return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)

    flips = torch.diag_embed(torch.stack([1 - 2 * flip_x, 1 - 2 * flip_y], -1))
    scale = eye * (2.0 ** log_scale)[:, None, None]
    aniso = rotation(phi) @ torch.diag_embed(torch.stack([2.0 ** log_aniso, 2.0 ** -log_aniso], -1)) @ rotation(-phi)
    forward = rotation(theta) @ aniso @ scale @ flips  # input → output, about the centre
    inverse = torch.linalg.inv(forward)
    translation = -(inverse @ (2 * shift)[:, :, None])  # output = forward·input + 2·shift (units of half-widths)
    return torch.cat([inverse, translation], dim=2)
