"""A folder of images as a map-style dataset that survives bad files.

Usage::

    ds = ImageFolderDataset("photos/", 64, class_cond=True, flip=True, seed=0)
    print(write_skipped_report(ds.summary, run_dir))   # "N readable, M skipped (see ...)"
    ds.set_epoch(epoch)                                # flips differ per epoch, resume exactly
    image, label = ds[0]                               # uint8 (3, 64, 64), int

Every file is verified when the dataset is built (see :mod:`landiff.data.scan`), so a corrupt
file is reported before training starts rather than killing a DataLoader worker hours in.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from landiff.data.flip import apply_flip, flip_decision
from landiff.data.images import DEFAULT_MAX_PIXELS, ImageProblem, as_size, covers, load_array
from landiff.data.scan import (
    FolderScan,
    ScannedImage,
    SkippedFile,
    SourceFile,
    accepted_extensions_text,
    read_bytes,
    scan_folder,
)
from landiff.errors import UnlabelledData, UserError

logger = logging.getLogger("landiff.data")

SKIPPED_FILE_NAME = "data-skipped.txt"
# How many following images __getitem__ tries when a file fails after the scan.
_MAX_REPLACEMENT_TRIES = 32


@dataclass(frozen=True)
class DataSummary:
    """What a run should say about its data at start; ``resolution`` is (height, width)."""

    root: str
    readable: int
    skipped: tuple[SkippedFile, ...]
    upscaled: tuple[str, ...]  # relative paths of kept images smaller than the resolution
    resolution: tuple[int, int]


def write_skipped_report(summary: DataSummary, run_dir: str | os.PathLike[str]) -> str:
    """Writes ``<run_dir>/data-skipped.txt`` (one "path<TAB>reason" line per file) and returns
    the one-line summary a trainer prints, e.g. ``"980 readable, 3 skipped (see runs/a/data-skipped.txt)"``.

    Upscaled images are listed at the end of the file with reason "kept, upscaled".
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    out = run_dir / SKIPPED_FILE_NAME
    height, width = summary.resolution
    lines = [f"# data: {summary.root}", f"# {summary.readable} readable, {len(summary.skipped)} skipped"]
    lines += [f"{s.path}\t{s.reason}" for s in summary.skipped]
    lines += [f"{p}\tkept, upscaled to {height}x{width}" for p in summary.upscaled]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    text = f"{summary.readable} readable, {len(summary.skipped)} skipped"
    if summary.upscaled:
        text += f", {len(summary.upscaled)} upscaled to {height}x{width}"
    return f"{text} (see {out})"


def require_readable(scan: FolderScan) -> None:
    """Raises UserError when a scan found no usable image."""
    if not scan.images:
        found = f" ({len(scan.skipped)} unreadable)" if scan.skipped else ""
        raise UserError(
            f"image folder {str(scan.root)!r} has no readable image{found}; "
            f"accepted extensions: {accepted_extensions_text()}"
        )


def class_labels(root: Path, paths: list[str], class_cond: bool) -> tuple[list[str], list[int]]:
    """Class names (sorted first-level subfolders) and one label per path.

    Without ``class_cond`` every label is 0 and there are no class names. A subfolder without
    any readable image is not a class (the model could never be shown it).

    Raises:
        UserError: ``class_cond`` and an image lies directly in ``root``.
    """
    if not class_cond:
        return [], [0] * len(paths)
    loose = [p for p in paths if "/" not in p]
    if loose:
        reason = f"{str(root)!r} has images directly in it (e.g. {loose[0]!r})"
        raise UnlabelledData(
            f"class-conditional data: {reason}; put images in class subfolders (ROOT/<class>/image.jpg) or drop "
            "--class-cond", reason,
        )
    names = sorted({p.split("/", 1)[0] for p in paths})
    ids = {name: i for i, name in enumerate(names)}
    return names, [ids[p.split("/", 1)[0]] for p in paths]


