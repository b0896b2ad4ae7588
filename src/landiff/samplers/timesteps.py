"""Which original timesteps a sampler visits, and the plumbing every sampler loop shares.

Spacings (all return K distinct original timesteps in [0, T), in descending order):

- ``uniform``: K steps spread evenly over [0, T−1], both ends kept; the same steps as Improved
  DDPM's respacing ``space_timesteps(T, K)`` (the default of the ancestral sampler).
- ``trailing``: t_i = round(T − i·T/K) − 1, so the first step is T−1 and the last is ≈ T/K − 1
  (Lin et al. 2023, "Common diffusion noise schedules and sample steps are flawed", Table 2).
- ``quadratic``: t_i = (T−1)·(i/(K−1))², dense near t = 0 (DDIM appendix D.2 used a quadratic
  grid for CIFAR-10).
- ``logsnr``: uniform in λ = log(ᾱ/(1−ᾱ)) between λ(T−1) and λ(0), each mapped to the nearest
  discrete step (Lu et al. 2022, DPM-Solver; its authors recommend it for low-resolution images
  such as CIFAR-10 and time-uniform steps for high resolution). Caveat: the cosine schedule clips
  its last β to 0.999, so λ(T−1) ≈ −19.8 lies far below λ(T−2) ≈ −12.9 and the first few of K
  steps land on T−1, T−2, … (7 of 20 at T = 1000).
- ``karras``: the noise levels of EDM (Karras et al. 2022, eq. 5), σ_i = (σ_max^{1/ρ} + i/(K−1)
  (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, each mapped to the nearest discrete step in log σ
  (σ_t = √((1−ᾱ_t)/ᾱ_t)); ρ = 7 by default, EDM's choice, which spends more steps at low noise.
  σ_max and σ_min are EDM's 80 and 0.002 (Table 1) clamped to the process's own σ_{T−1} and σ_0:
  a cosine schedule's clipped last β puts σ_{T−1} near 10⁴, which would waste steps at noise
  levels where the network's output no longer matters.

Where rounding makes steps collide, they are nudged apart (descending by at least 1), so the
result always has exactly K distinct steps. K = 1 gives ``[T−1]`` for every spacing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import numpy as np
from torch import Tensor

from landiff.diffusion import GaussianDiffusion, space_timesteps
from landiff.errors import UserError
from landiff.progress import Progress

Spacing = Literal["uniform", "trailing", "quadratic", "logsnr", "karras"]
SPACINGS: tuple[str, ...] = ("uniform", "trailing", "quadratic", "logsnr", "karras")
KARRAS_RHO = 7.0  # EDM §3, eq. 5
KARRAS_SIGMA_MAX, KARRAS_SIGMA_MIN = 80.0, 0.002  # EDM Table 1

StepCallback = Callable[[int, Tensor, Tensor], None]
"""``callback(i, x_t, pred_x0)``: i is the position in the descending timesteps (0 = noisiest),
x_t the sample entering that step and pred_x0 the model's (clipped if asked) estimate of x0."""


def sampling_timesteps(
    num_steps: int, count: int, spacing: Spacing, alphas_cumprod: np.ndarray | None = None, rho: float = KARRAS_RHO
) -> list[int]:
    """K original timesteps to sample at, descending; see the module docstring for each spacing.

    Args:
        num_steps: T of the trained process.
        count: K, the number of sampling steps (network evaluations), 1 ≤ K ≤ T.
        spacing: ``uniform``, ``trailing``, ``quadratic`` or ``logsnr``.
        alphas_cumprod: (T,) ᾱ of the trained process; needed by ``logsnr`` and ``karras``.
        rho: ρ of the ``karras`` spacing (> 0).

    Returns:
        K distinct ints in [0, T), descending; the first is the largest kept step.
    """
    if spacing not in SPACINGS:
        raise UserError(f"unknown timestep spacing {spacing!r}; choose one of: {', '.join(SPACINGS)} (--spacing)")
    if not 1 <= count <= num_steps:
        raise UserError(f"cannot sample with {count} steps from a {num_steps}-step process; use 1..{num_steps} (--steps)")
    if count == 1:
        return [num_steps - 1]
    if spacing == "uniform":
        return sorted(space_timesteps(num_steps, count), reverse=True)
    if spacing == "trailing":
        steps = np.round(num_steps - np.arange(count) * (num_steps / count)).astype(np.int64) - 1
    elif spacing == "quadratic":
        fractions = np.linspace(1.0, 0.0, count) ** 2
        steps = np.round(fractions * (num_steps - 1)).astype(np.int64)
    elif spacing == "logsnr":
        steps = _logsnr_steps(num_steps, count, alphas_cumprod)
    else:
        steps = _karras_steps(num_steps, count, alphas_cumprod, rho)
    return _distinct_descending(steps, num_steps)


