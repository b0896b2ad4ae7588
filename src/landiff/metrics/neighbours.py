"""Exact nearest-neighbour queries in float64, in row blocks so memory stays bounded.

Used by precision/recall (k-NN radii, ball membership) and the memorisation check (nearest
training image). Distances are Euclidean; squared distances are formed as
‖a‖² + ‖b‖² − 2 a·b in float64 and clamped at 0 against rounding.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

BLOCK = 1024  # rows per block: a 1024 × 10 000 float64 block is 80 MB


def _blocks(a: torch.Tensor, b: torch.Tensor, block: int) -> Iterator[tuple[int, torch.Tensor]]:
    """Yields (start row, squared distances (rows, M)) between blocks of ``a`` (N, D) and ``b`` (M, D)."""
    b_sq = (b * b).sum(1)
    for start in range(0, len(a), block):
        rows = a[start : start + block]
        d2 = (rows * rows).sum(1, keepdim=True) + b_sq.unsqueeze(0) - 2.0 * rows @ b.T
        yield start, d2.clamp_min_(0.0)


def _as64(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


def nearest(queries: np.ndarray, points: np.ndarray, *, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """For each query, the distance to and index of its nearest point.

    Args:
        queries: (N, D); points: (M, D), M ≥ 1.

    Returns:
        (distances (N,) float64, indices (N,) int64).
    """
    q, p = _as64(queries), _as64(points)
    dist, index = np.empty(len(q)), np.empty(len(q), dtype=np.int64)
    for start, d2 in _blocks(q, p, block):
        best = d2.min(dim=1)
        dist[start : start + len(d2)] = best.values.sqrt().numpy()
        index[start : start + len(d2)] = best.indices.numpy()
    return dist, index


def kth_neighbour_distance(points: np.ndarray, k: int, *, block: int = BLOCK) -> np.ndarray:
    """Distance from each point to its k-th nearest *other* point of the same set: (N,) float64.

    The point itself is excluded by index (not by distance), so exact duplicates count as neighbours.
    """
    p = _as64(points)
    if not 1 <= k < len(p):
        raise ValueError(f"k must be in [1, {len(p) - 1}] for {len(p)} points, got {k}")
    out = np.empty(len(p))
    for start, d2 in _blocks(p, p, block):
        rows = torch.arange(len(d2))
        d2[rows, rows + start] = float("inf")
        out[start : start + len(d2)] = d2.kthvalue(k, dim=1).values.sqrt().numpy()
    return out


def within_any_ball(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray, *, block: int = BLOCK) -> np.ndarray:
    """Whether each query lies in at least one closed ball ‖q − c_j‖ ≤ r_j: (N,) bool."""
    q, c = _as64(queries), _as64(centres)
    r2 = torch.as_tensor(radii, dtype=torch.float64) ** 2
    out = np.empty(len(q), dtype=bool)
    for start, d2 in _blocks(q, c, block):
        out[start : start + len(d2)] = (d2 <= r2.unsqueeze(0)).any(dim=1).numpy()
    return out
