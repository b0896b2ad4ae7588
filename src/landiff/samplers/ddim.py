"""DDIM sampling (Song, Meng & Ermon 2020, arXiv 2010.02502): eq. 12 with σ_t(η) of eq. 16."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from landiff.diffusion import GaussianDiffusion
from landiff.diffusion.gaussian import ModelFn
from landiff.errors import UserError
from landiff.noise import SampleNoise
from landiff.samplers.timesteps import StepCallback, respaced, walk_steps


def ddim_sigma(alpha_bar: float, alpha_bar_prev: float, eta: float) -> float:
    """σ_t(η) = η √((1−ᾱ_prev)/(1−ᾱ_t)) √(1−ᾱ_t/ᾱ_prev) (DDIM eq. 16); η = 1 gives DDPM's β̃."""
    return eta * math.sqrt((1.0 - alpha_bar_prev) / (1.0 - alpha_bar)) * math.sqrt(1.0 - alpha_bar / alpha_bar_prev)


def ddim_step(pred_x0: Tensor, pred_eps: Tensor, alpha_bar_prev: float, sigma: float, noise: Tensor | None) -> Tensor:
    """x_prev = √ᾱ_prev x̂0 + √(1−ᾱ_prev−σ²) ε̂ + σ z (DDIM eq. 12); ``noise`` is z (None when σ = 0)."""
    # max(., 0): rounding can make 1 − ᾱ_prev − σ² slightly negative at η = 1.
    x = math.sqrt(alpha_bar_prev) * pred_x0 + math.sqrt(max(1.0 - alpha_bar_prev - sigma**2, 0.0)) * pred_eps
    if sigma > 0:
        assert noise is not None
        x = x + sigma * noise
    return x


@torch.no_grad()
def ddim_sample(
    model: ModelFn,
    diffusion: GaussianDiffusion,
    x_T: Tensor,
    timesteps: Sequence[int],
    *,
    eta: float = 0.0,
    noise: SampleNoise | None = None,
    clip_denoised: bool = True,
    model_kwargs: dict[str, Any] | None = None,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> Tensor:
    """Draws x_0 with the DDIM update; η = 0 is the deterministic probability-flow-like sampler.

    The network's pred_x0 and the ε implied by it come from the respaced process's
    ``p_mean_variance`` (so clipping, x0- and v-prediction and learned-variance outputs all
    work); the last step has ᾱ_prev = 1 and returns pred_x0.

    Args:
        model: ``model(x_t, t, **model_kwargs)`` with original-scale t (B,).
        diffusion: the full trained process (T steps).
        x_T: (B, C, H, W) starting noise.
        timesteps: original timesteps to visit (any order; visited from the largest).
        eta: η ≥ 0 of eq. 16: 0 deterministic, 1 the DDPM posterior variance.
        noise: per-sample streams for the injected noise; required when η > 0, unused at η = 0.
        clip_denoised: clamp pred_x0 to [−1, 1].
        model_kwargs: extra network inputs, e.g. ``{"y": labels}``.
        callback: ``callback(i, x_t, pred_x0)`` after the network call of step i.
        progress: show a step counter on an interactive stderr.

    Returns:
        (B, C, H, W) samples.
    """
    if eta < 0:
        raise UserError(f"DDIM eta must be >= 0 (0 deterministic, 1 DDPM-like), got {eta} (--eta)")
    if eta > 0:
        if noise is None:
            raise ValueError("ddim_sample with eta > 0 needs a SampleNoise (noise=...)")
        noise.check_batch(x_T)
    process = respaced(diffusion, timesteps)
    alphas_cumprod, alphas_cumprod_prev = process.alphas_cumprod, process.tables["alphas_cumprod_prev"]
    count = process.num_steps
    x = x_T
    for step in walk_steps(count, progress, "ddim"):
        i = count - 1 - step
        t = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
        p = process.p_mean_variance(model, x, t, clip_denoised, model_kwargs)
        if callback is not None:
            callback(step, x, p.pred_x0)
        sigma = ddim_sigma(float(alphas_cumprod[i]), float(alphas_cumprod_prev[i]), eta)
        z = noise.randn(*x.shape[1:]).to(x.dtype) if sigma > 0 and noise is not None else None
        x = ddim_step(p.pred_x0, p.pred_eps, float(alphas_cumprod_prev[i]), sigma, z)
    return x
