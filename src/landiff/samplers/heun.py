"""EDM's stochastic sampler (Karras et al. 2022, arXiv 2206.00364, Algorithm 2): Heun's 2nd-order
method on the probability-flow ODE dx/dσ = (x − D(x; σ))/σ, with optional "churn".

On N noise levels σ_0 > … > σ_{N−1} (then σ_N = 0), in the variance-exploding form x = x0 + σ n:

    γ_i = min(S_churn/N, √2 − 1) if S_tmin ≤ σ_i ≤ S_tmax else 0
    σ̂ = σ_i (1 + γ_i),   x̂ = x_i + √(σ̂² − σ_i²) S_noise z              (add noise: "churn")
    d = (x̂ − D(x̂; σ̂)) / σ̂,   x_{i+1} = x̂ + (σ_{i+1} − σ̂) d              (Euler)
    if σ_{i+1} > 0:  d' = (x_{i+1} − D(x_{i+1}; σ_{i+1})) / σ_{i+1},
                     x_{i+1} = x̂ + (σ_{i+1} − σ̂)(d + d')/2                 (Heun's correction)

The last step (to σ = 0) is Euler's, which returns D(x̂; σ̂) itself, so N levels cost 2N − 1
network evaluations. S_churn = 0 makes it deterministic (EDM Alg. 1). The churn re-injects noise
so that the sampler corrects the errors of an imperfect denoiser (EDM §4), at S_noise slightly
above 1 to offset the denoiser's tendency to remove a little too much noise.

A discrete model only knows its T trained levels, so σ̂ is rounded to the nearest of them (EDM
App. C.3.1 does the same for its pretrained ADM models) and the levels σ_i are trained ones
(the ``karras`` spacing of :mod:`landiff.samplers.timesteps` follows EDM eq. 5 with ρ).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Churn:
    """EDM's stochasticity settings (Alg. 2); ``s_churn = 0`` is the deterministic sampler.

    EDM's ImageNet-64 setting for a pretrained ADM model is S_churn 80, S_tmin 0.05, S_tmax 50 and
    S_noise 1.003 at 256 steps (Table 5); γ is capped at √2 − 1 per step, so at a few steps any
    S_churn ≥ (√2 − 1) N churns at the cap.
    """

    s_churn: float = 0.0
    s_tmin: float = 0.05
    s_tmax: float = 50.0
    s_noise: float = 1.003

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        if not (math.isfinite(self.s_churn) and self.s_churn >= 0):
            raise UserError(f"--churn must be a finite number >= 0 (0: deterministic), got {self.s_churn}")
        if not (0 <= self.s_tmin <= self.s_tmax) or not math.isfinite(self.s_tmax):
            raise UserError(f"the churn range needs 0 <= --churn-tmin <= --churn-tmax (finite), got "
                            f"{self.s_tmin} and {self.s_tmax}")
        if not (math.isfinite(self.s_noise) and self.s_noise > 0):
            raise UserError(f"--churn-noise must be a finite number > 0 (EDM uses 1.003), got {self.s_noise}")

    def gamma(self, sigma: float, levels: int) -> float:
        """γ_i of EDM Alg. 2 at level ``sigma`` of a sampler with ``levels`` noise levels."""
        if self.s_churn == 0 or not self.s_tmin <= sigma <= self.s_tmax:
            return 0.0
        return min(self.s_churn / levels, math.sqrt(2.0) - 1.0)


def heun_levels(evaluations: int) -> int:
    """N noise levels whose 2N − 1 evaluations fit a budget of ``evaluations`` (at least 1)."""
    return max(1, (evaluations + 1) // 2)


@torch.no_grad()
def heun_sample(
    model: ModelFn,
    diffusion: GaussianDiffusion,
    x_T: Tensor,
    timesteps: Sequence[int],
    *,
    churn: Churn | None = None,
    noise: SampleNoise | None = None,
    clip_denoised: bool = True,
    model_kwargs: dict[str, Any] | None = None,
    callback: StepCallback | None = None,
    progress: bool = False,
    precision: SamplingPrecision = "fp32",
    classifier_guidance: ClassifierGuidance | None = None,
) -> Tensor:
    """Draws x_0 with EDM's Heun sampler over the trained levels of ``timesteps`` (2N − 1 evaluations).

    Args:
        model: ``model(x_t, t, **model_kwargs)`` with original-scale t (B,), any prediction.
        diffusion: the full trained process (T steps).
        x_T: (B, C, H, W) starting noise, N(0, I) in the VP scaling of the noisiest timestep
            (the VE start is x_T √(1 + σ_0²), the same prior as the other samplers).
        timesteps: the N original timesteps whose σ are the levels (any order; visited from the largest).
        churn: the stochasticity (None or ``s_churn = 0``: deterministic).
        noise: per-sample streams for the churn noise; required when ``churn.s_churn > 0``.
        clip_denoised: clamp each x̂0 to [−1, 1].
        model_kwargs: extra network inputs, e.g. ``{"y": labels}``.
        callback: ``callback(i, x_t, pred_x0)`` after the first network call of level i, with x_t
            in the VP scaling the other samplers use.
        progress, precision: a step counter on an interactive stderr; ``fp32`` or ``bf16`` (autocast
            for the network only).
        classifier_guidance: ADM's guidance, D' = D + σ²·s∇_x log p(y | x) (VE view); None or s = 0: unguided.

    Returns:
        (B, C, H, W) samples.
    """
    churn = churn or Churn()
    _check_churn_noise(churn, noise, x_T)
    steps = check_timesteps(timesteps, diffusion.num_steps)
    denoiser = Denoiser(model, diffusion, clip_denoised=clip_denoised, model_kwargs=model_kwargs, precision=precision,
                        classifier_guidance=classifier_guidance)
    levels = len(steps)
    x = x_T * math.sqrt(1.0 + denoiser.sigma(steps[0]) ** 2)
    for i in walk_steps(levels, progress, "heun"):
        x, t_hat = _churn(denoiser, x, steps[i], churn, levels, noise)
        sigma_hat = denoiser.sigma(t_hat)
        x0 = denoiser(x, t_hat)
        if callback is not None:
            callback(i, x * denoiser.vp_scale(t_hat), x0)
        if i == levels - 1:
            return x0  # Euler to σ = 0: x̂ + (0 − σ̂)(x̂ − x̂0)/σ̂ = x̂0
        sigma_next = denoiser.sigma(steps[i + 1])
        d = (x - x0) / sigma_hat
        x_next = x + (sigma_next - sigma_hat) * d
        d_next = (x_next - denoiser(x_next, steps[i + 1])) / sigma_next
        x = x + (sigma_next - sigma_hat) * 0.5 * (d + d_next)
    raise AssertionError("unreachable")


def _check_churn_noise(churn: Churn, noise: SampleNoise | None, x_T: Tensor) -> None:
    """Churn draws noise: it needs per-sample streams, one per sample of ``x_T``."""
    if churn.s_churn > 0:
        if noise is None:
            raise ValueError("heun_sample with churn needs a SampleNoise (noise=...)")
        noise.check_batch(x_T)


def _churn(denoiser: Denoiser, x: Tensor, t: int, churn: Churn, levels: int, noise: SampleNoise | None) -> tuple[Tensor, int]:
    """(x̂, t̂): x raised from σ_t to σ̂ = σ_t (1 + γ) rounded to a trained level (never below t)."""
    gamma = churn.gamma(denoiser.sigma(t), levels)
    t_hat = max(t, denoiser.nearest(denoiser.sigma(t) * (1.0 + gamma))) if gamma > 0 else t
    if t_hat == t:
        return x, t
    assert noise is not None
    spread = math.sqrt(denoiser.sigma(t_hat) ** 2 - denoiser.sigma(t) ** 2) * churn.s_noise
    return x + spread * noise.randn(*x.shape[1:]).to(x.dtype), t_hat
