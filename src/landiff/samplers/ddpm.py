"""Ancestral sampling: DDPM Algorithm 2 (Ho et al. 2020), over respaced steps as in Improved DDPM §4;
classifier guidance by ADM's mean shift (Dhariwal & Nichol 2021, arXiv 2105.05233, Alg. 1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from landiff.diffusion import GaussianDiffusion
from landiff.diffusion.gaussian import MeanVariance, ModelFn
from landiff.noise import SampleNoise
from landiff.samplers.classifier_guidance import ClassifierGuidance
from landiff.samplers.denoiser import Denoiser, SamplingPrecision
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
    precision: SamplingPrecision = "fp32",
    classifier_guidance: ClassifierGuidance | None = None,
) -> Tensor:
    """Draws x_0 by ancestral sampling x_{t_{i−1}} ~ p(x_{t_{i−1}} | x_{t_i}) (DDPM Alg. 2, IDDPM §4).

    Each step uses the respaced process's mean and variance (fixed β̃, fixed β or the learned
    IDDPM eq. 15 interpolation); no noise is added after the last step, whose mean is pred_x0.
    A mean-predicting network outputs the one-step mean of the *full* process; over fewer steps
    its x̂0 (from the :class:`~landiff.samplers.denoiser.Denoiser`) goes into the respaced
    posterior q(x_{t_{i−1}} | x_{t_i}, x̂0) instead, with the respaced fixed variance.

    Classifier guidance shifts each step's mean by Σ·g (ADM Alg. 1; Σ: the step's variance, learned or
    not; g = s∇log p(y | x_{t_i})) from the *unguided* prediction, the last step's (noise-free) too.

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
        precision: ``fp32``, or ``bf16`` for the network (autocast; the update stays float32).
        classifier_guidance: ADM's classifier guidance (None or scale 0: unguided).

    Returns:
        (B, C, H, W) samples, in the data range [−1, 1] when ``clip_denoised`` (unguided).
    """
    noise.check_batch(x_T)
    denoiser = Denoiser(model, diffusion, clip_denoised=clip_denoised, model_kwargs=model_kwargs, precision=precision,
                        classifier_guidance=classifier_guidance)  # its predict() is not guided here: see _step_law
    process = respaced(diffusion, timesteps)
    if diffusion.prediction == "mean" and process.num_steps != diffusion.num_steps:
        # The respaced process read as an x0-predicting one, fed the denoiser's x̂0.
        process = GaussianDiffusion(process.betas, "x0", process.variance, timestep_map=process.timestep_map)
    count = process.num_steps
    x = x_T
    for step in walk_steps(count, progress, "ddpm"):
        i = count - 1 - step  # index in the respaced process, from the noisiest down to 0
        t = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
        p = _step_law(process, denoiser, x, t, reads_x0=process.prediction != diffusion.prediction)
        if callback is not None:
            callback(step, x, p.pred_x0)
        x = p.mean + torch.exp(0.5 * p.log_variance) * noise.randn(*x.shape[1:]).to(p.mean.dtype) if i > 0 else p.mean
    return x


def _step_law(process: GaussianDiffusion, denoiser: Denoiser, x: Tensor, t: Tensor, *, reads_x0: bool) -> MeanVariance:
    """p(x_{t_{i−1}} | x_{t_i}) of respaced step ``t``: from the raw output, or from the denoiser's
    unguided x̂0; under classifier guidance N(μ + Σ·g, Σ) (ADM Alg. 1)."""
    original = int(process.timestep_map[int(t[0])])
    if not reads_x0:
        law = process.mean_variance_from_output(denoiser.output(x, original), x, t, denoiser.clip_denoised)
    else:
        pred = denoiser.predict(x, original, guided=False)  # the mean shift below is the guidance
        output = torch.cat([pred.x0, pred.output[:, x.shape[1]:]], dim=1)  # x̂0 and any learned-variance channels
        law = process.mean_variance_from_output(output, x, t, denoiser.clip_denoised)
    g = denoiser.guidance_gradient(x, original)
    if g is not None:
        law.mean = law.mean + law.variance * g.to(law.mean.dtype)
    return law
