"""``open_dataset``: one ``--data`` string → a dataset of ``(uint8 tensor (3, H, W), int label)``.

Accepted forms of ``spec``:

* ``"synthetic"`` — the built-in procedural landscapes (rendered on the fly);
* a prepared dataset directory (made by ``landiff data prepare``) or its ``manifest.json``;
* an image folder — read directly, or through an automatically maintained prepared cache
  when ``cache_dir`` is given (see :mod:`landiff.data.cache`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal, TypeAlias

from landiff.data.cache import open_cached_folder
from landiff.data.folder import ImageFolderDataset
from landiff.data.images import DEFAULT_MAX_PIXELS, as_size
from landiff.data.prepared import FORMAT, MANIFEST_NAME, PreparedDataset, is_prepared
from landiff.data.synthetic import SyntheticLandscapes
from landiff.errors import UserError

# What open_dataset returns: every one has __len__ and ``classes`` (see open_dataset).
OpenedDataset: TypeAlias = SyntheticLandscapes | PreparedDataset | ImageFolderDataset

ACCEPTED_FORMS = "'synthetic', an image folder, or a directory made by 'landiff data prepare'"


def _open_synthetic(
    size: tuple[int, int], seed: int, synthetic_n: int | None, split: Literal["train", "heldout"]
) -> SyntheticLandscapes:
    resolution: int | tuple[int, int] = size[0] if size[0] == size[1] else size
    if synthetic_n is None:
        return SyntheticLandscapes(resolution=resolution, seed=seed, split=split)
    return SyntheticLandscapes(resolution=resolution, seed=seed, split=split, n=synthetic_n)


def _open_prepared(path: Path, size: tuple[int, int], class_cond: bool, flip: bool, seed: int) -> PreparedDataset:
    dataset = PreparedDataset(path, flip=flip, seed=seed, class_cond=class_cond)
    if dataset.resolution != size:
        have, want = dataset.resolution, size
        raise UserError(
            f"--data {str(path)!r} was prepared at {have[0]}x{have[1]} but the resolution is {want[0]}x{want[1]}; "
            f"run landiff data prepare with --size {want[0] if want[0] == want[1] else f'{want[0]}x{want[1]}'}"
        )
    return dataset


def _is_unfinished_prepared(directory: Path) -> bool:
    try:
        raw = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(raw, dict) and raw.get("format") == FORMAT


def open_dataset(
    spec: str,
    resolution: int | tuple[int, int],
    *,
    class_cond: bool = False,
    flip: bool = False,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    synthetic_n: int | None = None,
    split: Literal["train", "heldout"] = "train",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> OpenedDataset:
    """Opens the dataset named by ``spec`` (the ``--data`` option).

    Every returned dataset has ``__len__`` and ``classes: list[str]`` (``[]`` for an image folder
    or prepared dataset without ``class_cond``) and yields ``(uint8 tensor (3, H, W), int label)``.

    Args:
        spec: ``"synthetic"``, a prepared dataset directory, or an image folder.
        resolution: an int (square) or (height, width) in pixels.
        class_cond: labels from first-level subfolders (folders / prepared datasets).
        flip: random horizontal flips decided by (seed, epoch, index); folders and prepared data
            only (the synthetic set is not flipped).
        seed: seed of the synthetic set or of the flips.
        cache_dir: for an image folder, reuse or build a prepared cache in this directory.
        synthetic_n: number of synthetic images (the generator's default when None).
        split: ``"train"`` or ``"heldout"``; only the synthetic set has a held-out split.
        max_pixels: image folders: refuse larger images as decompression bombs.

    Raises:
        UserError: ``spec`` is none of the accepted forms, or the data there is unusable.
    """
    size = as_size(resolution)
    if split not in ("train", "heldout"):
        raise UserError(f"split must be 'train' or 'heldout', got {split!r}")
    if spec == "synthetic":
        return _open_synthetic(size, seed, synthetic_n, split)
    path = Path(spec)
    if is_prepared(path):
        return _open_prepared(path, size, class_cond, flip, seed)
    if path.is_dir():
        if _is_unfinished_prepared(path):
            raise UserError(f"--data {spec!r} is an unfinished prepared dataset; run landiff data prepare again")
        if cache_dir is not None:
            return open_cached_folder(
                path, size, cache_dir, class_cond=class_cond, flip=flip, seed=seed, max_pixels=max_pixels
            )
        return ImageFolderDataset(path, size, class_cond=class_cond, flip=flip, seed=seed, max_pixels=max_pixels)
    if not path.exists():
        raise UserError(f"--data {spec!r} does not exist; give {ACCEPTED_FORMS}")
    raise UserError(f"--data {spec!r} is a file; give {ACCEPTED_FORMS}")
