"""The random horizontal flip, as a pure function of (seed, epoch, index).

A flip that depends only on these three numbers gives the same batch at any worker count and
lets a resumed run see exactly the flips the uninterrupted run would have seen.
"""

from __future__ import annotations

import numpy as np


def flip_decision(seed: int, epoch: int, index: int) -> bool:
    """Whether image ``index`` is mirrored in ``epoch`` of a dataset seeded with ``seed`` (p = 1/2)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index), 0x666C6970])
    return bool(state.generate_state(1)[0] & 1)


def apply_flip(image: np.ndarray) -> np.ndarray:
    """Mirrors an (H, W, 3) array left-right; returns a contiguous copy."""
    return np.ascontiguousarray(image[:, ::-1])
