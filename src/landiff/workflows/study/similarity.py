"""How different are two pictures? Per-pixel RMSE, a perceptual-style distance, and "the same picture".

The distances (:func:`~landiff.metrics.perceptual.rmse`, :func:`~landiff.metrics.perceptual.perceptual_distance`)
and the diversity of a set (:func:`~landiff.metrics.perceptual.diversity`, for the collapse
criterion) live in :mod:`landiff.metrics.perceptual`, where the class metrics share them; this
module adds what only the study needs:

* :func:`calibrate`: the "same picture" threshold, measured on the data (see its docstring), from
  real images against :func:`mildly_altered` copies of themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from landiff.metrics.perceptual import distinct_pairs, perceptual_distance, rmse

# Mild alterations a viewer would still call the same picture (calibration): brightness shift,
# contrast scale, pixel noise (all in [0, 1] units) and a one-pixel translation half of the time.
BRIGHTNESS = 0.03
CONTRAST = 0.05
NOISE_SD = 0.01


def mildly_altered(images: np.ndarray, seed: int) -> np.ndarray:
    """Copies a viewer would call the same picture: per image a brightness shift in ±0.03, a contrast
    scale in 1 ± 0.05 about the image mean, Gaussian noise of s.d. 0.01 and, with probability 1/2,
    a one-pixel shift (edge pixels repeated); requantised to uint8. Seeded: same seed, same copies."""
    rng = np.random.default_rng([seed, 7])
    x = images.astype(np.float64) / 255.0
    out = np.empty_like(x)
    for k, image in enumerate(x):
        mean = image.mean()
        image = (image - mean) * rng.uniform(1 - CONTRAST, 1 + CONTRAST) + mean + rng.uniform(-BRIGHTNESS, BRIGHTNESS)
        image = image + rng.normal(0.0, NOISE_SD, image.shape)
        if rng.random() < 0.5:
            axis, step = int(rng.integers(0, 2)), int(rng.choice([-1, 1]))
            image = _shift(image, axis, step)
        out[k] = image
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def _shift(image: np.ndarray, axis: int, step: int) -> np.ndarray:
    """Translates (H, W, C) by one pixel along ``axis``, repeating the edge row/column."""
    rolled = np.roll(image, step, axis=axis)
    edge = 0 if step > 0 else -1
    index: list[slice | int] = [slice(None)] * 3
    index[axis] = edge
    source: list[slice | int] = [slice(None)] * 3
    source[axis] = 1 if step > 0 else -2
    rolled[tuple(index)] = rolled[tuple(source)]
    return rolled


@dataclass(frozen=True)
class Calibration:
    """The "same picture" rule measured on real images.

    Attributes:
        threshold: perceptual distance below which two images count as the same picture.
        rmse_threshold: the same rule applied to RMSE (reported alongside).
        same_q95: 95th percentile of distances between an image and a mildly altered copy.
        different_q05: 5th percentile of distances between two different real images.
        same_below: share of altered copies under ``threshold`` (should be near 1).
        different_below: share of different-image pairs under ``threshold`` (should be near 0).
        separated: whether ``same_q95 < different_q05`` (otherwise the rule falls back, see rule).
        n: images used (one altered copy and one different partner each).
    """

    threshold: float
    rmse_threshold: float
    same_q95: float
    different_q05: float
    same_below: float
    different_below: float
    separated: bool
    n: int

    @property
    def rule(self) -> str:
        """The rule in words, for the report."""
        if self.separated:
            how = (
                "the geometric mean of the 95th percentile of same-picture distances"
                " and the 5th percentile of different-picture distances"
            )
        else:
            how = "the 95th percentile of same-picture distances (the two distributions overlap on this data)"
        return (f"two images are 'the same picture' when their perceptual distance is below {self.threshold:.4f}: {how}, "
                f"measured on {self.n} real images against mildly altered copies (brightness ±{BRIGHTNESS}, contrast "
                f"±{CONTRAST:.0%}, noise s.d. {NOISE_SD}, 1-px shift) and against other real images; "
                f"{self.same_below:.0%} of altered copies and {self.different_below:.0%} of different-image pairs fall below it")


def _threshold(same: np.ndarray, different: np.ndarray) -> tuple[float, float, float, bool]:
    """(threshold, q95 of same, q05 of different, separated)."""
    q95, q05 = float(np.quantile(same, 0.95)), float(np.quantile(different, 0.05))
    if q95 < q05:
        return float(np.sqrt(max(q95, 1e-12) * q05)), q95, q05, True
    return q95, q95, q05, False


def _calibration_pairs(images: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(altered copies, first and second indices of the different-image pairs)."""
    i, j = distinct_pairs(len(images), seed)
    return mildly_altered(images, seed), i, j


def calibration_distances(images: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Perceptual distances (same-picture pairs (N,), different-picture pairs (N,)) behind :func:`calibrate`."""
    altered, i, j = _calibration_pairs(images, seed)
    return perceptual_distance(images, altered), perceptual_distance(images[i], images[j])


def calibrate(images: np.ndarray, seed: int = 0) -> Calibration:
    """Measures the "same picture" threshold on real ``images`` (N ≥ 2, uint8 (N, H, W, 3)).

    Same-picture distances: each image vs its :func:`mildly_altered` copy. Different-picture
    distances: each image vs another one (:func:`distinct_pairs`). The threshold sits between
    the two: the geometric mean of q95(same) and q05(different) when q95(same) < q05(different),
    so both error rates are at most about 5 %; otherwise q95(same) (the report says so).
    """
    altered, i, j = _calibration_pairs(images, seed)
    same, different = perceptual_distance(images, altered), perceptual_distance(images[i], images[j])
    threshold, q95, q05, separated = _threshold(same, different)
    rmse_threshold = _threshold(rmse(images, altered), rmse(images[i], images[j]))[0]
    return Calibration(threshold=threshold, rmse_threshold=rmse_threshold, same_q95=q95, different_q05=q05,
                       same_below=float(np.mean(same < threshold)), different_below=float(np.mean(different < threshold)),
                       separated=separated, n=len(images))
