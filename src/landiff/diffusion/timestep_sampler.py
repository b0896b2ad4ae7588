"""Which timesteps to train on: uniform, Improved DDPM's loss-aware importance sampling (§3.3), or
EDM's log-normal noise-level distribution on the discrete levels.

Each returns ``(t, weights)``. For ``uniform`` and ``loss-aware`` the weights 1/(T·p_t) make the
weighted loss an unbiased estimate of the uniform-t objective. ``log-normal`` changes the objective
on purpose (weights 1): like EDM (arXiv 2206.00364 §5) it spends the training on the middle noise
levels, where the loss can still be reduced. Their state is plain JSON so a resumed run continues
exactly.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from landiff.errors import UserError

TimestepSamplerName = Literal["uniform", "loss-aware", "log-normal"]
TIMESTEP_SAMPLERS: tuple[str, ...] = ("uniform", "loss-aware", "log-normal")


class UniformSampler:
    """p_t = 1/T for every t."""

    def __init__(self, num_steps: int) -> None:
        self.num_steps = num_steps

    def probabilities(self) -> np.ndarray:
        return np.full(self.num_steps, 1.0 / self.num_steps)

    def sample(
        self, batch: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> tuple[Tensor, Tensor]:
        """Draws ``batch`` timesteps; returns (t LongTensor (B,), weights float32 (B,))."""
        t = torch.randint(0, self.num_steps, (batch,), generator=generator)
        return t.to(device), torch.ones(batch, device=device)

    def update(self, t: Tensor, losses: Tensor) -> None:
        """Uniform sampling ignores the losses."""

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "uniform", "num_steps": self.num_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_state(state, "uniform", self.num_steps)


class LossAwareSampler:
    """Importance sampling of t with p_t ∝ √E[L_t²] (IDDPM eq. 18), mixed with a little uniform.

    Keeps the last ``history`` loss values of every t; samples uniformly until each t has a full
    history (the paper's warm-up), then from the importance distribution.

    Args:
        num_steps: T.
        history: values kept per timestep (10 in the paper).
        uniform_prob: weight of the uniform component (0.001 in the paper's code).
    """

    def __init__(self, num_steps: int, history: int = 10, uniform_prob: float = 0.001) -> None:
        self.num_steps, self.history, self.uniform_prob = num_steps, history, uniform_prob
        self.losses = np.zeros((num_steps, history), dtype=np.float64)
        self.counts = np.zeros(num_steps, dtype=np.int64)

    def warmed_up(self) -> bool:
        return bool((self.counts == self.history).all())

    def probabilities(self) -> np.ndarray:
        if not self.warmed_up():
            return np.full(self.num_steps, 1.0 / self.num_steps)
        weights = np.sqrt(np.mean(self.losses**2, axis=1))
        probs = weights / weights.sum()
        return probs * (1.0 - self.uniform_prob) + self.uniform_prob / self.num_steps

    def sample(
        self, batch: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> tuple[Tensor, Tensor]:
        """Draws ``batch`` timesteps; returns (t (B,), importance weights 1/(T·p_t) (B,))."""
        probs = torch.from_numpy(self.probabilities())
        t = torch.multinomial(probs, batch, replacement=True, generator=generator)
        weights = 1.0 / (self.num_steps * probs[t])
        return t.to(device), weights.to(device=device, dtype=torch.float32)

    def update(self, t: Tensor, losses: Tensor) -> None:
        """Records per-example losses (B,) at their timesteps t (B,); gather across ranks first."""
        for step, value in zip(t.detach().cpu().tolist(), losses.detach().float().cpu().tolist(), strict=True):
            if self.counts[step] == self.history:
                self.losses[step, :-1] = self.losses[step, 1:]  # drop the oldest value
                self.losses[step, -1] = value
            else:
                self.losses[step, self.counts[step]] = value
                self.counts[step] += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": "loss-aware",
            "num_steps": self.num_steps,
            "history": self.history,
            "uniform_prob": self.uniform_prob,
            "losses": self.losses.tolist(),
            "counts": self.counts.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_state(state, "loss-aware", self.num_steps)
        self.history, self.uniform_prob = int(state["history"]), float(state["uniform_prob"])
        self.losses = np.asarray(state["losses"], dtype=np.float64).reshape(self.num_steps, self.history)
        self.counts = np.asarray(state["counts"], dtype=np.int64).reshape(self.num_steps)


class LogNormalSampler:
    """p_t = the N(p_mean, p_std²) mass of ln σ over level t's share of the log-σ axis (weights 1).

    σ_t = √((1 − ᾱ_t)/ᾱ_t); level t owns the interval of ln σ between the midpoints to its
    neighbours (the first and last reach to ∓∞), so the probabilities sum to one and follow EDM's
    training distribution ln σ ~ N(P_mean, P_std²) as closely as the discrete levels allow.
    """

    def __init__(self, alphas_cumprod: np.ndarray, p_mean: float = -1.2, p_std: float = 1.2) -> None:
        alphas_cumprod = np.asarray(alphas_cumprod, dtype=np.float64)
        self.num_steps, self.p_mean, self.p_std = len(alphas_cumprod), float(p_mean), float(p_std)
        log_sigma = 0.5 * np.log((1.0 - alphas_cumprod) / alphas_cumprod)
        if self.num_steps > 1 and not np.all(np.diff(log_sigma) > 0):
            raise UserError("--timestep-sampler log-normal needs noise levels that increase with t")
        edges = np.concatenate([[-np.inf], (log_sigma[1:] + log_sigma[:-1]) / 2, [np.inf]])
        cdf = np.array([_normal_cdf((e - self.p_mean) / self.p_std) for e in edges])
        self._probs = np.diff(cdf)

    def probabilities(self) -> np.ndarray:
        return self._probs.copy()

    def sample(
        self, batch: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> tuple[Tensor, Tensor]:
        """Draws ``batch`` timesteps; returns (t (B,), weights 1 (B,))."""
        t = torch.multinomial(torch.from_numpy(self._probs), batch, replacement=True, generator=generator)
        return t.to(device), torch.ones(batch, device=device)

    def update(self, t: Tensor, losses: Tensor) -> None:
        """The distribution is fixed; losses are ignored."""

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "log-normal", "num_steps": self.num_steps, "p_mean": self.p_mean, "p_std": self.p_std}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_state(state, "log-normal", self.num_steps)
        if (float(state.get("p_mean", math.nan)), float(state.get("p_std", math.nan))) != (self.p_mean, self.p_std):
            raise UserError(f"timestep-sampler state has p_mean {state.get('p_mean')}, p_std {state.get('p_std')}; "
                            f"this run has {self.p_mean}, {self.p_std}")


def _normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


TimestepSampler = UniformSampler | LossAwareSampler | LogNormalSampler


def make_timestep_sampler(
    name: TimestepSamplerName, num_steps: int, alphas_cumprod: np.ndarray | None = None,
    p_mean: float = -1.2, p_std: float = 1.2,
) -> TimestepSampler:
    """Builds a timestep sampler by name (``--timestep-sampler``); ``log-normal`` needs the process's ᾱ."""
    if name == "uniform":
        return UniformSampler(num_steps)
    if name == "loss-aware":
        return LossAwareSampler(num_steps)
    if name == "log-normal":
        if alphas_cumprod is None or len(alphas_cumprod) != num_steps:
            raise ValueError("the log-normal timestep sampler needs the process's alphas_cumprod (T values)")
        return LogNormalSampler(alphas_cumprod, p_mean, p_std)
    raise UserError(f"unknown timestep sampler {name!r}; choose one of: {', '.join(TIMESTEP_SAMPLERS)} (--timestep-sampler)")


def _check_state(state: dict[str, Any], kind: str, num_steps: int) -> None:
    if state.get("kind") != kind or int(state.get("num_steps", -1)) != num_steps:
        raise UserError(
            f"timestep-sampler state is for {state.get('kind')!r} with T={state.get('num_steps')}, "
            f"expected {kind!r} with T={num_steps}"
        )
