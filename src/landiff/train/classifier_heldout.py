"""The noisy classifier's data: its training noise, the held-out split and the held-out accuracy.

- :class:`NoiseLevels`: ADM's classifier noise, x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε at a discrete t of a
  β schedule, with σ_t = √((1 − ᾱ_t)/ᾱ_t) (the schedule's ``sqrt_recipm1_alphas_cumprod``), what the
  classifier is conditioned on.
- :func:`holdout_split`: a seeded split of the training data's indices into training and held-out
  images (a pure function of (seed, size, count), so every rank and every resume agree); the
  trainer streams :class:`TrainSubset` only, so no held-out image is ever trained on.
- :func:`evaluate_heldout`: accuracy on the held-out images, one fixed noisy version of each: held-out
  image k gets its t from quartile k mod 4 of 0..T−1 and its ε from a generator keyed by (seed, k),
  so successive evaluations differ only by the weights. A clean classifier sees x0 at σ = 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from landiff.diffusion import GaussianDiffusion, beta_schedule
from landiff.grid import from_uint8
from landiff.runs.config import ClassifierConfig
from landiff.train.classifier_stats import quartile_range
from landiff.train.data_stream import keyed_generator
from landiff.train.distributed import Dist, gather_cat
from landiff.train.precision import Precision


@dataclass
class NoiseLevels:
    """The discrete VP process a classifier is trained on, and its noise level σ_t per timestep."""

    process: GaussianDiffusion
    sigmas: torch.Tensor  # (T,) float32, σ_t = √((1 − ᾱ_t)/ᾱ_t), increasing in t

    @classmethod
    def of(cls, config: ClassifierConfig) -> NoiseLevels | None:
        """The noise of ``config`` (None for a clean classifier, ``noise="none"``)."""
        if config.noise == "none":
            return None
        process = GaussianDiffusion(beta_schedule(config.schedule, config.num_steps))  # type: ignore[arg-type]
        return cls(process, torch.from_numpy(process.tables["sqrt_recipm1_alphas_cumprod"]).float())

    @property
    def num_steps(self) -> int:
        return self.process.num_steps

    def noisy(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_t (B, C, H, W), σ_t (B,)) for clean images ``x0``, timesteps ``t`` (B,) and Gaussian ``noise``."""
        t = t.to(x0.device)
        return self.process.q_sample(x0, t, noise), self.sigmas.to(x0.device)[t]


@dataclass(frozen=True)
class HoldoutSplit:
    """Dataset indices of the training images and of the held-out images (each sorted, disjoint)."""

    train: torch.Tensor
    heldout: torch.Tensor


def holdout_split(size: int, count: int, seed: int) -> HoldoutSplit:
    """``count`` of ``size`` images held out, chosen by a permutation keyed by (seed, size)."""
    order = torch.randperm(size, generator=keyed_generator(seed, "holdout", size))
    return HoldoutSplit(train=order[count:].sort().values, heldout=order[:count].sort().values)


class TrainSubset(Dataset):
    """The images of ``base`` at ``indices``, in that order; passes ``set_epoch`` (flips) and ``classes`` on."""

    def __init__(self, base: Dataset, indices: torch.Tensor) -> None:
        self.base, self.indices = base, indices
        self.classes: list[str] = getattr(base, "classes", [])

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.base[int(self.indices[i])]

    def set_epoch(self, epoch: int) -> None:
        set_epoch = getattr(self.base, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)


@dataclass(frozen=True)
class HeldoutResult:
    """Held-out counts per group: the four noise-level quartiles, or one group for a clean classifier."""

    correct: tuple[int, ...]
    count: tuple[int, ...]

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / max(sum(self.count), 1)

    def record(self) -> dict[str, Any]:
        """The stats.jsonl / summary fields: ``heldout_acc``, ``heldout_acc_q`` (None when clean), ``heldout_n``."""
        quartiles = [c / n if n else None for c, n in zip(self.correct, self.count, strict=True)]
        return {"heldout_acc": self.accuracy, "heldout_acc_q": quartiles if len(self.count) == 4 else None,
                "heldout_n": sum(self.count)}


def _fetch(dataset: Dataset, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (B, 3, H, W) and labels (B,) of ``dataset`` at ``indices``; with ``--flip``, flipped by epoch 0's
    rule, so every evaluation sees the same images."""
    set_epoch = getattr(dataset, "set_epoch", None)
    if set_epoch is not None:
        set_epoch(0)
    getitems = getattr(dataset, "__getitems__", None)  # the landscapes render a batch at once
    items = getitems(list(indices)) if getitems is not None else [dataset[i] for i in indices]
    return torch.stack([image for image, _ in items]), torch.tensor([label for _, label in items], dtype=torch.long)


def heldout_draws(levels: NoiseLevels, seed: int, ks: Sequence[int], shape: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """t (B,) and ε (B, *shape) of held-out images ``ks``: t uniform in quartile k mod 4, both keyed by (seed, k)."""
    ts, noises = [], []
    for k in ks:
        generator = keyed_generator(seed, "heldout", k)
        low, high = quartile_range(k % 4, levels.num_steps)
        ts.append(int(torch.randint(low, high, (1,), generator=generator)))
        noises.append(torch.randn(tuple(shape), generator=generator))
    return torch.tensor(ts, dtype=torch.long), torch.stack(noises)


@torch.no_grad()
def evaluate_heldout(model: nn.Module, dataset: Dataset, indices: torch.Tensor, levels: NoiseLevels | None, *,
                     seed: int, batch: int, device: torch.device, dist: Dist, precision: Precision) -> HeldoutResult:
    """Accuracy of ``model`` on the held-out images ``indices`` of ``dataset``; a collective under DDP.

    Rank r evaluates held-out images k ≡ r (mod world); the counts are summed over ranks, so every
    rank returns the same result, equal to one process's up to float rounding of the logits.
    """
    groups = 4 if levels is not None else 1
    tally = torch.zeros(2, groups, dtype=torch.float64)
    mine = list(range(dist.rank, len(indices), dist.world))
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(mine), batch):
            ks = mine[start:start + batch]
            images, labels = _fetch(dataset, [int(indices[k]) for k in ks])
            x = from_uint8(images).to(device)
            if levels is None:
                group, sigma = torch.zeros(len(ks), dtype=torch.long), torch.zeros(len(ks), device=device)
            else:
                t, noise = heldout_draws(levels, seed, ks, x.shape[1:])
                x, sigma = levels.noisy(x, t, noise.to(device))
                group = torch.tensor([k % 4 for k in ks], dtype=torch.long)
            with precision.autocast():
                correct = (model(x, sigma).float().argmax(dim=1).cpu() == labels).double()
            tally[0].index_add_(0, group, correct)
            tally[1].index_add_(0, group, torch.ones_like(correct))
    finally:
        model.train(was_training)
    total = gather_cat(tally.reshape(1, -1)).sum(dim=0).reshape(2, groups)
    return HeldoutResult(correct=tuple(int(v) for v in total[0]), count=tuple(int(v) for v in total[1]))
