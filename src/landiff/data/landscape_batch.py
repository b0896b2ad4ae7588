"""The per-chunk view of a few scenes that the landscape painters share."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from landiff.data.landscape_params import LandscapeParams, SceneNoise

F32 = np.float32


class SceneBatch:
    """Parameters and noise of a chunk of images as broadcastable float32 arrays.

    Attributes:
        n, h, w: number of images, height and width in pixels.
        ys: row centres as fractions of the height, (H,).
        xs: column centres as fractions of the width, (W,).
        horizon_row: integer row of each image's horizon, (N,).
        horizon: the horizon snapped to that row's top edge, (N, 1, 1).
    """

    def __init__(self, params: Sequence[LandscapeParams], noise: Sequence[SceneNoise], height: int, width: int):
        self.p, self.noise = params, noise
        self.n, self.h, self.w = len(params), height, width
        self.ys = ((np.arange(height) + 0.5) / height).astype(F32)
        self.xs = ((np.arange(width) + 0.5) / width).astype(F32)
        self.horizon_row = np.array([round(p.horizon * height) for p in params])
        self.horizon = (self.horizon_row / height).astype(F32)[:, None, None]

    def scalar(self, get: Callable[[LandscapeParams], float]) -> np.ndarray:
        """(N, 1, 1) float32 of one scalar parameter."""
        return np.array([get(p) for p in self.p], F32)[:, None, None]

    def rgb(self, get: Callable[[LandscapeParams], tuple[float, float, float]]) -> np.ndarray:
        """(N, 3, 1, 1) float32 of one colour parameter."""
        return np.array([get(p) for p in self.p], F32)[:, :, None, None]

    def stack(self, get: Callable[[SceneNoise], np.ndarray]) -> np.ndarray:
        """Stacks one noise lattice of every image, (N, ...)."""
        return np.stack([get(z) for z in self.noise])
