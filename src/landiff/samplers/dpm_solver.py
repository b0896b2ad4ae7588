"""DPM-Solver++(2M): the multistep second-order data-prediction solver of Lu et al. 2022
(arXiv 2211.01095, Algorithm 2) for the diffusion ODE, on the discrete timesteps of a DDPM.

Notation: α_t = √ᾱ_t, σ_t = √(1−ᾱ_t), λ_t = log(α_t/σ_t) (half the log-SNR), h_i = λ_{t_i} − λ_{t_{i−1}}.
With x̂0_i the data prediction at t_i, one step to t_{i+1} is (Alg. 2)

    x_{t_{i+1}} = (σ_{t_{i+1}}/σ_{t_i}) x_{t_i} + α_{t_{i+1}} (1 − e^{−h_{i+1}}) D_i,

with D_i = x̂0_i for the first-order (DDIM-equivalent) step and, for the multistep second-order
step, D_i = (1 + 1/(2r)) x̂0_i − 1/(2r) x̂0_{i−1} with r = h_i / h_{i+1}. After the last timestep
the solver "denoises to zero": σ = 0 there, the update collapses to x̂0 and the sample is returned.

Default timesteps: the authors' guidance (dpm-solver README, "Suggestions for choosing the
hyperparameters") is logSNR-uniform steps for low-resolution images (they name CIFAR-10) and
time-uniform steps for high-resolution ones; landiff trains at low resolution, so ``logsnr`` is
its default for this sampler (see :func:`landiff.samplers.sample`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from landiff.diffusion import GaussianDiffusion
from landiff.diffusion.gaussian import ModelFn
from landiff.samplers.classifier_guidance import ClassifierGuidance
from landiff.samplers.denoiser import Denoiser, SamplingPrecision
from landiff.samplers.timesteps import StepCallback, check_timesteps, walk_steps

LOWER_ORDER_FINAL_BELOW = 15  # as dpm-solver and diffusers: only few-step runs need the stabiliser


@torch.no_grad()
def dpm_solver_pp_sample(
    model: ModelFn,
    diffusion: GaussianDiffusion,
    x_T: Tensor,
    timesteps: Sequence[int],
    *,
    order: int = 2,
    lower_order_final: bool = True,
    clip_denoised: bool = True,
    model_kwargs: dict[str, Any] | None = None,
    callback: StepCallback | None = None,
    progress: bool = False,
    precision: SamplingPrecision = "fp32",
    classifier_guidance: ClassifierGuidance | None = None,
) -> Tensor:
    """Solves the diffusion ODE from x_T with DPM-Solver++(2M), one network call per timestep.

    Args:
        model: ``model(x_t, t, **model_kwargs)`` with original-scale t (B,).
        diffusion: the full trained process (T steps).
        x_T: (B, C, H, W) starting noise.
        timesteps: the K original timesteps where the network is evaluated (any order).
        order: 1 (DPM-Solver++1 = DDIM with η = 0) or 2 (multistep 2M).
        lower_order_final: with fewer than 15 timesteps, take the step into the last timestep
            with the first-order update; when the last λ gap is much larger than the one before
            (time-uniform steps near t = 0), the second-order extrapolation overshoots.
        clip_denoised: clamp each x̂0 to [−1, 1] (the data prediction the solver integrates).
        model_kwargs: extra network inputs, e.g. ``{"y": labels}``.
        callback: ``callback(i, x_t, pred_x0)`` after the network call of step i.
        progress: show a step counter on an interactive stderr.
        precision: ``fp32``, or ``bf16`` for the network (autocast; the update stays float32).
        classifier_guidance: ADM's classifier guidance, ε form (Alg. 2) in the denoiser; None or s = 0: unguided.

    Returns:
        (B, C, H, W) samples: x̂0 at the last timestep.
    """
    if order not in (1, 2):
        raise ValueError(f"DPM-Solver++ order must be 1 or 2, got {order}")
    steps = check_timesteps(timesteps, diffusion.num_steps)
    denoiser = Denoiser(model, diffusion, clip_denoised=clip_denoised, model_kwargs=model_kwargs, precision=precision,
                        classifier_guidance=classifier_guidance)
    abar = denoiser.alphas_cumprod[steps]  # descending timesteps: index k is the k-th step taken
    alpha, sigma = np.sqrt(abar), np.sqrt(1.0 - abar)
    lam = np.log(alpha) - np.log(sigma)
    count = len(steps)
    x = x_T
    prev_x0, prev_h = None, 0.0
    for k in walk_steps(count, progress, "dpm++"):
        x0 = denoiser.predict(x, steps[k]).x0
        if callback is not None:
            callback(k, x, x0)
        if k == count - 1:
            return x0  # denoise to zero: σ_next = 0, α_next = 1, so the update is x̂0 itself
        h = float(lam[k + 1] - lam[k])
        first_order = order == 1 or prev_x0 is None or (lower_order_final and k == count - 2 and count < LOWER_ORDER_FINAL_BELOW)
        data = x0 if first_order or prev_x0 is None else multistep_data(x0, prev_x0, h, prev_h)
        x = float(sigma[k + 1] / sigma[k]) * x + float(alpha[k + 1] * -np.expm1(-h)) * data
        prev_x0, prev_h = x0, h
    raise AssertionError("unreachable: the loop returns at the last timestep")


def multistep_data(x0: Tensor, prev_x0: Tensor, h: float, prev_h: float) -> Tensor:
    """D = (1 + 1/(2r)) x̂0_i − 1/(2r) x̂0_{i−1} with r = (previous λ step) / (this λ step) (Alg. 2)."""
    half_inv_r = 0.5 * h / prev_h
    return (1.0 + half_inv_r) * x0 - half_inv_r * prev_x0
