"""Image sets for the metrics: generated samples and reference (real) images, as uint8 arrays.

Samples (``--samples``): a ``samples.npz`` written by ``landiff sample`` (key ``images``,
(N, H, W, 3) uint8, read with ``allow_pickle=False``), a directory holding one, or a folder of
PNGs read at their own size (``grid.png`` and ``denoise-strip.png`` of a sample folder skipped).

References (``--ref``, ``--train``, ``--heldout``): ``"synthetic"`` (the built-in landscapes at the
samples' resolution; ``--ref`` uses the held-out split), an ``.npz`` / sample directory as above,
or anything :func:`landiff.data.open_dataset` accepts (image folder, prepared dataset), resized
and centre-cropped to the samples' resolution.

Labelled references (:func:`load_labelled_reference`, for the class metrics): ``"synthetic"`` (the
held-out split, whose image k has class k mod C), an image folder ``DIR/<class>/…`` (e.g. written by
``landiff data synth --split heldout [--label-by layout]``) or a prepared dataset with class labels;
an .npz carries no labels and is refused.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import Image

from landiff.data import CLASSES, PreparedDataset, SyntheticLandscapes, open_dataset
from landiff.errors import UserError

if TYPE_CHECKING:
    from landiff.data.open import OpenedDataset

SAMPLES_FILE = "samples.npz"
# Files ``landiff sample`` writes next to the sample PNGs that are not samples.
NOT_SAMPLES = frozenset({"grid.png", "denoise-strip.png"})
_BATCH = 256


@dataclass(frozen=True)
class ImageSet:
    """Images (N, H, W, 3) uint8 and where they came from, in words (recorded with results)."""

    images: np.ndarray
    description: str

    def __len__(self) -> int:
        return len(self.images)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return int(self.images.shape[1]), int(self.images.shape[2])


def read_npz(path: Path) -> np.ndarray:
    """``images`` of a samples.npz, checked to be (N, H, W, 3) uint8."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if "images" not in data.files:
                raise UserError(f"{path} has no 'images' array (has: {', '.join(data.files)}); "
                                "give a samples.npz written by landiff sample")
            images = data["images"]
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:  # ValueError: object arrays
        raise UserError(f"{path} is not a readable .npz file ({str(err)[:120]})") from None
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise UserError(f"{path}: 'images' must be (N, H, W, 3) uint8, found {images.dtype} {images.shape}")
    return images


