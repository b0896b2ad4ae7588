"""Samplers: small pure functions over a model, the trained process, x_T and explicit timesteps.

Every sampler calls the network with original-scale timesteps, takes a per-step
``callback(i, x_t, pred_x0)``, ``clip_denoised`` and ``model_kwargs``, and draws any noise from
per-sample streams (:class:`SampleNoise`), so image k depends only on seed k.

- :func:`ddpm_sample`: ancestral sampling (DDPM Alg. 2, respaced as in Improved DDPM §4).
- :func:`ddim_sample`: DDIM (eq. 12, σ(η) of eq. 16).
- :func:`dpm_solver_pp_sample`: DPM-Solver++(2M) (Lu et al. 2022, Alg. 2).
- :func:`dpm_solver_pp_sde_sample`: DPM-Solver++(2M) SDE (Lu et al. 2022, §4), stochastic.
- :func:`heun_sample`: EDM's Heun sampler with churn (Karras et al. 2022, Alg. 2).
- :func:`classifier_free_guidance`: wraps a class-conditional network.
- :class:`ClassifierGuidance`: ADM's classifier guidance (Dhariwal & Nichol 2021, §4), applied by the
  denoiser for every sampler (the ancestral one by its mean shift).

Every sampler reads the network through :class:`Denoiser` (x̂0 at any trained timestep, for
every prediction the process knows), so every sampler runs on every model.

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
from landiff.samplers.classifier_guidance import Classifier, ClassifierGuidance
from landiff.samplers.ddim import ddim_sample, ddim_sigma, ddim_step
from landiff.samplers.ddpm import ddpm_sample
from landiff.samplers.denoiser import PRECISIONS, Denoiser, Prediction, SamplingPrecision, resolve_sampling_precision
from landiff.samplers.dpm_solver import dpm_solver_pp_sample
from landiff.samplers.dpm_solver_sde import dpm_solver_pp_sde_sample
from landiff.samplers.guidance import classifier_free_guidance
from landiff.samplers.heun import Churn, heun_levels, heun_sample
from landiff.samplers.timesteps import KARRAS_RHO, SPACINGS, Spacing, StepCallback, check_timesteps, sampling_timesteps

SamplerName = Literal["ddpm", "ddim", "dpm++", "dpm++sde", "heun"]
SAMPLERS: tuple[str, ...] = ("ddpm", "ddim", "dpm++", "dpm++sde", "heun")

# ddpm: Improved DDPM's even respacing; ddim: the same even grid (it starts at T−1, unlike DDIM's
# original "leading" stride); dpm++: logSNR-uniform, the authors' choice for low resolution.
# dpm++sde and heun: EDM's levels (eq. 5, ρ = 7); for the SDE solver they beat logsnr spacing on two
# of three sweep models, and only they kept it within 1.15× of the best on all three (RESULTS.md).
DEFAULT_SPACING: dict[str, Spacing] = {"ddpm": "uniform", "ddim": "uniform", "dpm++": "logsnr", "dpm++sde": "karras",
                                       "heun": "karras"}
# The default of `landiff sample`, `compare`, the demo and the study: DPM-Solver++(2M) SDE (η = 1) on
# 20 karras levels, within 1.15× of the best SWD any sampler reached at up to 1000 evaluations on each
# of three sweep models, two recipes and two data sets (benchmarks/RESULTS.md, "Stochastic samplers").
DEFAULT_SAMPLER: SamplerName = "dpm++sde"
DEFAULT_STEPS = 20


def network_evaluations(sampler: str, steps: int) -> int:
    """Network calls a sampler makes for ``steps`` (heun: 2·levels − 1 on (steps+1)//2 levels)."""
    return 2 * heun_levels(steps) - 1 if sampler == "heun" else steps


# η where a sampler has one: DDIM's eq. 16 (0: deterministic) and the SDE solver's noise share (1: the SDE).
DEFAULT_ETA: dict[str, float] = {"ddim": 0.0, "dpm++sde": 1.0}


def sample(
    model: ModelFn,
    diffusion: GaussianDiffusion,
    shape: Sequence[int],
    seeds: Sequence[int],
    *,
    sampler: SamplerName = DEFAULT_SAMPLER,
    steps: int = DEFAULT_STEPS,
    spacing: Spacing | None = None,
    eta: float | None = None,
    churn: Churn | None = None,
    rho: float = KARRAS_RHO,
    clip_denoised: bool = True,
    model_kwargs: dict[str, Any] | None = None,
    device: torch.device | str = "cpu",
    precision: SamplingPrecision = "fp32",
    callback: StepCallback | None = None,
    progress: bool = False,
    classifier_guidance: ClassifierGuidance | None = None,
) -> Tensor:
    """Draws one image per seed with the chosen sampler.

    Args:
        model: ``model(x_t, t, **model_kwargs)`` with original-scale t (B,).
        diffusion: the full trained process.
        shape: per-sample shape ``(C, H, W)``.
        seeds: one seed per image; image k is the same whatever the batch it is drawn in.
        sampler: ``ddpm`` (ancestral), ``ddim``, ``dpm++`` (DPM-Solver++(2M)), ``dpm++sde``
            (its SDE form) or ``heun`` (EDM's Heun with churn).
        steps: the budget of network evaluations K; ``heun`` takes ⌈K/2⌉ levels (2·levels − 1
            evaluations), every other sampler K timesteps.
        spacing: timestep spacing; None picks :data:`DEFAULT_SPACING` for the sampler.
        eta: DDIM's η, or the SDE solver's noise share; None: :data:`DEFAULT_ETA` (refused elsewhere).
        churn: EDM's stochasticity for ``heun`` (None: deterministic); refused by the others.
        rho: ρ of the ``karras`` spacing.
        clip_denoised: clamp pred_x0 to [−1, 1] at every step.
        model_kwargs: extra network inputs, e.g. ``{"y": labels}`` with labels (B,) on ``device``.
        device, precision: where sampling runs; ``fp32``, ``bf16`` autocast for the network only, or
            ``auto`` (bf16 where ``device`` has native bf16; what the commands use).
        callback: ``callback(i, x_t, pred_x0)`` per step.
        progress: show a step counter on an interactive stderr.
        classifier_guidance: ADM's classifier guidance with one label per seed (None or scale 0:
            unguided, bit for bit); one classifier gradient per network call.

    Returns: (len(seeds), *shape) float32 samples on ``device``.
    """
    check_sampler_settings(sampler, steps, diffusion.num_steps)
    refuse_inapplicable(sampler, eta, churn)
    if classifier_guidance is not None and len(classifier_guidance.labels) != len(seeds):
        raise ValueError(f"classifier guidance has {len(classifier_guidance.labels)} labels for {len(seeds)} seeds")
    count = heun_levels(steps) if sampler == "heun" else steps
    timesteps = sampling_timesteps(diffusion.num_steps, count, spacing or DEFAULT_SPACING[sampler], diffusion.alphas_cumprod, rho)
    x_T, noise = initial_noise(seeds, shape, device)
    common: dict[str, Any] = dict(clip_denoised=clip_denoised, model_kwargs=model_kwargs, callback=callback,
                                  progress=progress, precision=resolve_sampling_precision(precision, device),
                                  classifier_guidance=classifier_guidance)
    eta = DEFAULT_ETA.get(sampler, 0.0) if eta is None else eta
    return _dispatch(sampler, model, diffusion, x_T, timesteps, noise, eta, churn, common)


def _dispatch(sampler: str, model: ModelFn, diffusion: GaussianDiffusion, x_T: Tensor, timesteps: list[int], noise: SampleNoise,
              eta: float, churn: Churn | None, common: dict[str, Any]) -> Tensor:
    """Runs the named sampler with its own settings and the ``common`` ones."""
    if sampler == "ddpm":
        return ddpm_sample(model, diffusion, x_T, timesteps, noise=noise, **common)
    if sampler == "ddim":
        return ddim_sample(model, diffusion, x_T, timesteps, eta=eta, noise=noise, **common)
    if sampler == "dpm++sde":
        return dpm_solver_pp_sde_sample(model, diffusion, x_T, timesteps, noise=noise, eta=eta, **common)
    if sampler == "heun":
        return heun_sample(model, diffusion, x_T, timesteps, churn=churn, noise=noise, **common)
    return dpm_solver_pp_sample(model, diffusion, x_T, timesteps, **common)


def refuse_inapplicable(sampler: str, eta: float | None, churn: Churn | None) -> None:
    """Refuses a setting the chosen sampler would ignore (what :func:`sample` checks; the CLI too)."""
    if eta is not None and sampler not in DEFAULT_ETA:
        raise UserError(f"--eta applies to {' and '.join(DEFAULT_ETA)} only, not to --sampler {sampler}; drop --eta")
    if churn is not None and churn.s_churn > 0 and sampler != "heun":
        raise UserError(f"--churn applies to --sampler heun only, not to --sampler {sampler}; drop --churn")


def check_sampler_settings(
    sampler: str, steps: int, num_steps: int, *,
    sampler_flag: str = "--sampler", steps_flag: str = "--steps", process: str = "", otherwise: str = "",
) -> None:
    """Refuses a sampler / step count that a ``num_steps``-step process cannot be sampled with: what
    :func:`sample` checks first, and what ``landiff train`` checks in advance for its preview
    settings, so the two can never disagree.

    Args:
        sampler_flag, steps_flag: the options the message names (the trainer's are ``--preview-…``).
        process: text naming the process's own options, e.g. ``" (--diffusion-steps 10)"``.
        otherwise: another way out appended to the fix, e.g. ``" or --preview-count 0"``.

    Raises:
        UserError: an unknown sampler, or K outside 1..T. (Every sampler runs on every prediction,
            the mean included, through :class:`~landiff.samplers.denoiser.Denoiser`.)
    """
    if sampler not in SAMPLERS:
        raise UserError(f"unknown sampler {sampler!r}; choose one of: {', '.join(SAMPLERS)} ({sampler_flag})")
    if not 1 <= steps <= num_steps:
        raise UserError(f"cannot sample with {steps} steps from a {num_steps}-step process{process}; "
                        f"use {steps_flag} 1..{num_steps}{otherwise}")


__all__ = [
    "DEFAULT_ETA",
    "DEFAULT_SAMPLER",
    "DEFAULT_STEPS",
    "DEFAULT_SPACING",
    "KARRAS_RHO",
    "PRECISIONS",
    "SAMPLERS",
    "SPACINGS",
    "Churn",
    "Classifier",
    "ClassifierGuidance",
    "Denoiser",
    "Prediction",
    "SampleNoise",
    "SamplingPrecision",
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
    "dpm_solver_pp_sde_sample",
    "heun_levels",
    "heun_sample",
    "initial_noise",
    "network_evaluations",
    "refuse_inapplicable",
    "resolve_sampling_precision",
    "sample",
    "sampling_timesteps",
]
