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
from landiff.samplers.classifier_guidance import ClassifierGuidance
from landiff.samplers.denoiser import Denoiser, SamplingPrecision
from landiff.samplers.timesteps import StepCallback, check_timesteps, walk_steps


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
    precision: SamplingPrecision = "fp32",
    classifier_guidance: ClassifierGuidance | None = None,
) -> Tensor:
    """Draws x_0 with the DDIM update; η = 0 is the deterministic probability-flow-like sampler.

    The network's pred_x0 and the ε implied by it come from the :class:`~landiff.samplers.denoiser.Denoiser`
    (so clipping and every prediction, the mean included, work at any subset of timesteps); ᾱ_prev
    is ᾱ of the next visited timestep, and the last step has ᾱ_prev = 1 and returns pred_x0.

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
        precision: ``fp32``, or ``bf16`` for the network (autocast; the update stays float32).
        classifier_guidance: ADM's classifier guidance, ε form (Alg. 2) in the denoiser; None or s = 0: unguided.

    Returns:
        (B, C, H, W) samples.
    """
    if eta < 0:
        raise UserError(f"DDIM eta must be >= 0 (0 deterministic, 1 DDPM-like), got {eta} (--eta)")
    if eta > 0:
        if noise is None:
            raise ValueError("ddim_sample with eta > 0 needs a SampleNoise (noise=...)")
        noise.check_batch(x_T)
    steps = check_timesteps(timesteps, diffusion.num_steps)
    denoiser = Denoiser(model, diffusion, clip_denoised=clip_denoised, model_kwargs=model_kwargs, precision=precision,
                        classifier_guidance=classifier_guidance)
    abar = denoiser.alphas_cumprod
    x = x_T
    for step in walk_steps(len(steps), progress, "ddim"):
        t = steps[step]
        alpha_bar_prev = float(abar[steps[step + 1]]) if step + 1 < len(steps) else 1.0
        p = denoiser.predict(x, t)
        if callback is not None:
            callback(step, x, p.x0)
        sigma = ddim_sigma(float(abar[t]), alpha_bar_prev, eta)
        z = noise.randn(*x.shape[1:]).to(x.dtype) if sigma > 0 and noise is not None else None
        x = ddim_step(p.x0, p.eps, alpha_bar_prev, sigma, z)
    return x
