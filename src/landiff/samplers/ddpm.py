"""Ancestral sampling: DDPM Algorithm 2 (Ho et al. 2020), over respaced steps as in Improved DDPM §4."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from landiff.diffusion import GaussianDiffusion
from landiff.diffusion.gaussian import ModelFn
from landiff.noise import SampleNoise
from landiff.samplers.timesteps import StepCallback, respaced, walk_steps


@torch.no_grad()
def ddpm_sample(
    model: ModelFn,
    diffusion: GaussianDiffusion,
    x_T: Tensor,
    timesteps: Sequence[int],
    *,
    noise: SampleNoise,
    clip_denoised: bool = True,
    model_kwargs: dict[str, Any] | None = None,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> Tensor:
    """Draws x_0 by ancestral sampling x_{t_{i−1}} ~ p(x_{t_{i−1}} | x_{t_i}) (DDPM Alg. 2, IDDPM §4).

    Each step uses the respaced process's mean and variance (fixed β̃, fixed β or the learned
    IDDPM eq. 15 interpolation); no noise is added after the last step, whose mean is pred_x0.

    Args:
        model: ``model(x_t, t, **model_kwargs)`` with original-scale t (B,); C or 2C output channels.
        diffusion: the full trained process (T steps).
        x_T: (B, C, H, W) starting noise, usually from :func:`initial_noise`.
        timesteps: original timesteps to visit, e.g. ``space_timesteps(T, K)`` (any order).
        noise: per-sample streams for the noise injected at each step (B seeds).
        clip_denoised: clamp pred_x0 to [−1, 1] before forming the mean.
        model_kwargs: extra network inputs, e.g. ``{"y": labels}``.
        callback: ``callback(i, x_t, pred_x0)`` after the network call of step i.
        progress: show a step counter on an interactive stderr.

    Returns:
        (B, C, H, W) samples, in the data range [−1, 1] when ``clip_denoised``.
    """
    noise.check_batch(x_T)
    process = respaced(diffusion, timesteps)
    count = process.num_steps
    x = x_T
    for step in walk_steps(count, progress, "ddpm"):
        i = count - 1 - step  # index in the respaced process, from the noisiest down to 0
        t = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
        p = process.p_mean_variance(model, x, t, clip_denoised, model_kwargs)
        if callback is not None:
            callback(step, x, p.pred_x0)
        if i > 0:
            x = p.mean + torch.exp(0.5 * p.log_variance) * noise.randn(*x.shape[1:]).to(p.mean.dtype)
        else:
            x = p.mean
    return x
