"""Comparing two measured values: which is better, by how much, and whether the gap exceeds the noise.

Two values count as different only when their gap exceeds the noise: the combined spread
√(σ₁² + σ₂²) of the two estimates, or the spread of the real-vs-real noise floor if that is larger.
Otherwise the sentence says "within noise". Relative differences are taken against the worse value
("31 vs 50: 38% lower").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from landiff.report.formatting import HIGHER_IS_BETTER, metric_or_none, metric_title, plus_minus
from landiff.report.records import Estimate, Run


@dataclass(frozen=True)
class Difference:
    """``better`` vs ``worse`` on one metric; ``noise`` is None when no spread was measured."""

    metric: str
    better: Run
    worse: Run
    better_value: Estimate
    worse_value: Estimate
    delta: float
    relative: float | None
    noise: float | None

    @property
    def within_noise(self) -> bool | None:
        return None if self.noise is None else self.delta <= self.noise


def who(run: Run) -> str:
    """``the diffusion run "a"`` (the family named first, so sentences say which family)."""
    family = {"diffusion": "diffusion", "gan": "GAN"}.get(run.family or "", "unknown-family")
    return f'the {family} run "{run.label}"'


def noise_floor(runs: list[Run], metric: str) -> Estimate | None:
    """The first real-vs-real noise floor measured for ``metric`` among the runs."""
    for run in runs:
        floor = metric_or_none(run.summary.noise_floor.get(metric)) if run.summary else None
        if floor is not None:
            return floor
    return None


def difference(metric: str, a: tuple[Run, Estimate], b: tuple[Run, Estimate], floor: Estimate | None) -> Difference:
    """Orders the pair by the metric's direction and measures the gap against the noise."""
    higher = metric in HIGHER_IS_BETTER
    (better, bv), (worse, wv) = (a, b) if (a[1].value >= b[1].value) == higher else (b, a)
    delta = abs(bv.value - wv.value)
    noise = None
    if bv.std is not None and wv.std is not None:
        noise = math.hypot(bv.std, wv.std)
        if floor is not None and floor.std is not None:
            noise = max(noise, floor.std)
    relative = delta / abs(wv.value) if wv.value != 0 else None
    return Difference(metric, better, worse, bv, wv, delta, relative, noise)


def describe(diff: Difference) -> str:
    """One sentence: who is better on which metric, by how much, and whether that exceeds noise."""
    title = metric_title(diff.metric)
    direction = "higher" if diff.metric in HIGHER_IS_BETTER else "lower"
    values = f"{plus_minus(diff.better_value.value, diff.better_value.std)} vs " \
             f"{plus_minus(diff.worse_value.value, diff.worse_value.std)}"
    if diff.relative is not None:
        values += f", {100 * diff.relative:.3g}% {direction}"
    if diff.noise is None:  # the same test as ``diff.within_noise is None``, one mypy can narrow
        return (f"{title}: {who(diff.better)} is better than {who(diff.worse)} ({values}); no spread was "
                f"measured, so it is unknown whether the difference {diff.delta:.3g} exceeds noise.")
    if diff.within_noise:
        return (f"{title}: {who(diff.better)} is nominally better than {who(diff.worse)} ({values}), but the "
                f"difference {diff.delta:.3g} is within noise (combined spread {diff.noise:.2g}).")
    times = f"{diff.delta / diff.noise:.3g}× " if diff.noise > 0 else "above "
    return (f"{title}: {who(diff.better)} is better than {who(diff.worse)} ({values}); the difference "
            f"{diff.delta:.3g} is {times}the combined spread {diff.noise:.2g}.")
