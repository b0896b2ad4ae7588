"""``SyntheticLandscapes``: the procedural landscapes as a map-style dataset, rendered on the fly.

Nothing touches the disk: image ``k`` is rendered from ``(seed, generator index)`` whenever it is
asked for, identically in every process, DataLoader worker and rank. Usage::

    train = SyntheticLandscapes(n=50_000, resolution=32, seed=0)
    test = SyntheticLandscapes(n=5_000, resolution=32, seed=0, split="heldout")
    image, label = train[0]          # uint8 tensor (3, 32, 32), 0 ("day")

Held-out split: image ``k`` of the held-out split is generator index ``HELDOUT_OFFSET + k``
(10⁹ + k), while training images use indices below ``n`` ≤ 10⁹, so no held-out image is ever a
training image of the same seed. Labels are ``generator index % len(classes)`` on both splits,
so every contiguous run of indices is class balanced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from landiff.data.landscape_params import CLASSES, LandscapeParams
from landiff.data.landscapes import check_resolution, class_for_index, image_seed, landscape_params, render_batch
from landiff.errors import UserError

HELDOUT_OFFSET = 10**9  # first generator index of the held-out split
Split = Literal["train", "heldout"]


class SyntheticLandscapes(Dataset):
    """Procedural landscapes in the classes ``CLASSES`` (or a subset), balanced round-robin.

    Args:
        n: number of images (1 to 10⁹).
        resolution: ``size`` for square images or ``(height, width)``, in pixels.
        seed: dataset seed (non-negative); different seeds give unrelated datasets.
        classes: the class names to use, in label order; None means all of ``CLASSES``.
        split: ``"train"`` or ``"heldout"`` (disjoint generator indices, see the module doc).

    Attributes:
        classes: class names; label ``i`` means ``classes[i]``.
        resolution: as given.
    """

    def __init__(
        self,
        n: int = 50_000,
        resolution: int | tuple[int, int] = 32,
        seed: int = 0,
        classes: Sequence[str] | None = None,
        split: Split = "train",
    ) -> None:
        if not 1 <= n <= HELDOUT_OFFSET:
            raise UserError(f"n: the number of synthetic images must be between 1 and {HELDOUT_OFFSET}, got {n}")
        if seed < 0:
            raise UserError(f"seed: must be a non-negative integer, got {seed}")
        if split not in ("train", "heldout"):
            raise UserError(f"split: must be 'train' or 'heldout', got {split!r}")
        names = list(CLASSES if classes is None else classes)
        unknown = [c for c in names if c not in CLASSES]
        if unknown or not names or len(set(names)) != len(names):
            raise UserError(f"classes: give distinct names from {', '.join(CLASSES)}; got {', '.join(names) or 'none'}")
        self.n, self.seed, self.split = n, seed, split
        self.classes: list[str] = names
        self.resolution = resolution
        check_resolution(resolution)  # fail here, not later inside a DataLoader worker

    def __len__(self) -> int:
        return self.n

    def generator_index(self, k: int) -> int:
        """The generator index of image ``k`` (``k`` for train, ``HELDOUT_OFFSET + k`` held out)."""
        if not 0 <= k < self.n:
            raise IndexError(f"index {k} out of range for {self.n} synthetic images")
        return k + (HELDOUT_OFFSET if self.split == "heldout" else 0)

    def label(self, k: int) -> int:
        """Class label of image ``k`` (an index into ``classes``)."""
        return self.generator_index(k) % len(self.classes)

    def params(self, k: int) -> LandscapeParams:
        """Latent parameters of image ``k`` (drawn without rendering)."""
        index = self.generator_index(k)
        return landscape_params(image_seed(self.seed, index), class_for_index(index, self.classes))

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int]:
        """Image ``k`` as a uint8 tensor (3, H, W) and its label."""
        return self.__getitems__([k])[0]

    def __getitems__(self, ks: Sequence[int]) -> list[tuple[torch.Tensor, int]]:
        """A batch of images, rendered together (DataLoader calls this; several times faster)."""
        images = torch.from_numpy(self.render(ks, channels_first=True)[0])
        return [(image, self.label(k + self.n if k < 0 else k)) for k, image in zip(ks, images, strict=True)]

    def render(self, ks: Sequence[int], channels_first: bool = False) -> tuple[np.ndarray, list[LandscapeParams]]:
        """Images ``ks`` as one uint8 array (N, H, W, 3) — or (N, 3, H, W) — and their parameters."""
        indices = [self.generator_index(k + self.n if k < 0 else k) for k in ks]
        return render_batch(self.seed, indices, self.resolution, self.classes, channels_first=channels_first)
