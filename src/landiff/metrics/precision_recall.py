"""Improved precision and recall (Kynkäänniemi et al. 2019, arXiv 1904.06991, §2 eq. 1–2).

Each set's manifold is estimated as the union of balls around its feature vectors, each ball's
radius being the distance to that vector's k-th nearest neighbour in the same set (k = 3 in the
paper). Precision is the fraction of generated vectors inside the real manifold (sample quality);
recall is the fraction of real vectors inside the generated manifold (coverage / diversity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from landiff.errors import UserError
from landiff.metrics.features import FeatureExtractor
from landiff.metrics.neighbours import kth_neighbour_distance, within_any_ball
from landiff.metrics.records import Estimate
from landiff.metrics.resampling import half_sample_spread

K_NEIGHBOURS = 3


@dataclass(frozen=True)
class PrecisionRecall:
    """Precision and recall in [0, 1], each with its spread; ``k`` neighbours defined the radii."""

    precision: Estimate
    recall: Estimate
    k: int


def manifold_coverage(centres: np.ndarray, queries: np.ndarray, k: int = K_NEIGHBOURS) -> float:
    """Fraction of ``queries`` (N, D) inside the k-NN manifold of ``centres`` (M, D) (paper eq. 1–2)."""
    radii = kth_neighbour_distance(centres, k)
    return float(within_any_ball(queries, centres, radii).mean())


def precision_recall(real_features: np.ndarray, fake_features: np.ndarray, *, k: int = K_NEIGHBOURS,
                     repeats: int = 1, seed: int = 0) -> PrecisionRecall:
    """Improved precision and recall of generated features against real ones.

    Args:
        real_features: (N, D) reference features; fake_features: (M, D) generated features.
        k: neighbour rank of the ball radii (3 as in the paper); both sets need more than k
            vectors (more than 2k + 1 when ``repeats`` ≥ 2, for the half-samples).
        repeats: random half-samples for the spread (see :mod:`landiff.metrics.resampling`).
        seed: seed of the half-samples.
    """
    smallest = min(len(real_features), len(fake_features))
    need = 2 * k + 2 if repeats >= 2 else k + 1
    if smallest < need:
        raise UserError(f"precision/recall with k={k} needs at least {need} images per set, got {smallest}")

    def precision(real: np.ndarray, fake: np.ndarray) -> float:
        return manifold_coverage(real, fake, k)

    def recall(real: np.ndarray, fake: np.ndarray) -> float:
        return manifold_coverage(fake, real, k)

    kwargs = {"repeats": repeats, "seed": seed}
    return PrecisionRecall(
        precision=half_sample_spread(precision, real_features, fake_features, **kwargs,
                                     full_value=precision(real_features, fake_features)),
        recall=half_sample_spread(recall, real_features, fake_features, **kwargs,
                                  full_value=recall(real_features, fake_features)),
        k=k,
    )


def improved_precision_recall(real_images: np.ndarray, fake_images: np.ndarray, extractor: FeatureExtractor, *,
                              k: int = K_NEIGHBOURS, repeats: int = 1, seed: int = 0) -> PrecisionRecall:
    """Precision/recall between image sets (N, H, W, 3) uint8 through ``extractor``."""
    return precision_recall(extractor(real_images), extractor(fake_images), k=k, repeats=repeats, seed=seed)
