"""A proportion with its Wilson score interval (Wilson 1927), shared by the class metrics and the study.

The Wilson interval stays inside [0, 1] and keeps its coverage at small n and near 0 or 1, where
the normal ("Wald") interval p ± z√(p(1−p)/n) collapses to a point. For k successes of n at
z = 1.96 (95 %), with p = k/n::

    centre = (p + z²/(2n)) / (1 + z²/n)
    half   = z·√(p(1−p)/n + z²/(4n²)) / (1 + z²/n)

e.g. 3 of 4: centre 0.6275, half 0.3269 → [0.3006, 0.9544].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.96  # two-sided 95 % normal quantile


@dataclass(frozen=True)
class Proportion:
    """``k`` of ``n`` with its Wilson 95 % interval [low, high] (NaN bounds for n = 0)."""

    k: int
    n: int
    low: float
    high: float

    @property
    def share(self) -> float:
        return self.k / self.n if self.n else math.nan


def wilson(k: int, n: int, z: float = Z95) -> Proportion:
    """Wilson score interval: centre (k + z²/2)/(n + z²), half-width z√(p(1−p)/n + z²/4n²)/(1 + z²/n)."""
    if n == 0:
        return Proportion(k, n, math.nan, math.nan)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Proportion(k, n, max(0.0, centre - half), min(1.0, centre + half))