def _logsnr_steps(num_steps: int, count: int, alphas_cumprod: np.ndarray | None) -> np.ndarray:
    if alphas_cumprod is None or len(alphas_cumprod) != num_steps:
        raise ValueError("the logsnr spacing needs the (T,) alphas_cumprod of the trained process")
    abar = np.asarray(alphas_cumprod, dtype=np.float64)
    lam = np.log(abar) - np.log1p(-abar)  # λ_t = log(ᾱ/(1−ᾱ)), decreasing in t
    targets = np.linspace(lam[-1], lam[0], count)  # from the noisiest step to the cleanest
    return np.abs(lam[None, :] - targets[:, None]).argmin(axis=1)


def _karras_steps(num_steps: int, count: int, alphas_cumprod: np.ndarray | None, rho: float) -> np.ndarray:
    if alphas_cumprod is None or len(alphas_cumprod) != num_steps:
        raise ValueError("the karras spacing needs the (T,) alphas_cumprod of the trained process")
    if not (np.isfinite(rho) and rho > 0):
        raise UserError(f"the karras spacing needs rho > 0 (EDM uses 7), got {rho} (--rho)")
    abar = np.asarray(alphas_cumprod, dtype=np.float64)
    log_sigma = 0.5 * (np.log1p(-abar) - np.log(abar))  # log σ_t, increasing in t
    ramp = np.linspace(0.0, 1.0, count)
    high = min(log_sigma[-1], np.log(KARRAS_SIGMA_MAX))
    low = min(max(log_sigma[0], np.log(KARRAS_SIGMA_MIN)), high)
    top, bottom = np.exp(high / rho), np.exp(low / rho)
    targets = rho * np.log(top + ramp * (bottom - top))  # log σ_i, from σ_max down to σ_min
    return np.abs(log_sigma[None, :] - targets[:, None]).argmin(axis=1)


def _distinct_descending(steps: np.ndarray, num_steps: int) -> list[int]:
    """Makes a descending (possibly tied) sequence strictly descending within [0, T−1]."""
    out = [int(min(max(s, 0), num_steps - 1)) for s in steps]
    for k in range(1, len(out)):  # push ties down ...
        out[k] = min(out[k], out[k - 1] - 1)
    out[-1] = max(out[-1], 0)
    for k in range(len(out) - 2, -1, -1):  # ... and anything pushed below 0 back up
        out[k] = max(out[k], out[k + 1] + 1)
    return out


def check_timesteps(timesteps: Sequence[int], num_steps: int) -> list[int]:
    """Validates an explicit list of original timesteps and returns it sorted descending."""
    steps = [int(t) for t in timesteps]
    if not steps:
        raise UserError("no sampling timesteps given; use at least one step (--steps)")
    if len(set(steps)) != len(steps):
        raise UserError(f"sampling timesteps must be distinct, got {steps}; remove the repeated ones")
    if min(steps) < 0 or max(steps) >= num_steps:
        raise UserError(
            f"sampling timesteps must lie in 0..{num_steps - 1} for this {num_steps}-step model, "
            f"got {min(steps)}..{max(steps)}"
        )
    return sorted(steps, reverse=True)


def respaced(diffusion: GaussianDiffusion, timesteps: Sequence[int]) -> GaussianDiffusion:
    """The process over ``timesteps`` only (Improved DDPM §4); index i is the i-th smallest step.

    The network is still called with original-scale t (``timestep_map``). A ``mean``-predicting
    network's output is the full process's one-step mean, which this process cannot reinterpret:
    the ancestral sampler feeds it that network's x̂0 instead (:mod:`landiff.samplers.ddpm`).
    """
    return diffusion.respace(check_timesteps(timesteps, diffusion.num_steps))


def walk_steps(count: int, progress: bool, label: str) -> Iterator[int]:
    """Yields 0..count−1; with ``progress``, a live ``label i/count`` line on an interactive stderr
    (nothing at all when stderr is a file or pipe: sampling logs stay clean)."""
    bar = Progress(count, label, unit="step") if progress else None
    try:
        for i in range(count):
            if bar is not None:
                bar.update(i + 1)  # before the step: a sampler may return from inside its last step
            yield i
    finally:
        if bar is not None:
            bar.close()
