"""How different are two pictures: per-pixel RMSE, a perceptual-style distance, and the diversity of a set.

All distances take uint8 images (N, H, W, 3) and return one value per pair, in intensity units
(pixels scaled to [0, 1]), so they read the same at any resolution.

* :func:`rmse`: root mean squared difference over all pixels and channels.
* :func:`perceptual_distance`: the images are area-downsampled to 16 × 16 px, split into a
  Laplacian pyramid with a 2 × 2 box filter (bands at 16 and 8 px, low-pass at 4 px) and the RMS
  difference of each level is averaged over levels. Downsampling removes what a viewer does not notice (pixel noise, a
  one-pixel shift, fine texture); equal weight per level makes layout and colour (coarse levels)
  count as much as edges. The idea is the Laplacian-pyramid distance of Bojanowski et al. 2018
  ("Optimizing the Latent Space of Generative Networks", arXiv 1707.05776, §3.1), with L2 per level.
* :func:`distinct_pairs` and :func:`diversity`: the mean distance between different images of a
  set, used by the study's collapse criterion (``landiff.workflows.study``) and the within-class
  diversity of :mod:`landiff.metrics.class_metrics`.
"""

from __future__ import annotations

import numpy as np

from landiff.errors import UserError
from landiff.grid import unit_float
from landiff.metrics.memorization import area_downsample

PERCEPTUAL_SIZE = 16  # px: the distance looks at images no finer than this
PERCEPTUAL_LEVELS = 3  # 16 and 8 px bands, 4 px low-pass


def check_pairs(a: np.ndarray, b: np.ndarray) -> None:
    """Refuses two image arrays of different shapes (they are compared pair by pair)."""
    if a.shape != b.shape:
        raise UserError(f"image pairs need equal shapes, got {a.shape} and {b.shape}")


def rmse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pair RMSE (N,) between uint8 images ``a`` and ``b`` (N, H, W, 3), in [0, 1] units."""
    check_pairs(a, b)
    return np.sqrt(np.square(unit_float(a) - unit_float(b)).mean(axis=(1, 2, 3)))


def _pyramid(images: np.ndarray) -> list[np.ndarray]:
    """Band-pass levels at 16 and 8 px and the 4 px low-pass, box filter (block mean / repeat)."""
    x = unit_float(images)
    if max(x.shape[1:3]) > PERCEPTUAL_SIZE or x.shape[1] != x.shape[2]:
        x = area_downsample(x, PERCEPTUAL_SIZE)
    levels = []
    for _ in range(PERCEPTUAL_LEVELS - 1):
        low = area_downsample(x, x.shape[1] // 2)
        levels.append(x - low.repeat(2, axis=1).repeat(2, axis=2))
        x = low
    return levels + [x]


def perceptual_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pair Laplacian-pyramid distance (N,) on 16 px images (module docstring), in [0, 1] units."""
    check_pairs(a, b)
    levels = [np.sqrt(np.square(la - lb).mean(axis=(1, 2, 3))) for la, lb in zip(_pyramid(a), _pyramid(b), strict=True)]
    return np.mean(levels, axis=0)


def distinct_pairs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i ≠ j, one per image: a seeded permutation p paired with its rotation."""
    if n < 2:
        raise UserError(f"need at least 2 images to pair distinct ones, got {n}")
    order = np.random.default_rng([seed, 11]).permutation(n)
    return order, np.roll(order, 1)


def diversity(images: np.ndarray, seed: int = 0) -> float:
    """Mean perceptual distance between different images of a set (one partner each, seeded)."""
    i, j = distinct_pairs(len(images), seed)
    return float(perceptual_distance(images[i], images[j]).mean())
