"""Classifier-free guidance (Ho & Salimans 2022, arXiv 2207.12598, eq. 6).

The guided prediction is ε̃ = ε_uncond + w (ε_cond − ε_uncond): w = 0 is the unconditional model,
w = 1 the conditional one, w > 1 sharpens towards the class. (Ho & Salimans write (1 + w) ε_c − w ε_u;
landiff's w is their 1 + w, the convention of GLIDE and most code.) The combination is linear in the
output, so it applies unchanged to x0-, v- or mean-predicting networks. The network must have been
trained with label dropout to ``null_label`` so that it has an unconditional mode.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from landiff.diffusion.gaussian import ModelFn
from landiff.errors import UserError


def classifier_free_guidance(model: ModelFn, guidance_scale: float, null_label: int) -> Callable[..., Tensor]:
    """Wraps a class-conditional network into a guided ``model_fn(x, t, y=labels)``.

    Both passes run in one doubled batch [conditional; unconditional]. On the first C (prediction)
    channels the result is ``cond * w + uncond * (1 − w)``, algebraically ε_u + w (ε_c − ε_u) but
    exact at the ends: at w = 1 it is ``cond * 1 + uncond * 0`` = cond bit for bit, and at w = 0
    ``cond * 0 + uncond * 1`` = uncond bit for bit (the form uncond + w·(cond − uncond) is not
    exact at w = 1, because cond − uncond rounds). Extra channels (the learned-variance half of a
    2C output) come from the conditional pass, as in GLIDE and ADM.

    Args:
        model: ``model(x, t, y=labels)`` returning (B, C or 2C, H, W).
        guidance_scale: w ≥ 0.
        null_label: the label the network was trained with for "no class".

    Returns:
        ``model_fn(x, t, y)`` with x (B, C, H, W), t (B,) original-scale timesteps, y (B,) labels.
    """
    if guidance_scale < 0:
        raise UserError(f"guidance scale must be >= 0 (1 = no guidance), got {guidance_scale} (--guidance)")
    w = float(guidance_scale)

    def guided(x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        if y is None:
            raise UserError("classifier-free guidance needs class labels y: give the classes to sample, or sample unguided")
        batch, channels = x.shape[0], x.shape[1]
        labels = torch.cat([y, torch.full_like(y, null_label)])
        output = model(torch.cat([x, x]), torch.cat([t, t]), y=labels)
        cond, uncond = output[:batch], output[batch:]
        guided_pred = cond[:, :channels] * w + uncond[:, :channels] * (1.0 - w)
        return torch.cat([guided_pred, cond[:, channels:]], dim=1)

    return guided
