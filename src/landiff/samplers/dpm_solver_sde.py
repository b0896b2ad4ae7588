"""DPM-Solver++(2M) SDE: the second-order multistep solver of Lu et al. 2022 (arXiv 2211.01095,
§4 and App. B: "SDE-DPM-Solver++") for the reverse diffusion SDE, with data prediction, on the
discrete timesteps of a DDPM. Its noise re-injection lets it correct an imperfect denoiser, which
no ODE solver can (EDM, Karras et al. 2022 §4).

With α_t = √ᾱ_t, σ_t = √(1−ᾱ_t), λ_t = log(α_t/σ_t) and h = λ_next − λ_t, one step from x_t with
data prediction x̂0 is (η = 1: the reverse SDE; η = 0: DPM-Solver++(2M), the ODE)

    x_next = (σ_next/σ_t) e^{−ηh} x_t + α_next (1 − e^{−(1+η)h}) D + σ_next √(1 − e^{−2ηh}) S_noise z,

with D = x̂0 for the first step and, after it, the multistep midpoint correction
D = x̂0 + (x̂0 − x̂0_prev) / (2r), r = h_prev / h (as k-diffusion's ``sample_dpmpp_2m_sde``,
https://github.com/crowsonkb/k-diffusion, and diffusers' ``DPMSolverMultistepScheduler`` with
``algorithm_type="sde-dpmsolver++"``). After the last timestep it denoises to zero: it returns x̂0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from landiff.diffusion import GaussianDiffusion
from landiff.diffusion.gaussian import ModelFn
from landiff.errors import UserError
from landiff.noise import SampleNoise
from landiff.samplers.classifier_guidance import ClassifierGuidance
from landiff.samplers.denoiser import Denoiser, SamplingPrecision
from landiff.samplers.dpm_solver import LOWER_ORDER_FINAL_BELOW, multistep_data
from landiff.samplers.timesteps import StepCallback, check_timesteps, walk_steps


@torch.no_grad()
def dpm_solver_pp_sde_sample(
    model: ModelFn,
    diffusion: GaussianDiffusion,
    x_T: Tensor,
    timesteps: Sequence[int],
    *,
    noise: SampleNoise,
    eta: float = 1.0,
    s_noise: float = 1.0,
    lower_order_final: bool = True,
    clip_denoised: bool = True,
    model_kwargs: dict[str, Any] | None = None,
    callback: StepCallback | None = None,
    progress: bool = False,
    precision: SamplingPrecision = "fp32",
    classifier_guidance: ClassifierGuidance | None = None,
) -> Tensor:
    """Solves the reverse SDE from x_T with DPM-Solver++(2M) SDE, one network call per timestep.

    Args:
        model: ``model(x_t, t, **model_kwargs)`` with original-scale t (B,), any prediction.
        diffusion: the full trained process (T steps).
        x_T: (B, C, H, W) starting noise.
        timesteps: the K original timesteps where the network is evaluated (any order).
        noise: per-sample streams for the injected noise.
        eta, s_noise: the share of the SDE's noise, 0..1 (1: the reverse SDE, 0: 2M), and a scale on it (1: as is).
        lower_order_final: the first-order step into the last timestep below 15 steps (as 2M).
        clip_denoised: clamp each x̂0 to [−1, 1].
        model_kwargs: extra network inputs, e.g. ``{"y": labels}``.
        callback: ``callback(i, x_t, pred_x0)`` after the network call of step i.
        progress, precision: a step counter on an interactive stderr; ``fp32`` or ``bf16`` (autocast
            for the network only).
        classifier_guidance: ADM's classifier guidance, ε form (Alg. 2) in the denoiser; None or s = 0: unguided.

    Returns: (B, C, H, W) samples: x̂0 at the last timestep.
    """
    _check_settings(eta, s_noise)
    noise.check_batch(x_T)
    steps = check_timesteps(timesteps, diffusion.num_steps)
    denoiser = Denoiser(model, diffusion, clip_denoised=clip_denoised, model_kwargs=model_kwargs, precision=precision,
                        classifier_guidance=classifier_guidance)
    abar = denoiser.alphas_cumprod[steps]  # descending timesteps: index k is the k-th step taken
    alpha, sigma = np.sqrt(abar), np.sqrt(1.0 - abar)
    lam, count, x, prev_x0, prev_h = np.log(alpha) - np.log(sigma), len(steps), x_T, None, 0.0
    for k in walk_steps(count, progress, "dpm++sde"):
        x0 = denoiser.predict(x, steps[k]).x0
        if callback is not None:
            callback(k, x, x0)
        if k == count - 1:
            return x0  # denoise to zero
        h = float(lam[k + 1] - lam[k])
        eta_h = eta * h
        first_order = prev_x0 is None or (lower_order_final and k == count - 2 and count < LOWER_ORDER_FINAL_BELOW)
        data = x0 if first_order or prev_x0 is None else multistep_data(x0, prev_x0, h, prev_h)
        x = float(sigma[k + 1] / sigma[k] * math.exp(-eta_h)) * x + float(alpha[k + 1] * -math.expm1(-h - eta_h)) * data
        if eta_h > 0:  # the SDE's own noise: σ_next √(1 − e^{−2ηh}) z
            x += float(sigma[k + 1] * math.sqrt(-math.expm1(-2.0 * eta_h)) * s_noise) * noise.randn(*x.shape[1:]).to(x.dtype)
        prev_x0, prev_h = x0, h
    raise AssertionError("unreachable")


def _check_settings(eta: float, s_noise: float) -> None:
    if not (math.isfinite(eta) and 0 <= eta <= 1):
        raise UserError(f"DPM-Solver++ SDE eta must lie in 0..1 (1: the reverse SDE, 0: the ODE), got {eta} (--eta)")
    if not (math.isfinite(s_noise) and s_noise > 0):
        raise UserError(f"the SDE's noise scale s_noise must be a finite number > 0, got {s_noise}")
