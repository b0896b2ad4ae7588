"""Gaussian log-likelihood pieces used by the variational bound (all in nats; callers convert to bits)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def normal_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """KL(N(mean1, exp(logvar1)) ‖ N(mean2, exp(logvar2))) elementwise, in nats; inputs broadcast."""
    return 0.5 * (
        logvar2 - logvar1 - 1.0 + torch.exp(logvar1 - logvar2) + (mean1 - mean2).square() * torch.exp(-logvar2)
    )


def approx_standard_normal_cdf(x: Tensor) -> Tensor:
    """Φ(x) by the tanh approximation (Page 1977) used by DDPM/Improved DDPM's decoder.

    Kept (rather than the exact erf) so bits/dim agree with the papers' reference numbers.
    """
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def discretized_gaussian_log_likelihood(x: Tensor, means: Tensor, log_scales: Tensor) -> Tensor:
    """log p(x) of the 256-bin discretised Gaussian decoder, DDPM eq. 13, in nats.

    Args:
        x: data in [−1, 1] that came from uint8 values (k/127.5 − 1).
        means: decoder means, same shape as x.
        log_scales: log standard deviations, same shape as x.

    Returns:
        Per-element log-probabilities of the bin [x − 1/255, x + 1/255]; the outermost bins extend
        to ∓∞ so the 256 bin probabilities sum to one.
    """
    centred = x - means
    inv_std = torch.exp(-log_scales)
    cdf_upper = approx_standard_normal_cdf(inv_std * (centred + 1.0 / 255))
    cdf_lower = approx_standard_normal_cdf(inv_std * (centred - 1.0 / 255))
    log_cdf_upper = torch.log(cdf_upper.clamp(min=1e-12))
    log_one_minus_cdf_lower = torch.log((1.0 - cdf_lower).clamp(min=1e-12))
    log_bin = torch.log((cdf_upper - cdf_lower).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_upper, torch.where(x > 0.999, log_one_minus_cdf_lower, log_bin))


def mean_flat(x: Tensor) -> Tensor:
    """Mean over every dimension but the first (batch): per-example averages, i.e. "per dimension"."""
    return x.mean(dim=tuple(range(1, x.ndim)))
