"""The Gaussian diffusion process of DDPM / Improved DDPM: pure maths over float64 tables, no network.

Equation numbers: "DDPM" is Ho et al. 2020 (arXiv 2006.11239), "IDDPM" is Nichol & Dhariwal 2021
(arXiv 2102.09672). Timesteps ``t`` index this object's own schedule; the network is always called
with ``timestep_map[t]``, the timestep on the scale of the process it was trained on (identity unless
this object came from :meth:`GaussianDiffusion.respace`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from landiff.diffusion.likelihood import discretized_gaussian_log_likelihood, mean_flat, normal_kl
from landiff.diffusion.respace import respace_betas
from landiff.errors import UserError

Prediction = Literal["eps", "x0", "v", "mean"]
VarianceType = Literal["fixed_small", "fixed_large", "learned_range"]
LossType = Literal["mse", "kl", "hybrid"]
Weighting = Literal["none", "min-snr"]
ModelFn = Callable[..., Tensor]

PREDICTIONS: tuple[str, ...] = ("eps", "x0", "v", "mean")
VARIANCES: tuple[str, ...] = ("fixed_small", "fixed_large", "learned_range")
LOSSES: tuple[str, ...] = ("mse", "kl", "hybrid")
WEIGHTINGS: tuple[str, ...] = ("none", "min-snr")
HYBRID_LAMBDA = 0.001  # IDDPM §3.1: L_hybrid = L_simple + λ L_vlb with λ = 0.001 on the full T-term bound.


@dataclass
class MeanVariance:
    """p(x_{t−1} | x_t) = N(mean, variance) and the network's estimates; all shaped like x_t."""

    mean: Tensor
    variance: Tensor
    log_variance: Tensor
    pred_x0: Tensor
    pred_eps: Tensor


@dataclass
class TrainingLosses:
    """Unweighted per-example terms, each of shape (B,).

    Attributes:
        loss: the objective chosen by ``loss`` (importance weights are applied by the caller).
        mse: mean squared error of the predicted target over pixels (None for ``loss="kl"``).
        vb: L_t in bits/dim (unscaled; t = 0 is the decoder NLL); None for a process without a
            likelihood bound (the EDM formulation, :mod:`landiff.diffusion.edm`).
    """

    loss: Tensor
    mse: Tensor | None
    vb: Tensor | None


@dataclass
class NLLResult:
    """The full variational bound per example, in bits/dim.

    Attributes:
        total_bpd: (B,) sum of all T terms plus the prior term.
        prior_bpd: (B,) KL(q(x_T | x0) ‖ N(0, I)).
        vb: (B, T) L_t for t = 0..T−1.
        mse: (B, T) mean squared error of the implied ε at each t.
    """

    total_bpd: Tensor
    prior_bpd: Tensor
    vb: Tensor
    mse: Tensor