def summarize(scan: FolderScan, size: tuple[int, int]) -> DataSummary:
    """The :class:`DataSummary` of a scan at a target (height, width)."""
    upscaled = tuple(im.path for im in scan.images if not covers(im.width, im.height, size))
    return DataSummary(str(scan.root), len(scan.images), tuple(scan.skipped), upscaled, size)


class ImageFolderDataset(Dataset):
    """Images under ``root`` (recursive) as ``(uint8 tensor (3, H, W), int label)``.

    Each image is decoded, converted to RGB (see :mod:`landiff.data.images`), its shorter side
    resized (LANCZOS) and centre-cropped to ``resolution``.

    Attributes:
        root: the folder.
        resolution: (height, width) in pixels.
        classes: sorted first-level subfolder names when ``class_cond``, else ``[]``.
        files: relative paths of the readable images, in dataset order.
        labels: one class id per file (all 0 without ``class_cond``).
        summary: counts of readable / skipped / upscaled files for the run log.
        replaced: files that failed after the scan and were replaced (counted in this process).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        resolution: int | tuple[int, int],
        *,
        class_cond: bool = False,
        flip: bool = False,
        seed: int = 0,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        workers: int | None = None,
        scan: FolderScan | None = None,
    ) -> None:
        """Scans ``root`` (or uses a ready ``scan`` of it).

        Args:
            root: the image folder.
            resolution: output size, an int (square) or (height, width).
            class_cond: label images by their first-level subfolder.
            flip: mirror left-right with p = 1/2, decided by (seed, epoch, index).
            seed: seed of the flips.
            max_pixels: refuse images above this many pixels (decompression bombs).
            workers: scanning threads (default: CPU count, at most 16).
            scan: a scan of ``root`` already made (skips scanning again).

        Raises:
            UserError: missing folder, no readable image, or loose images with ``class_cond``.
        """
        self.resolution = as_size(resolution)
        scan = scan if scan is not None else scan_folder(root, max_pixels=max_pixels, workers=workers)
        require_readable(scan)
        self.root = scan.root
        self.max_pixels = max_pixels
        self.flip = flip
        self.seed = seed
        self.epoch = 0
        self.replaced = 0
        self._images: list[ScannedImage] = scan.images
        self.files = [im.path for im in scan.images]
        self.classes, self.labels = class_labels(self.root, self.files, class_cond)
        self.summary = summarize(scan, self.resolution)
        self._failed: set[int] = set()
        logger.info("%s: %d readable, %d skipped", self.root, len(self.files), len(scan.skipped))

    def __len__(self) -> int:
        return len(self.files)

    def set_epoch(self, epoch: int) -> None:
        """Selects the flips of ``epoch`` (call before creating each epoch's DataLoader iterator)."""
        self.epoch = int(epoch)

    def class_mapping(self) -> dict[str, int]:
        """Class name → label id, for saving as JSON in the run directory."""
        return {name: i for i, name in enumerate(self.classes)}

    def read_array(self, index: int) -> np.ndarray:
        """Decodes file ``index`` to a uint8 (H, W, 3) array, without flip; raises ImageProblem."""
        image = self._images[index]
        data = read_bytes(self.root, SourceFile(image.path, image.size, image.mtime_ns))
        return load_array(data, self.resolution, self.max_pixels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        # A file that scanned fine may change on disk during a long run: warn and use the next one
        # rather than kill the run.
        for offset in range(min(_MAX_REPLACEMENT_TRIES, len(self))):
            k = (index + offset) % len(self)
            if k in self._failed:
                continue
            try:
                array = self.read_array(k)
            except ImageProblem as problem:
                self._failed.add(k)
                self.replaced += 1
                logger.warning("replacing %s (failed after the scan: %s)", self.root / self.files[k], problem.reason)
                continue
            if self.flip and flip_decision(self.seed, self.epoch, index):
                array = apply_flip(array)
            return torch.from_numpy(array).permute(2, 0, 1).contiguous(), self.labels[k]
        raise RuntimeError(f"{self.root}: {_MAX_REPLACEMENT_TRIES} images in a row failed to load near index {index}")