def read_png_folder(folder: Path) -> np.ndarray:
    """All ``*.png`` of ``folder`` (not recursive, any letter case, sorted by name) as (N, H, W, 3) uint8."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.name.lower() not in NOT_SAMPLES)
    if not files:
        raise UserError(f"{folder} has no {SAMPLES_FILE} and no PNG images; give a samples.npz or a folder of PNGs")
    arrays = []
    for path in files:
        try:
            with Image.open(path) as img:
                arrays.append(np.asarray(img.convert("RGB")))
        except OSError as err:
            raise UserError(f"{path} is not a readable PNG ({err}); remove it or regenerate the samples") from err
        if arrays[-1].shape != arrays[0].shape:
            raise UserError(f"{path} is {arrays[-1].shape[1]}x{arrays[-1].shape[0]} but {files[0].name} is "
                            f"{arrays[0].shape[1]}x{arrays[0].shape[0]}; sample PNGs must share one size")
    return np.stack(arrays)


def _first(images: np.ndarray, n: int | None) -> np.ndarray:
    return images if n is None else images[:n]


def load_samples(spec: str | Path, n: int | None = None) -> ImageSet:
    """Generated images from an .npz, a directory with samples.npz, or a folder of PNGs (first ``n``)."""
    path = Path(spec)
    if path.is_dir() and (path / SAMPLES_FILE).is_file():
        path = path / SAMPLES_FILE
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise UserError(f"--samples {str(spec)!r}: give a samples.npz or a folder of PNGs, not a {path.suffix} file")
        images = _first(read_npz(path), n)
    elif path.is_dir():
        images = _first(read_png_folder(path), n)
    else:
        raise UserError(f"--samples {str(spec)!r} does not exist; give a samples.npz or a folder of PNGs")
    if len(images) == 0:
        raise UserError(f"--samples {str(spec)!r} holds no images")
    return ImageSet(images, f"{path} (first {len(images)})")


def _dataset_images(dataset: OpenedDataset, indices: list[int]) -> np.ndarray:
    """Images ``indices`` of a landiff dataset as (N, H, W, 3) uint8, batched where the dataset can."""
    chunks = []
    for start in range(0, len(indices), _BATCH):
        ks = indices[start : start + _BATCH]
        items = dataset.__getitems__(ks) if hasattr(dataset, "__getitems__") else [dataset[k] for k in ks]
        chunks.append(np.stack([img.permute(1, 2, 0).numpy() for img, _ in items]))
    return np.concatenate(chunks)


def load_reference(spec: str, size: tuple[int, int], n: int | None, *, seed: int = 0, data_seed: int = 0,
                   split: Literal["train", "heldout"] = "heldout") -> ImageSet:
    """Up to ``n`` real images at ``size`` = (height, width) for comparison with samples.

    Args:
        spec: ``"synthetic"``, an .npz / sample directory, or a dataset for ``open_dataset``.
        size: the samples' (height, width); datasets are resized to it, .npz must match it.
        n: number of images wanted (synthetic renders exactly ``n``); None: all (not for synthetic).
        seed: picks a random subset (stream ``seed``) when a dataset has more than ``n`` images,
            so a folder sorted by class is not cut to its first classes.
        data_seed: seed of the synthetic landscapes (a run's ``config.seed``).
        split: synthetic split: ``"heldout"`` for references, ``"train"`` for a training set.
    """
    if n is not None and n < 1:
        raise UserError("--n must be >= 1")
    if spec == "synthetic" and n is None:
        raise UserError("synthetic reference: give the number of images (--n / --n-train)")
    path = Path(spec)
    if spec != "synthetic" and (path.suffix.lower() == ".npz" or (path / SAMPLES_FILE).is_file()):
        images = read_npz(path if path.suffix.lower() == ".npz" else path / SAMPLES_FILE)
        if images.shape[1:3] != size:
            raise UserError(f"{spec}: images are {images.shape[2]}x{images.shape[1]} but the samples are "
                            f"{size[1]}x{size[0]}; compare sets of one resolution")
        images = _first(images, n)
        return ImageSet(images, f"{spec} (first {len(images)})")
    dataset = open_dataset(spec, size, seed=data_seed, synthetic_n=n if spec == "synthetic" else None, split=split)
    if spec == "synthetic" and n is not None:  # n is never None here (refused above)
        indices = list(range(len(dataset)))
        what = f"synthetic landscapes, {split} split, data seed {data_seed}, {size[1]}x{size[0]}, images 0..{n - 1}"
    elif n is not None and len(dataset) > n:
        indices = sorted(np.random.default_rng(seed).choice(len(dataset), n, replace=False).tolist())
        what = f"{spec} at {size[1]}x{size[0]}, random {n} of {len(dataset)} (seed {seed})"
    else:
        indices = list(range(len(dataset)))
        what = f"{spec} at {size[1]}x{size[0]}, all {len(dataset)}"
    return ImageSet(_dataset_images(dataset, indices), what)


@dataclass(frozen=True)
class LabelledImages:
    """Real images with their classes: ``images`` (N, H, W, 3) uint8, ``labels`` (N,) int64 indices
    into ``classes`` (the data's class names), and where they came from, in words."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    description: str

    def of_class(self, name: str) -> np.ndarray:
        """The images of class ``name`` in load order; (0, H, W, 3) for a class the data lacks."""
        if name not in self.classes:
            return self.images[:0]
        return self.images[self.labels == self.classes.index(name)]


def _dataset_labels(dataset: OpenedDataset) -> np.ndarray:
    """Every image's class label, read without decoding an image."""
    if isinstance(dataset, SyntheticLandscapes):
        return np.array([dataset.label(k) for k in range(len(dataset))], dtype=np.int64)
    if isinstance(dataset, PreparedDataset):
        return np.array([entry.label for entry in dataset.manifest.files], dtype=np.int64)
    return np.asarray(dataset.labels, dtype=np.int64)


def load_labelled_reference(spec: str, size: tuple[int, int], per_class: int, *, seed: int = 0,
                            data_seed: int = 0) -> LabelledImages:
    """Up to ``per_class`` real images of every class of ``spec``, with their labels (held-out data).

    Args:
        spec: ``"synthetic"`` (held-out split: images 0 .. per_class·C − 1, so exactly ``per_class``
            of each class), an image folder with class subfolders, or a prepared dataset with labels.
        size: (height, width) the images are resized to (the samples' size).
        per_class: images wanted per class; a folder class with more gets a random subset (stream
            ``seed``, the same images every time), one with fewer gives all it has.
        data_seed: seed of the synthetic landscapes (a run's ``config.seed``).
    """
    if per_class < 1:
        raise UserError(f"need at least 1 real image per class, got {per_class}")
    path = Path(spec)
    if spec != "synthetic" and (path.suffix.lower() == ".npz" or (path / SAMPLES_FILE).is_file()):
        raise UserError(f"{spec}: an .npz holds no class labels; give labelled real images: 'synthetic', a folder "
                        "DIR/<class>/... (landiff data synth --split heldout) or a prepared dataset with --class-cond")
    dataset = open_dataset(spec, size, class_cond=True, seed=data_seed, split="heldout",
                           synthetic_n=per_class * len(CLASSES) if spec == "synthetic" else None)
    labels = _dataset_labels(dataset)
    rng = np.random.default_rng([seed, 5])
    chosen: list[int] = []
    for label in range(len(dataset.classes)):
        members = np.flatnonzero(labels == label)
        if len(members) > per_class:
            members = np.sort(rng.choice(members, per_class, replace=False))
        chosen += members.tolist()
    what = (f"synthetic landscapes, heldout split, data seed {data_seed}" if spec == "synthetic" else spec)
    return LabelledImages(_dataset_images(dataset, chosen), labels[chosen], tuple(dataset.classes),
                          f"{what} at {size[1]}x{size[0]}, up to {per_class} per class (seed {seed})")


def latest_samples(run_dir: str | Path) -> Path:
    """The newest ``RUN/samples/*/samples.npz`` (by modification time)."""
    found = sorted(Path(run_dir).glob(f"samples/*/{SAMPLES_FILE}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError(f"{run_dir} has no samples/*/{SAMPLES_FILE}; run landiff sample --run {run_dir} --n 512 "
                        "first, or pass --samples")
    return found[-1]
