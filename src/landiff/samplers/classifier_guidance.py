"""Classifier guidance (Dhariwal & Nichol 2021, "Diffusion Models Beat GANs", arXiv 2105.05233, §4).

A classifier p_φ(y | x_t) trained on noisy images steers an unconditional (or conditional) diffusion
model towards class y by adding s·∇_{x_t} log p_φ(y | x_t) to its score. With
g = s·∇_{x_t} log p_φ(y | x_t) (what :meth:`ClassifierGuidance.gradient` returns), ADM gives two forms:

- **mean shift**, for ancestral sampling (Alg. 1): the step's Gaussian N(μ, Σ) becomes N(μ + Σ·g, Σ),
  with Σ the variance of that step (fixed β̃ or β of the respaced process, or the learned IDDPM
  eq. 15 interpolation); :func:`~landiff.samplers.ddpm.ddpm_sample` uses it, on the unguided μ;
- **ε / score form**, for DDIM and every other sampler (Alg. 2): ε̂' = ε̂ − √(1−ᾱ_t)·g, so
  x̂0' = (x_t − √(1−ᾱ_t) ε̂')/√ᾱ_t = x̂0 + (1−ᾱ_t)/√ᾱ_t · g. Since ∇log p_t(x_t) = −ε̂/√(1−ᾱ_t), this
  is the score ∇log p_t(x_t) + s·∇log p(y | x_t); at s = 1 and an exact classifier it is
  ∇log p_t(x_t | y) (Bayes), so every sampler then draws from p(x0 | y). In the VE view of
  :meth:`Denoiser.__call__ <landiff.samplers.denoiser.Denoiser.__call__>` it reads
  D'(x; σ) = D(x; σ) + σ²·s·∇_x log p(y | x), the form the EDM-style Heun sampler integrates.

Clipping: with ``clip_denoised`` the *unguided* x̂0 is clamped to [−1, 1] (the network's estimate of
the data, as without guidance), ε̂ is derived from it, shifted, and x̂0' is **not** clamped again.
Clamping after the shift would replace the guidance term by whatever survives the projection: at
high noise (1−ᾱ_t)/√ᾱ_t is large (≈ 1/√ᾱ_t), so x̂0' saturates at ±1 and the score no longer is
∇log p_t + s∇log p(y | x_t), which breaks the Bayes identity above; it would also make the ε form
disagree with the mean shift, which adds Σ·g after the clipped-x̂0 mean. So a guided sample may end
slightly outside [−1, 1] (by (1−ᾱ_t)/√ᾱ_t·|g| at the last timestep, or Σ_0·|g| for ``ddpm``);
quantisation to uint8 clamps it.

Cost: one classifier forward and backward per denoiser call (``Denoiser.classifier_evaluations``
counts them; ``Denoiser.evaluations`` still counts network calls only).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from landiff.errors import UserError

Classifier = Callable[[Tensor, Tensor], Tensor]
"""``classifier(x_t (B, C, H, W), sigma (B,)) -> logits (B, K)`` with σ = √((1−ᾱ_t)/ᾱ_t) ≥ 0;
differentiable in x_t, each row depending on its own sample only."""


@dataclass(frozen=True, eq=False)  # eq would compare tensors
class ClassifierGuidance:
    """The classifier, the scale s ≥ 0 and the class to guide each sample towards.

    Attributes:
        classifier: a :data:`Classifier` (a module in eval mode, or any callable of that signature).
        scale: s ≥ 0 (0: unguided, bit for bit: the samplers then never call the classifier; 1: for
            an exact classifier, sampling from p(x | y); ADM uses 1–10 with its noisy classifiers).
        labels: (B,) long, the classifier's label index of each sample in the batch.
    """

    classifier: Classifier
    scale: float
    labels: Tensor

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and self.scale >= 0):
            raise UserError(f"the classifier guidance scale must be a finite number >= 0 (0 = unguided), got {self.scale} "
                            "(--classifier-scale)")
        if self.labels.ndim != 1 or self.labels.dtype != torch.long:
            raise ValueError(f"labels must be a (B,) long tensor, got {tuple(self.labels.shape)} {self.labels.dtype}")

    @property
    def active(self) -> bool:
        """Whether this guidance changes anything (s > 0)."""
        return self.scale > 0

    def for_batch(self, start: int, stop: int) -> ClassifierGuidance:
        """The same guidance for samples ``start:stop`` of the labels (one chunk of a larger set)."""
        return ClassifierGuidance(self.classifier, self.scale, self.labels[start:stop])

    def gradient(self, x_t: Tensor, sigma: float | Tensor) -> Tensor:
        """g = s·∇_{x_t} log softmax(classifier(x_t, σ))[y], per sample.

        Runs with gradients on (samplers run under ``no_grad``) and autocast off, in float32 (float64
        when ``x_t`` is float64), whatever precision the diffusion network samples in.

        Args:
            x_t: (B, C, H, W) VP noisy images; B must equal ``len(labels)``.
            sigma: σ_t = √((1−ᾱ_t)/ᾱ_t) of the current timestep, a float or (B,).

        Returns:
            (B, C, H, W) in the dtype of the computation (float32 or float64); no graph attached.
        """
        if x_t.shape[0] != self.labels.shape[0]:
            raise ValueError(f"classifier guidance has {self.labels.shape[0]} labels but the batch has {x_t.shape[0]} samples")
        dtype = torch.float64 if x_t.dtype == torch.float64 else torch.float32
        sigmas = torch.as_tensor(sigma, dtype=dtype, device=x_t.device).expand(x_t.shape[0]).contiguous()
        labels = self.labels.to(x_t.device)
        with torch.enable_grad(), torch.autocast(device_type=x_t.device.type, enabled=False):
            x = x_t.detach().to(dtype).requires_grad_(True)
            log_probs = torch.log_softmax(self.classifier(x, sigmas).to(dtype), dim=-1)
            # Rows are independent, so the gradient of the sum is each sample's own gradient.
            (grad,) = torch.autograd.grad(log_probs.gather(1, labels[:, None]).sum(), x)
        return self.scale * grad
