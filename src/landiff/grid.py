"""Tensors ↔ uint8 images, uint8 arrays → floats in [0, 1], and image grids written as PNG."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from landiff.errors import UserError
from landiff.runs.files import atomic_write_bytes


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) floats in [−1, 1] → (B, H, W, C) uint8, rounding to the nearest level."""
    x = ((x.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) uint8 → float32 in [−1, 1] (k/127.5 − 1, the decoder's bin centres)."""
    return images.float() / 127.5 - 1


def check_rgb_uint8(images: np.ndarray, what: str | None = None) -> None:
    """Raises a UserError (prefixed with ``what``) unless ``images`` is a (N, H, W, 3) uint8 array."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        prefix = f"{what}: " if what else ""
        raise UserError(f"{prefix}expected uint8 images (N, H, W, 3), got {images.dtype} {images.shape}")


def unit_float(images: np.ndarray, what: str | None = None) -> np.ndarray:
    """(N, H, W, 3) uint8 → the same shape in float32, [0, 1] (k / 255); anything else: see :func:`check_rgb_uint8`."""
    check_rgb_uint8(images, what)
    return images.astype(np.float32) / 255.0


def make_grid(images: np.ndarray, columns: int | None = None, pad: int = 1) -> np.ndarray:
    """(N, H, W, 3) uint8 → one (rows·(H+pad)+pad, cols·(W+pad)+pad, 3) uint8 image, white gaps."""
    count, height, width, channels = images.shape
    columns = columns or max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / columns))
    grid = np.full((rows * (height + pad) + pad, columns * (width + pad) + pad, channels), 255, dtype=np.uint8)
    for k in range(count):
        r, c = divmod(k, columns)
        top, left = pad + r * (height + pad), pad + c * (width + pad)
        grid[top : top + height, left : left + width] = images[k]
    return grid


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def save_grid(images: np.ndarray, path: Path, columns: int | None = None) -> None:
    """Writes a grid of (N, H, W, 3) uint8 images to ``path`` atomically."""
    atomic_write_bytes(Path(path), png_bytes(make_grid(images, columns)))
