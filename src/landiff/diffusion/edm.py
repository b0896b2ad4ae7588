"""The EDM formulation (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
Generative Models", arXiv 2206.00364): a denoiser D(x; σ) of x = x0 + σ n with preconditioning,
trained on a log-normal distribution of σ with the paper's loss weighting.

Preconditioning (EDM Table 1, "Ours"; σ_d is the data's standard deviation, 0.5 for images in [−1, 1]):

    D(x; σ) = c_skip(σ) x + c_out(σ) F(c_in(σ) x; c_noise(σ))
    c_skip = σ_d² / (σ² + σ_d²),  c_out = σ σ_d / √(σ² + σ_d²),  c_in = 1 / √(σ² + σ_d²),
    c_noise = ¼ ln σ

Training: ln σ ~ N(P_mean, P_std²) (−1.2, 1.2), loss λ(σ) ‖D(x0 + σ n; σ) − x0‖² with
λ(σ) = (σ² + σ_d²) / (σ σ_d)² = 1 / c_out², which makes the network's own target F unit-weighted
at every σ (EDM §5, eq. 8).

The network is landiff's UNet, whose sinusoidal embedding was laid out for integer timesteps in
[0, 1000). It receives :data:`NOISE_EMBEDDING_SCALE` · c_noise, which spreads ¼ ln σ over
σ ∈ [0.002, 80] across about 660 units, the span of phases the discrete models use; the factor
is a constant of the embedding, so the conditioning is still c_noise.

Sampling: every sampler of :mod:`landiff.samplers` walks a table of trained levels (the
:class:`~landiff.samplers.denoiser.Denoiser` view). :meth:`EDMProcess.sampling_process` is that
table for an EDM model: ``num_levels`` σ spaced evenly in log σ over [σ_min, σ_max] (EDM's
sampling range), as a variance-preserving process with ᾱ_t = 1 / (1 + σ_t²) whose network
predicts x0; :class:`EDMNetwork` is the network on that table (VP input x_t = x / √(1 + σ²), so
x = x_t √(1 + σ_t²)). The continuous model knows every σ, so a dense table loses nothing the
samplers use. There is no likelihood bound: ``landiff eval nll`` is for the discrete process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from landiff.diffusion.gaussian import GaussianDiffusion, ModelFn, TrainingLosses
from landiff.diffusion.likelihood import mean_flat
from landiff.errors import UserError

FORMULATIONS: tuple[str, ...] = ("discrete", "edm")
NOISE_EMBEDDING_SCALE = 250.0
SIGMA_MIN, SIGMA_MAX = 0.002, 80.0  # EDM's sampling range (§5, Table 1)


@dataclass(frozen=True)
class EDMProcess:
    """EDM's preconditioning, σ distribution and loss; pure maths, no network.

    Args:
        sigma_data: σ_d, the data's standard deviation (0.5 in the paper for [−1, 1] images).
        p_mean, p_std: ln σ ~ N(p_mean, p_std²) during training (−1.2, 1.2 in the paper).
        num_levels: levels of the sampling table (:meth:`sampling_process`).
        sigma_min, sigma_max: the range of the sampling table.
    """

    sigma_data: float = 0.5
    p_mean: float = -1.2
    p_std: float = 1.2
    num_levels: int = 1000
    sigma_min: float = SIGMA_MIN
    sigma_max: float = SIGMA_MAX

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma_data) and self.sigma_data > 0):
            raise UserError(f"--sigma-data must be a finite number > 0 (0.5 for images in [-1, 1]), got {self.sigma_data}")
        if not math.isfinite(self.p_mean):
            raise UserError(f"--p-mean must be a finite number (EDM uses -1.2), got {self.p_mean}")
        if not (math.isfinite(self.p_std) and self.p_std > 0):
            raise UserError(f"--p-std must be a finite number > 0 (EDM uses 1.2), got {self.p_std}")
        if self.num_levels < 2:
            raise UserError(f"the EDM sampling table needs at least 2 levels (--diffusion-steps), got {self.num_levels}")
        if not 0 < self.sigma_min < self.sigma_max < math.inf:
            raise UserError(f"the EDM sampling range needs 0 < sigma_min < sigma_max, got {self.sigma_min} and {self.sigma_max}")

    # ----------------------------------------------------------- preconditioning
    def c_skip(self, sigma: Tensor) -> Tensor:
        return self.sigma_data**2 / (sigma**2 + self.sigma_data**2)

    def c_out(self, sigma: Tensor) -> Tensor:
        return sigma * self.sigma_data / (sigma**2 + self.sigma_data**2).sqrt()

    def c_in(self, sigma: Tensor) -> Tensor:
        return 1.0 / (sigma**2 + self.sigma_data**2).sqrt()

    @staticmethod
    def c_noise(sigma: Tensor) -> Tensor:
        return sigma.log() / 4.0

    def loss_weight(self, sigma: Tensor) -> Tensor:
        """λ(σ) = (σ² + σ_d²) / (σ σ_d)² (EDM eq. 8 with Table 1's choice; = 1 / c_out²)."""
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2

    def denoise(self, net: ModelFn, x: Tensor, sigma: Tensor, **model_kwargs: Any) -> Tensor:
        """D(x; σ) for VE ``x`` (B, C, H, W) and ``sigma`` (B,), in float32 (the network may autocast)."""
        s = sigma.to(device=x.device, dtype=torch.float32).reshape(-1, *([1] * (x.ndim - 1)))
        flat = s.reshape(-1)
        out = net((self.c_in(s) * x).to(x.dtype), NOISE_EMBEDDING_SCALE * self.c_noise(flat), **model_kwargs)
        return self.c_skip(s) * x.float() + self.c_out(s) * out.float()

    # ------------------------------------------------------------------ training
    def sample_sigma(self, batch: int, generator: torch.Generator | None = None) -> Tensor:
        """``batch`` training noise levels, ln σ ~ N(P_mean, P_std²); float64 on the CPU (B,)."""
        z = torch.randn(batch, generator=generator, dtype=torch.float64)
        return (self.p_mean + self.p_std * z).exp()

    def training_losses(
        self, net: ModelFn, x0: Tensor, sigma: Tensor, noise: Tensor | None = None,
        model_kwargs: dict[str, Any] | None = None,
    ) -> TrainingLosses:
        """Per-example λ(σ) ‖D(x0 + σ n; σ) − x0‖² (``loss``) and the unweighted ‖D − x0‖² (``mse``)."""
        if noise is None:
            noise = torch.randn_like(x0)
        s = sigma.to(device=x0.device, dtype=torch.float32)
        x = x0 + s.reshape(-1, 1, 1, 1) * noise
        error = mean_flat((self.denoise(net, x, s, **(model_kwargs or {})) - x0).square())
        return TrainingLosses(loss=self.loss_weight(s) * error, mse=error, vb=None)

    # ------------------------------------------------------------------ sampling
    def sigmas(self) -> np.ndarray:
        """The sampling table's σ_t, t = 0..num_levels−1, increasing and evenly spaced in log σ (float64)."""
        return np.exp(np.linspace(math.log(self.sigma_min), math.log(self.sigma_max), self.num_levels))

    def level(self, sigma: Tensor) -> Tensor:
        """The index of the table level nearest to each ``sigma`` in log σ (for per-level statistics), (B,) int64."""
        lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
        u = (sigma.double().log().cpu() - lo) / (hi - lo) * (self.num_levels - 1)
        return u.round().clamp(0, self.num_levels - 1).long()

    def sampling_process(self) -> GaussianDiffusion:
        """The table as a discrete VP process (ᾱ_t = 1/(1+σ_t²)) whose network predicts x0."""
        alphas_cumprod = 1.0 / (1.0 + self.sigmas() ** 2)
        previous = np.concatenate([[1.0], alphas_cumprod[:-1]])
        return GaussianDiffusion(1.0 - alphas_cumprod / previous, prediction="x0", variance="fixed_small")


class SigmaSampler:
    """The training noise levels of an EDM run, with the interface of the timestep samplers:
    ``sample`` returns (σ (B,) float64, weights 1 (B,)); nothing to update, no state but the settings."""

    def __init__(self, process: EDMProcess) -> None:
        self.process = process

    def sample(self, batch: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        return self.process.sample_sigma(batch, generator), torch.ones(batch)

    def update(self, t: Tensor, losses: Tensor) -> None:
        """The distribution is fixed; losses are ignored."""

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "edm-log-normal", "p_mean": self.process.p_mean, "p_std": self.process.p_std}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state != self.state_dict():
            raise UserError(f"noise-level sampler state {state!r:.120} does not match this run's {self.state_dict()}")


class EDMNetwork(nn.Module):
    """An EDM-trained network as a model of :meth:`EDMProcess.sampling_process`: ``(x_t, t) → x̂0``.

    ``t`` indexes the table (original-scale timesteps of the sampling process); ``x_t`` is the VP
    input, x_t = x / √(1 + σ_t²). Every sampler and the guidance wrappers call it like a discrete
    x0-predicting model. :meth:`denoise` is D(x; σ) at any σ.
    """

    def __init__(self, net: nn.Module, process: EDMProcess) -> None:
        super().__init__()
        self.net, self.process = net, process
        self.table: Tensor  # float32: some devices (MPS) have no float64, and σ ∈ [0.002, 80] needs none
        self.register_buffer("table", torch.from_numpy(process.sigmas()).float(), persistent=False)

    def denoise(self, x: Tensor, sigma: Tensor, **model_kwargs: Any) -> Tensor:
        return self.process.denoise(self.net, x, sigma, **model_kwargs)

    def forward(self, x_t: Tensor, t: Tensor, **model_kwargs: Any) -> Tensor:
        if t.ndim == 0:
            t = t.expand(x_t.shape[0])
        sigma = self.table.to(x_t.device)[t.long()]
        scale = (1.0 + sigma**2).sqrt().to(torch.float32).reshape(-1, 1, 1, 1)
        return self.denoise(x_t.float() * scale, sigma, **model_kwargs)
