"""Value noise for the landscape generator: random lattices resampled to pixel grids.

The random lattice values are drawn per image (so an image depends only on its own seed) and
are resolution independent; these functions only resample them, for a whole batch at once,
with element-wise arithmetic (no reductions), so an image is bit-identical whether it is
rendered alone or inside a batch.
"""

from __future__ import annotations

import functools

import numpy as np

# Lattice sizes of the 1-D octaves used for ridgelines (coarse to fine). Each octave doubles the
# frequency; the gain between octaves (the "roughness") is drawn per mountain range.
RIDGE_OCTAVES = (3, 6, 12, 24, 48)
RIDGE_LATTICE = sum(RIDGE_OCTAVES)
GROUND_TOP = 0.45  # the highest row (fraction of the height) ground can reach


def _table(pos: np.ndarray, n_lattice: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lattice indices and smooth-stepped weights for positions ``pos`` in lattice units."""
    pos = np.clip(pos, 0.0, n_lattice - 1.0)
    i0 = np.minimum(np.floor(pos).astype(np.intp), n_lattice - 2)
    f = pos - i0
    # Smoothstep (3f² − 2f³) hides the kinks of linear interpolation at lattice points.
    w = (f * f * (3.0 - 2.0 * f)).astype(np.float32)
    return i0, i0 + 1, w


@functools.lru_cache(maxsize=512)
def lerp_table(n_lattice: int, n_out: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices and weights that resample a lattice of ``n_lattice`` points to ``n_out`` cells.

    Output cell ``j`` sits at ``(j + 0.5) / n_out`` of the lattice span, moved by ``shift``
    lattice cells.

    Returns:
        ``(i0, i1, w)``: two int index arrays and a float32 weight array, each ``(n_out,)``.
    """
    pos = (np.arange(n_out, dtype=np.float64) + 0.5) / n_out * (n_lattice - 1) + shift
    return _table(pos, n_lattice)


@functools.lru_cache(maxsize=512)
def ground_table(n_lattice: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`lerp_table` for rows of a ground plane seen in perspective.

    Row ``y`` (fraction of the height, below ``GROUND_TOP``) shows ground at distance
    ``z = 1 / (v + 0.3)`` with ``v`` the row's depth below ``GROUND_TOP`` (pinhole camera), so
    texture cells shrink toward the horizon; rows above ``GROUND_TOP`` get lattice row 0.
    """
    y = (np.arange(n_out, dtype=np.float64) + 0.5) / n_out
    v = np.clip((y - GROUND_TOP) / (1.0 - GROUND_TOP), 0.0, 1.0)
    z, z_far, z_near = 1.0 / (v + 0.3), 1.0 / 0.3, 1.0 / 1.3
    return _table((z_far - z) / (z_far - z_near) * (n_lattice - 1), n_lattice)


def resample_1d(lattice: np.ndarray, n_out: int) -> np.ndarray:
    """Resamples the last axis of ``lattice`` (..., L) to (..., n_out)."""
    i0, i1, w = lerp_table(lattice.shape[-1], n_out)
    a = lattice[..., i0]
    return a + (lattice[..., i1] - a) * w


def resample_2d(
    grid: np.ndarray, rows: slice, cols: int, height: int, shift: float = 0.0, perspective: bool = False
) -> np.ndarray:
    """Resamples a batch of grids (N, gh, gw) to the pixel rows ``rows`` of an image (N, R, cols).

    Args:
        grid: lattice values, float32 (N, gh, gw).
        rows: the pixel rows wanted; the lattice spans all ``height`` rows, so the pattern
            does not depend on which rows are asked for.
        cols: output width in pixels; the lattice spans the full width.
        height: image height in pixels.
        shift: vertical offset in lattice cells (negative looks up).
        perspective: map rows through :func:`ground_table` instead of linearly.
    """
    along_x = resample_1d(grid, cols)  # (N, gh, cols)
    table = ground_table(grid.shape[1], height) if perspective else lerp_table(grid.shape[1], height, shift)
    i0, i1, w = (t[rows] for t in table)
    a = along_x[:, i0, :]
    return a + (along_x[:, i1, :] - a) * w[:, None]


def fractal_ridge(lattice: np.ndarray, gain: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Sums the octaves of 1-D value noise: the classic fractal ridgeline (fBm).

    Args:
        lattice: random values in [0, 1], (..., RIDGE_LATTICE): the octaves of
            ``RIDGE_OCTAVES`` concatenated, coarse first.
        gain: amplitude ratio between successive octaves, broadcastable to (..., 1);
            0.5 gives the 1/f "brownian" look, larger is rougher.
        width: number of columns to sample.

    Returns:
        ``(ridge, coarse)``, both (..., width) and normalised to [0, 1] per row: the full sum
        and the sum of the two coarsest octaves (the large-scale slope used for shading).
    """
    total = np.zeros(lattice.shape[:-1] + (width,), np.float32)
    amp = np.ones_like(gain, dtype=np.float32)
    coarse = total
    start = 0
    for octave, size in enumerate(RIDGE_OCTAVES):
        total = total + amp * resample_1d(lattice[..., start : start + size], width)
        start += size
        amp = amp * gain
        if octave == 1:
            coarse = total
    return _normalise(total), _normalise(coarse)


def _normalise(values: np.ndarray) -> np.ndarray:
    """Maps each row of (..., W) to [0, 1] (min and max are exact, so this is batch independent)."""
    lo = values.min(axis=-1, keepdims=True)
    hi = values.max(axis=-1, keepdims=True)
    return (values - lo) / np.maximum(hi - lo, np.float32(1e-6))
