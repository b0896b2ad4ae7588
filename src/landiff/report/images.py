"""Image grids for the report: same count, layout and tile size for every set, nearest-neighbour upscaled.

Grids are built with numpy and Pillow only (no matplotlib), so 32 px images keep hard pixel edges:
each image is resized with ``Image.NEAREST`` to a common tile of at least :data:`MIN_TILE` pixels,
which for an integer ratio is exact pixel replication.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from landiff.grid import make_grid, png_bytes

MIN_TILE = 96  # px: a 32 px image is shown at 3×, a 64 px image at 2×
MAX_GRID_IMAGES = 36  # 6 × 6 per set keeps three grids side by side readable


def grid_count(sets: list[np.ndarray], limit: int = MAX_GRID_IMAGES) -> int:
    """The largest square number of images every set can show, at most ``limit`` (full rows)."""
    available = max(1, min([limit] + [len(images) for images in sets]))
    return math.isqrt(available) ** 2


def tile_size(sets: list[np.ndarray]) -> tuple[int, int]:
    """(height, width) of one tile: the largest image among ``sets`` times the smallest integer
    factor that reaches :data:`MIN_TILE` pixels on its longer side."""
    height = max(images.shape[1] for images in sets)
    width = max(images.shape[2] for images in sets)
    factor = max(1, math.ceil(MIN_TILE / max(height, width)))
    return height * factor, width * factor


def upscale(images: np.ndarray, tile: tuple[int, int]) -> np.ndarray:
    """(N, H, W, 3) uint8 → (N, tile_h, tile_w, 3) uint8 by nearest-neighbour resampling."""
    height, width = tile
    if images.shape[1:3] == (height, width):
        return images
    return np.stack([np.asarray(Image.fromarray(img).resize((width, height), Image.Resampling.NEAREST)) for img in images])


def grid_png(images: np.ndarray, count: int, tile: tuple[int, int]) -> bytes:
    """The first ``count`` images as a square-ish grid of ``tile``-sized cells, PNG-encoded."""
    chosen = upscale(images[:count], tile)
    columns = max(1, math.ceil(math.sqrt(count)))
    return png_bytes(make_grid(chosen, columns=columns, pad=2))
