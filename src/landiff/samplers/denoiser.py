"""One denoiser interface for every trained model: x̂0 = D(x; σ) (the view of EDM, Karras et al.
2022, arXiv 2206.00364 §2, and of k-diffusion), over the discrete ᾱ table of the trained process.

A discrete VP model sees x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε. Divided by √ᾱ_t that is x = x0 + σ_t ε with
σ_t = √((1−ᾱ_t)/ᾱ_t): the same model is a denoiser D(x; σ_t) of the variance-exploding form, at the
T noise levels it was trained on. :class:`Denoiser` gives both views:

- :meth:`Denoiser.predict` at a VP ``x_t`` and an original timestep t: x̂0 (clipped when asked), the
  ε it implies and the learned-variance channels, for every prediction the process knows (eps, x0,
  v, and mean, whose x̂0 comes from inverting the full process's posterior mean
  μ̃ = coef1·x0 + coef2·x_t at that t, so any subset of timesteps can be visited);
- :meth:`Denoiser.__call__` ``D(x, t)`` at a VE ``x`` with σ = σ_t, for the EDM-style samplers;
  :meth:`Denoiser.nearest` rounds any σ to a trained level (EDM's ``round_sigma`` for its
  pretrained discrete models, App. C.3.1), because a discrete network only knows its own levels.

Classifier-free guidance is a property of the network function
(:func:`~landiff.samplers.guidance.classifier_free_guidance` wraps the model before it gets here);
classifier guidance acts on the denoiser's output: given a
:class:`~landiff.samplers.classifier_guidance.ClassifierGuidance` with s > 0, :meth:`Denoiser.predict`
returns ADM's guided ε̂' and x̂0' (Alg. 2), so every sampler that reads x̂0 or ε̂ is guided in this one
place; the ancestral sampler asks for the unguided prediction and shifts its mean instead (Alg. 1).
The two kinds combine. The classifier sees σ_t of this model's own table at the current timestep.

Precision: the network may run under bf16 autocast; its output is cast back to float32 before any of the maths,
and the tables stay float64 on the host, so only the network's own arithmetic is in bf16.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from landiff.diffusion import GaussianDiffusion
from landiff.diffusion.gaussian import ModelFn
from landiff.errors import UserError
from landiff.options import native_bf16
from landiff.samplers.classifier_guidance import ClassifierGuidance

SamplingPrecision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")


def resolve_sampling_precision(precision: str, device: torch.device | str) -> SamplingPrecision:
    """``auto`` → ``bf16`` where ``device`` has native bf16, else ``fp32``; other values as given.

    bf16 sampling was measured at 1.96× fp32's throughput with an unchanged SWD on a 2-core CPU
    with AVX512-BF16 (benchmarks/RESULTS.md, "Sampling in bf16 vs fp32").
    """
    if precision not in PRECISIONS:
        raise UserError(f"unknown sampling precision {precision!r}; choose one of: {', '.join(PRECISIONS)} (--precision)")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return "bf16" if precision == "bf16" else "fp32"


@dataclass(frozen=True)
class Prediction:
    """What the network says at one timestep, in the terms every sampler uses.

    Attributes:
        x0: the estimate of the clean image (clamped to [−1, 1] when the denoiser clips; a classifier
            guidance shift comes after the clamp).
        eps: the noise implied by ``x0`` at this t: (x_t − √ᾱ_t x̂0) / √(1−ᾱ_t).
        output: the raw network output (float32), for samplers that need more of it (the
            learned-variance channels of the ancestral sampler); never classifier-guided.
    """

    x0: Tensor
    eps: Tensor
    output: Tensor


class Denoiser:
    """A trained discrete model as x̂0 at its own timesteps, or as D(x; σ_t) in the VE form.

    Args:
        model: ``model(x_t, t, **model_kwargs)`` with original-scale t (B,), any prediction.
        diffusion: the full trained process (T steps; not a respaced one).
        clip_denoised: clamp x̂0 to [−1, 1] (the data range).
        model_kwargs: extra network inputs, e.g. ``{"y": labels}``.
        precision: ``fp32``, ``bf16`` to run the network under bf16 autocast, or ``auto``: bf16
            where the device of the first input has native bf16.
        classifier_guidance: ADM's classifier guidance, applied by :meth:`predict` (None, or a scale
            of 0: unguided, and the classifier is never called).
    """

    def __init__(
        self, model: ModelFn, diffusion: GaussianDiffusion, *, clip_denoised: bool = True,
        model_kwargs: dict[str, Any] | None = None, precision: SamplingPrecision = "fp32",
        classifier_guidance: ClassifierGuidance | None = None,
    ) -> None:
        resolve_sampling_precision(precision, "cpu")  # refuses an unknown value up front
        if not np.array_equal(diffusion.timestep_map, np.arange(diffusion.num_steps)):
            raise ValueError("Denoiser needs the full trained process, not a respaced one")
        self.model, self.diffusion = model, diffusion
        self.clip_denoised, self.model_kwargs, self.precision = clip_denoised, model_kwargs or {}, precision
        self.alphas_cumprod = np.asarray(diffusion.alphas_cumprod, dtype=np.float64)
        self.sigmas = np.sqrt((1.0 - self.alphas_cumprod) / self.alphas_cumprod)  # increasing in t
        self.evaluations = 0  # network calls so far (a classifier-free guided call counts once)
        # s = 0 drops the guidance altogether, so the unguided arithmetic runs: bit-for-bit the same images.
        self.classifier_guidance = classifier_guidance if classifier_guidance is not None and classifier_guidance.active else None
        self.classifier_evaluations = 0  # classifier gradients (one forward and backward each)

    @property
    def num_steps(self) -> int:
        return self.diffusion.num_steps

    def output(self, x_t: Tensor, t: int) -> Tensor:
        """The network's raw output (float32) at VP ``x_t`` and original timestep ``t``."""
        return self._output(x_t, self._steps(x_t, t))

    def predict(self, x_t: Tensor, t: int, *, guided: bool = True) -> Prediction:
        """x̂0, ε̂ and the raw output at VP ``x_t`` and original timestep ``t`` (one network call).

        With classifier guidance (and ``guided``), ε̂' = ε̂ − √(1−ᾱ_t)·g and x̂0' from it (ADM Alg. 2),
        g = s∇log p(y | x_t) at σ_t; x̂0 is clipped before the shift, not after (see
        :mod:`landiff.samplers.classifier_guidance`). ``guided=False``: the network's own prediction.
        """
        steps = self._steps(x_t, t)
        out = self._output(x_t, steps)
        p = self.diffusion.mean_variance_from_output(out, x_t, steps, self.clip_denoised)
        if not guided or self.classifier_guidance is None:
            return Prediction(x0=p.pred_x0, eps=p.pred_eps, output=out)
        g = self.guidance_gradient(x_t, t)
        assert g is not None
        eps = p.pred_eps - self.diffusion.extract("sqrt_one_minus_alphas_cumprod", steps, x_t) * g.to(p.pred_eps.dtype)
        return Prediction(x0=self.diffusion.predict_x0_from_eps(x_t, steps, eps), eps=eps, output=out)

    def guidance_gradient(self, x_t: Tensor, t: int) -> Tensor | None:
        """g = s·∇_{x_t} log p(y | x_t) at σ_t of original timestep ``t``; None when unguided."""
        if self.classifier_guidance is None:
            return None
        self.classifier_evaluations += 1
        return self.classifier_guidance.gradient(x_t, self.sigma(t))

    @staticmethod
    def _steps(x_t: Tensor, t: int) -> Tensor:
        return torch.full((x_t.shape[0],), int(t), dtype=torch.long, device=x_t.device)

    def _output(self, x_t: Tensor, steps: Tensor) -> Tensor:
        self.evaluations += 1
        if self.precision == "auto":
            self.precision = resolve_sampling_precision("auto", x_t.device)
        if self.precision == "bf16":
            with torch.autocast(device_type=x_t.device.type, dtype=torch.bfloat16):
                out = self.model(x_t, steps, **self.model_kwargs)
            return out.float()
        return self.model(x_t, steps, **self.model_kwargs)

    def __call__(self, x: Tensor, t: int) -> Tensor:
        """D(x; σ_t): x̂0 from the VE ``x`` = x0 + σ_t n, i.e. the network at x_t = x / √(1 + σ_t²)."""
        return self.predict(x * self.vp_scale(t), t).x0

    def vp_scale(self, t: int) -> float:
        """√ᾱ_t = 1 / √(1 + σ_t²): VE x times this is the network's input x_t."""
        return math.sqrt(float(self.alphas_cumprod[t]))

    def sigma(self, t: int) -> float:
        """σ_t = √((1 − ᾱ_t)/ᾱ_t) of original timestep ``t``."""
        return float(self.sigmas[t])

    def nearest(self, sigma: float) -> int:
        """The original timestep whose σ_t is nearest to ``sigma`` in log σ (EDM's round_sigma)."""
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        return int(np.abs(np.log(self.sigmas) - math.log(sigma)).argmin())
