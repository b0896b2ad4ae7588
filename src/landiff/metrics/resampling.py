"""Spread of a two-sample statistic by random half-samples.

FID and precision/recall are not means of per-image terms, and a with-replacement bootstrap
breaks both (duplicated points shrink the covariance and give zero k-NN radii). Half-sampling
without replacement avoids duplicates, and for a mean-like statistic the variance of a
half-sample estimate around the full-sample one is (1/(n/2) − 1/n)·σ² = σ²/n: the sampling
variance of the full-sample estimate (half-sampling, McCarthy 1969). The std of the half-sample
values is therefore reported as the spread of the full-set value, which stays the point estimate
(half-sample values themselves are biased: FID upwards, precision/recall upwards).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from landiff.metrics.records import Estimate


def half_sample_spread(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    a: np.ndarray,
    b: np.ndarray,
    *,
    repeats: int,
    seed: int,
    full_value: float,
) -> Estimate:
    """``full_value`` with the std of ``statistic`` over ``repeats`` random halves of both sets.

    Args:
        statistic: (features_a, features_b) → float.
        a: (N, D) features; b: (M, D) features.
        repeats: number of half-samples; below 2 no spread is computed (std NaN).
        seed: seed of the half-sample draws (stream ``(seed, r)`` for repeat r).
        full_value: the statistic on the full sets.
    """
    if repeats < 2:
        return Estimate(value=full_value, std=float("nan"), repeats=1, spread="none (1 repeat)")
    values = []
    for r in range(repeats):
        rng = np.random.default_rng([seed, r])
        half_a = a[rng.permutation(len(a))[: len(a) // 2]]
        half_b = b[rng.permutation(len(b))[: len(b) // 2]]
        values.append(statistic(half_a, half_b))
    return Estimate(value=full_value, std=float(np.std(values, ddof=1)), repeats=repeats,
                    spread=f"std over {repeats} random half-samples (≈ s.e. of the full-set value)")