class GaussianDiffusion:
    """Forward process q, reverse process p_θ and the Improved-DDPM losses over one β schedule.

    Args:
        betas: (T,) forward variances, e.g. from :func:`landiff.diffusion.beta_schedule`.
        prediction: what the network outputs: ``eps`` (DDPM), ``x0``, ``v`` or ``mean`` (μ̃ directly).
        variance: ``fixed_small`` (β̃_t), ``fixed_large`` (β_t) or ``learned_range`` (IDDPM eq. 15).
        loss: ``mse`` (L_simple), ``kl`` (T·L_t) or ``hybrid`` (L_simple + λ·T·L_t, stop-grad mean).
        timestep_map: (T,) original timestep of each step; None means the identity.
        weighting: ``none`` (L_simple) or ``min-snr``: the MSE term at t weighted by min-SNR-γ
            (Hang et al. 2023, arXiv 2303.09556), which is min(SNR_t, γ) on the x0 error; for an
            ε target that is min(SNR_t, γ)/SNR_t and for a v target min(SNR_t, γ)/(SNR_t + 1),
            with SNR_t = ᾱ_t / (1 − ᾱ_t). The bound term of ``hybrid`` is not weighted.
        snr_gamma: γ of ``min-snr`` (5 in the paper).
    """

    def __init__(
        self,
        betas: np.ndarray | Sequence[float],
        prediction: Prediction = "eps",
        variance: VarianceType = "fixed_small",
        loss: LossType = "mse",
        timestep_map: np.ndarray | Sequence[int] | None = None,
        weighting: Weighting = "none",
        snr_gamma: float = 5.0,
    ) -> None:
        _check_choice("prediction", prediction, PREDICTIONS)
        _check_choice("variance", variance, VARIANCES)
        _check_choice("loss", loss, LOSSES)
        _check_choice("weighting", weighting, WEIGHTINGS)
        if weighting == "min-snr" and (prediction == "mean" or loss == "kl" or not snr_gamma > 0):
            raise UserError("min-SNR weighting needs an eps, x0 or v target, an MSE term (--loss mse or hybrid) "
                            f"and gamma > 0; got prediction {prediction}, loss {loss}, gamma {snr_gamma}")
        self.weighting, self.snr_gamma = weighting, float(snr_gamma)
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or len(betas) == 0 or not np.all((betas > 0) & (betas < 1)):
            raise UserError("betas must be a non-empty 1-D array of values in (0, 1)")
        self.prediction, self.variance, self.loss_type = prediction, variance, loss
        self.num_steps = len(betas)
        mapping = np.arange(self.num_steps) if timestep_map is None else np.asarray(timestep_map, dtype=np.int64)
        if mapping.shape != betas.shape:
            raise UserError("timestep_map must have one entry per beta")
        self.timestep_map = mapping
        self.tables = _make_tables(betas)
        self.tables["timestep_map"] = mapping
        self._device_tables: dict[tuple[str, str], Tensor] = {}

    # ----------------------------------------------------------------- tables
    @property
    def betas(self) -> np.ndarray:
        return self.tables["betas"]

    @property
    def alphas_cumprod(self) -> np.ndarray:
        return self.tables["alphas_cumprod"]

    def _table(self, name: str, device: torch.device) -> Tensor:
        key = (name, str(device))
        if key not in self._device_tables:
            self._device_tables[key] = torch.from_numpy(self.tables[name]).to(device)
        return self._device_tables[key]

    def extract(self, name: str, t: Tensor, like: Tensor) -> Tensor:
        """Table ``name`` at timesteps ``t`` (B,), shaped (B, 1, 1, …) to broadcast against ``like``."""
        values = self._table(name, t.device)[t]
        dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
        return values.to(dtype).reshape(-1, *([1] * (like.ndim - 1)))

    def model_timesteps(self, t: Tensor) -> Tensor:
        """The timesteps handed to the network: original-scale t for respaced processes."""
        return self._table("timestep_map", t.device)[t]

    def output_channels(self, data_channels: int) -> int:
        """Number of channels the network must output: 2C when the variance is learned."""
        return 2 * data_channels if self.variance == "learned_range" else data_channels

    # ------------------------------------------------------------ forward q
    def q_mean_variance(self, x0: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Mean, variance and log-variance of q(x_t | x0) (DDPM eq. 4)."""
        mean = self.extract("sqrt_alphas_cumprod", t, x0) * x0
        variance = self.extract("one_minus_alphas_cumprod", t, x0)
        return mean, variance.expand_as(x0), self.extract("log_one_minus_alphas_cumprod", t, x0).expand_as(x0)

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor | None = None) -> Tensor:
        """Draws x_t ~ q(x_t | x0) = √ᾱ_t x0 + √(1−ᾱ_t) ε (DDPM eq. 4); ``noise`` is ε (default N(0, I))."""
        if noise is None:
            noise = torch.randn_like(x0)
        return self.extract("sqrt_alphas_cumprod", t, x0) * x0 + self.extract("sqrt_one_minus_alphas_cumprod", t, x0) * noise

    def q_posterior(self, x0: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """q(x_{t−1} | x_t, x0) = N(μ̃, β̃) (DDPM eq. 6–7): returns (mean, variance, clipped log-variance)."""
        mean = self.extract("posterior_mean_coef1", t, x_t) * x0 + self.extract("posterior_mean_coef2", t, x_t) * x_t
        variance = self.extract("posterior_variance", t, x_t).expand_as(x_t)
        log_variance = self.extract("posterior_log_variance_clipped", t, x_t).expand_as(x_t)
        return mean, variance, log_variance

    # ------------------------------------------------- parametrisation maps
    def predict_x0_from_eps(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        return self.extract("sqrt_recip_alphas_cumprod", t, x_t) * x_t - self.extract("sqrt_recipm1_alphas_cumprod", t, x_t) * eps

    def predict_eps_from_x0(self, x_t: Tensor, t: Tensor, x0: Tensor) -> Tensor:
        scale = self.extract("sqrt_recip_alphas_cumprod", t, x_t)
        return (scale * x_t - x0) / self.extract("sqrt_recipm1_alphas_cumprod", t, x_t)

    def predict_x0_from_v(self, x_t: Tensor, t: Tensor, v: Tensor) -> Tensor:
        return self.extract("sqrt_alphas_cumprod", t, x_t) * x_t - self.extract("sqrt_one_minus_alphas_cumprod", t, x_t) * v

    def predict_x0_from_mean(self, x_t: Tensor, t: Tensor, mean: Tensor) -> Tensor:
        """Inverts μ̃ = coef1·x0 + coef2·x_t for x0."""
        return (mean - self.extract("posterior_mean_coef2", t, x_t) * x_t) / self.extract("posterior_mean_coef1", t, x_t)

    def v_target(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """v = √ᾱ_t ε − √(1−ᾱ_t) x0 (Salimans & Ho 2022)."""
        return self.extract("sqrt_alphas_cumprod", t, x0) * noise - self.extract("sqrt_one_minus_alphas_cumprod", t, x0) * x0

    # ------------------------------------------------------------ reverse p
    def split_output(self, output: Tensor, x_t: Tensor) -> tuple[Tensor, Tensor | None]:
        """Splits the network output into (prediction, variance values v ∈ [−1, 1] or None)."""
        channels = x_t.shape[1]
        if self.variance == "learned_range":
            if output.shape[1] != 2 * channels:
                raise ValueError(f"learned variance needs {2 * channels} output channels, got {output.shape[1]}")
            return output[:, :channels], output[:, channels:]
        if output.shape[1] != channels:
            raise ValueError(f"expected {channels} output channels, got {output.shape[1]}")
        return output, None

    def _variance(self, t: Tensor, x_t: Tensor, var_values: Tensor | None) -> tuple[Tensor, Tensor]:
        if self.variance == "fixed_small":
            log_variance = self.extract("posterior_log_variance_clipped", t, x_t).expand_as(x_t)
        elif self.variance == "fixed_large":
            log_variance = self.extract("log_betas_large", t, x_t).expand_as(x_t)
        else:  # IDDPM eq. 15: interpolate log β̃_t (clipped) and log β_t.
            assert var_values is not None
            frac = (var_values + 1) / 2
            max_log = self.extract("log_betas", t, x_t)
            min_log = self.extract("posterior_log_variance_clipped", t, x_t)
            log_variance = frac * max_log + (1 - frac) * min_log
        return torch.exp(log_variance), log_variance

    def mean_variance_from_output(self, output: Tensor, x_t: Tensor, t: Tensor, clip_denoised: bool = True) -> MeanVariance:
        """p(x_{t−1} | x_t) given an already-computed network output."""
        pred, var_values = self.split_output(output, x_t)
        variance, log_variance = self._variance(t, x_t, var_values)
        if self.prediction == "eps":
            pred_x0 = self.predict_x0_from_eps(x_t, t, pred)
        elif self.prediction == "x0":
            pred_x0 = pred
        elif self.prediction == "v":
            pred_x0 = self.predict_x0_from_v(x_t, t, pred)
        else:
            pred_x0 = self.predict_x0_from_mean(x_t, t, pred)
        if clip_denoised:
            pred_x0 = pred_x0.clamp(-1, 1)
        if self.prediction == "mean":
            mean = pred  # DDPM's μ-parametrisation: the network output is the mean itself.
        else:
            mean, _, _ = self.q_posterior(pred_x0, x_t, t)
        pred_eps = self.predict_eps_from_x0(x_t, t, pred_x0)
        return MeanVariance(mean=mean, variance=variance, log_variance=log_variance, pred_x0=pred_x0, pred_eps=pred_eps)

    def p_mean_variance(
        self, model: ModelFn, x_t: Tensor, t: Tensor, clip_denoised: bool = True, model_kwargs: dict[str, Any] | None = None
    ) -> MeanVariance:
        """Runs the network and returns p(x_{t−1} | x_t) (DDPM eq. 1, 11; IDDPM eq. 15)."""
        output = model(x_t, self.model_timesteps(t), **(model_kwargs or {}))
        return self.mean_variance_from_output(output, x_t, t, clip_denoised)

    # --------------------------------------------------------------- losses
    def vb_terms_bpd(self, output: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, clip_denoised: bool = False) -> Tensor:
        """L_t in bits/dim, (B,): KL(q(x_{t−1}|x_t,x0) ‖ p(x_{t−1}|x_t)) for t > 0, decoder NLL at t = 0."""
        true_mean, _, true_log_variance = self.q_posterior(x0, x_t, t)
        p = self.mean_variance_from_output(output, x_t, t, clip_denoised)
        kl = mean_flat(normal_kl(true_mean, true_log_variance, p.mean, p.log_variance)) / math.log(2.0)
        decoder_nll = -mean_flat(discretized_gaussian_log_likelihood(x0, p.mean, 0.5 * p.log_variance)) / math.log(2.0)
        return torch.where(t == 0, decoder_nll, kl)

    def training_losses(
        self, model: ModelFn, x0: Tensor, t: Tensor, noise: Tensor | None = None, model_kwargs: dict[str, Any] | None = None
    ) -> TrainingLosses:
        """Per-example training terms at timesteps ``t`` (B,) for data ``x0`` (B, C, H, W) in [−1, 1]."""
        if noise is None:
            noise = torch.randn_like(x0)
        x_t = self.q_sample(x0, t, noise)
        output = model(x_t, self.model_timesteps(t), **(model_kwargs or {}))
        pred, var_values = self.split_output(output, x_t)
        if self.loss_type == "kl":
            vb = self.vb_terms_bpd(output, x0, x_t, t)
            return TrainingLosses(loss=vb * self.num_steps, mse=None, vb=vb)
        mse = mean_flat((self._mse_target(x0, x_t, t, noise) - pred).square())
        weighted = mse if self.weighting == "none" else self.mse_weights(t).to(mse) * mse
        # The VLB term sees the mean through stop-gradient so it trains only the variance (IDDPM §3.1).
        frozen = pred.detach() if var_values is None else torch.cat([pred.detach(), var_values], dim=1)
        if self.loss_type == "hybrid":
            vb = self.vb_terms_bpd(frozen, x0, x_t, t)
            return TrainingLosses(loss=weighted + HYBRID_LAMBDA * self.num_steps * vb, mse=mse, vb=vb)
        with torch.no_grad():  # diagnostic only for L_simple
            vb = self.vb_terms_bpd(frozen.detach(), x0, x_t, t)
        return TrainingLosses(loss=weighted, mse=mse, vb=vb)

    def mse_weights(self, t: Tensor) -> Tensor:
        """The weight of the MSE term at timesteps ``t`` (B,), float64 on t's device: 1, or min-SNR-γ
        for this target (a table built once, so the training step neither allocates nor syncs)."""
        if "mse_weight" not in self.tables:
            snr = self.alphas_cumprod / (1.0 - self.alphas_cumprod)
            clipped = np.minimum(snr, self.snr_gamma)
            self.tables["mse_weight"] = (np.ones_like(snr) if self.weighting == "none" else
                                         {"eps": clipped / snr, "x0": clipped, "v": clipped / (snr + 1.0)}[self.prediction])
        return self._table("mse_weight", t.device)[t]

    def _mse_target(self, x0: Tensor, x_t: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        if self.prediction == "eps":
            return noise
        if self.prediction == "x0":
            return x0
        if self.prediction == "v":
            return self.v_target(x0, t, noise)
        return self.q_posterior(x0, x_t, t)[0]

    def prior_bpd(self, x0: Tensor) -> Tensor:
        """KL(q(x_T | x0) ‖ N(0, I)) in bits/dim, (B,); near zero for a well-chosen schedule."""
        t = torch.full((x0.shape[0],), self.num_steps - 1, dtype=torch.long, device=x0.device)
        mean, _, log_variance = self.q_mean_variance(x0, t)
        zeros = torch.zeros_like(mean)
        return mean_flat(normal_kl(mean, log_variance, zeros, zeros)) / math.log(2.0)

    @torch.no_grad()
    def nll(
        self,
        model: ModelFn,
        x0: Tensor,
        clip_denoised: bool = True,
        model_kwargs: dict[str, Any] | None = None,
        generator: torch.Generator | None = None,
        callback: Callable[[int], None] | None = None,
    ) -> NLLResult:
        """The full T-term variational bound plus the prior term, in bits/dim (IDDPM §2, eq. 4–6).

        Args:
            model: ``model(x_t, t, **model_kwargs)``.
            x0: (B, C, H, W) data in [−1, 1] quantised to 256 levels.
            clip_denoised: clamp the predicted x0 to [−1, 1] before forming the mean.
            generator: source of the forward-process noise (seed it for reproducible bounds).
            callback: called with t after each term.
        """
        vb, mse = [], []
        for step in reversed(range(self.num_steps)):
            t = torch.full((x0.shape[0],), step, dtype=torch.long, device=x0.device)
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
            x_t = self.q_sample(x0, t, noise)
            output = model(x_t, self.model_timesteps(t), **(model_kwargs or {}))
            vb.append(self.vb_terms_bpd(output, x0, x_t, t, clip_denoised))
            p = self.mean_variance_from_output(output, x_t, t, clip_denoised)
            mse.append(mean_flat((p.pred_eps - noise).square()))
            if callback is not None:
                callback(step)
        vb_terms = torch.stack(vb[::-1], dim=1)
        prior = self.prior_bpd(x0)
        return NLLResult(total_bpd=vb_terms.sum(dim=1) + prior, prior_bpd=prior, vb=vb_terms, mse=torch.stack(mse[::-1], dim=1))

    # ------------------------------------------------------------ respacing
    def respace(self, use_timesteps: Sequence[int]) -> GaussianDiffusion:
        """The process that visits only ``use_timesteps`` (indices of this process), same ᾱ there.

        The network still receives original-scale timesteps; learned variances interpolate
        between the respaced β and β̃ (IDDPM §4).
        """
        betas, steps = respace_betas(self.alphas_cumprod, use_timesteps)
        return GaussianDiffusion(betas, self.prediction, self.variance, self.loss_type, timestep_map=self.timestep_map[steps],
                                 weighting=self.weighting, snr_gamma=self.snr_gamma)


def _check_choice(option: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"unknown {option} {value!r}; choose one of: {', '.join(allowed)} (--{option})")


def _make_tables(betas: np.ndarray) -> dict[str, np.ndarray]:
    """All float64 tables of DDPM eq. 4–7 and IDDPM eq. 15 for one schedule."""
    alphas = 1.0 - betas
    alphas_cumprod = np.cumprod(alphas)
    alphas_cumprod_prev = np.concatenate([[1.0], alphas_cumprod[:-1]])
    posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
    # β̃_0 = 0, so its log is clipped by using β̃_1 at t = 0 (the decoder's variance).
    clipped = np.concatenate([posterior_variance[1:2], posterior_variance[1:]]) if len(betas) > 1 else betas
    large = np.concatenate([posterior_variance[1:2], betas[1:]]) if len(betas) > 1 else betas
    return {
        "betas": betas,
        "log_betas": np.log(betas),
        "log_betas_large": np.log(large),
        "alphas_cumprod": alphas_cumprod,
        "alphas_cumprod_prev": alphas_cumprod_prev,
        "sqrt_alphas_cumprod": np.sqrt(alphas_cumprod),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - alphas_cumprod),
        "one_minus_alphas_cumprod": 1.0 - alphas_cumprod,
        "log_one_minus_alphas_cumprod": np.log(1.0 - alphas_cumprod),
        "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / alphas_cumprod),
        "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / alphas_cumprod - 1.0),
        "posterior_variance": posterior_variance,
        "posterior_log_variance_clipped": np.log(clipped),
        "posterior_mean_coef1": betas * np.sqrt(alphas_cumprod_prev) / (1.0 - alphas_cumprod),
        "posterior_mean_coef2": (1.0 - alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - alphas_cumprod),
    }
