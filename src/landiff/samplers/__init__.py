"""Samplers: small pure functions over a model, the trained process, x_T and explicit timesteps.

Every sampler calls the network with original-scale timesteps, takes a per-step
``callback(i, x_t, pred_x0)``, ``clip_denoised`` and ``model_kwargs``, and draws any noise from
per-sample streams (:class:`SampleNoise`), so image k depends only on seed k.

- :func:`ddpm_sample`: ancestral sampling (DDPM Alg. 2, respaced as in Improved DDPM §4).
- :func:`ddim_sample`: DDIM (eq. 12, σ(η) of eq. 16).
- :func:`dpm_solver_pp_sample`: DPM-Solver++(2M) (Lu et al. 2022, Alg. 2).
- :func:`classifier_free_guidance`: wraps a class-conditional network.

Example::

    from landiff.samplers import sample
    images = sample(model, diffusion, (3, 32, 32), seeds=range(16), sampler="dpm++", steps=20)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from landiff.diffusion import GaussianDiffusion
from landiff.diffusion.gaussian import ModelFn
from landiff.errors import UserError
from landiff.noise import SampleNoise, initial_noise
from landiff.samplers.ddim import ddim_sample, ddim_sigma, ddim_step
from landiff.samplers.ddpm import ddpm_sample
from landiff.samplers.dpm_solver import dpm_solver_pp_sample
from landiff.samplers.guidance import classifier_free_guidance
from landiff.samplers.timesteps import SPACINGS, Spacing, StepCallback, check_timesteps, sampling_timesteps

SamplerName = Literal["ddpm", "ddim", "dpm++"]
SAMPLERS: tuple[str, ...] = ("ddpm", "ddim", "dpm++")

# ddpm: Improved DDPM's even respacing; ddim: the same even grid (it starts at T−1, unlike DDIM's
# original "leading" stride); dpm++: logSNR-uniform, the authors' choice for low resolution.
DEFAULT_SPACING: dict[str, Spacing] = {"ddpm": "uniform", "ddim": "uniform", "dpm++": "logsnr"}


def sample(
    model: ModelFn,
    diffusion: GaussianDiffusion,
    shape: Sequence[int],
    seeds: Sequence[int],
    *,
    sampler: SamplerName = "dpm++",
    steps: int = 20,
    spacing: Spacing | None = None,
    eta: float = 0.0,
    clip_denoised: bool = True,
    model_kwargs: dict[str, Any] | None = None,
    device: torch.device | str = "cpu",
    callback: StepCallback | None = None,
    progress: bool = False,
) -> Tensor:
    """Draws one image per seed with the chosen sampler.

    Args:
        model: ``model(x_t, t, **model_kwargs)`` with original-scale t (B,).
        diffusion: the full trained process.
        shape: per-sample shape ``(C, H, W)``.
        seeds: one seed per image; image k is the same whatever the batch it is drawn in.
        sampler: ``ddpm`` (ancestral), ``ddim`` or ``dpm++`` (DPM-Solver++(2M)).
        steps: number of network evaluations K.
        spacing: timestep spacing; None picks :data:`DEFAULT_SPACING` for the sampler.
        eta: DDIM's η (ignored by the other samplers).
        clip_denoised: clamp pred_x0 to [−1, 1] at every step.
        model_kwargs: extra network inputs, e.g. ``{"y": labels}`` with labels (B,) on ``device``.
        device: where sampling runs.
        callback: ``callback(i, x_t, pred_x0)`` per step.
        progress: show a step counter on an interactive stderr.

    Returns:
        (len(seeds), *shape) float32 samples on ``device``.
    """
    check_sampler_settings(sampler, steps, diffusion.num_steps, diffusion.prediction)
    timesteps = sampling_timesteps(
        diffusion.num_steps, steps, spacing or DEFAULT_SPACING[sampler], diffusion.alphas_cumprod
    )
    x_T, noise = initial_noise(seeds, shape, device)
    common: dict[str, Any] = dict(
        clip_denoised=clip_denoised, model_kwargs=model_kwargs, callback=callback, progress=progress
    )
    if sampler == "ddpm":
        return ddpm_sample(model, diffusion, x_T, timesteps, noise=noise, **common)
    if sampler == "ddim":
        return ddim_sample(model, diffusion, x_T, timesteps, eta=eta, noise=noise, **common)
    return dpm_solver_pp_sample(model, diffusion, x_T, timesteps, **common)


def check_sampler_settings(
    sampler: str, steps: int, num_steps: int, prediction: str, *,
    sampler_flag: str = "--sampler", steps_flag: str = "--steps", process: str = "", otherwise: str = "",
) -> None:
    """Refuses a sampler / step count that a ``num_steps``-step process predicting ``prediction`` cannot
    be sampled with: what :func:`sample` checks first, and what ``landiff train`` checks in advance
    for its preview settings, so the two can never disagree.

    Args:
        sampler_flag, steps_flag: the options the message names (the trainer's are ``--preview-…``).
        process: text naming the process's own options, e.g. ``" (--diffusion-steps 10)"``.
        otherwise: another way out appended to the fix, e.g. ``" or --preview-count 0"``.

    Raises:
        UserError: an unknown sampler, K outside 1..T, or a mean-predicting model with K < T (its
            output is the full process's one-step mean, which no respaced process can reuse).
    """
    if sampler not in SAMPLERS:
        raise UserError(f"unknown sampler {sampler!r}; choose one of: {', '.join(SAMPLERS)} ({sampler_flag})")
    if not 1 <= steps <= num_steps:
        raise UserError(f"cannot sample with {steps} steps from a {num_steps}-step process{process}; "
                        f"use {steps_flag} 1..{num_steps}{otherwise}")
    if prediction == "mean" and steps != num_steps:
        raise UserError(f"a model that predicts the mean can only be sampled with all {num_steps} steps, "
                        f"not {steps}{process}; use {steps_flag} {num_steps}{otherwise}")


__all__ = [
    "DEFAULT_SPACING",
    "SAMPLERS",
    "SPACINGS",
    "SampleNoise",
    "SamplerName",
    "Spacing",
    "StepCallback",
    "check_sampler_settings",
    "check_timesteps",
    "classifier_free_guidance",
    "ddim_sample",
    "ddim_sigma",
    "ddim_step",
    "ddpm_sample",
    "dpm_solver_pp_sample",
    "initial_noise",
    "sample",
    "sampling_timesteps",
]
