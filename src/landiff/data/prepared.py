"""Prepared datasets: an image folder decoded once into a memory-mappable uint8 array.

On-disk format (a directory, written by ``landiff data prepare PATH --size R --out DIR``)::

    DIR/images.npy      uint8 (N, H, W, 3), plain .npy: np.load(..., mmap_mode="r") maps it
    DIR/labels.npy      int64 (N,) class ids (all 0 unless prepared with --class-cond)
    DIR/manifest.json   format + version, source root, resolution, preprocessing settings,
                        class names, count, one entry per readable file (relative path, size,
                        mtime_ns, sha256, row, label, original size), skipped files with reasons

Nothing is pickled: the arrays load with ``allow_pickle=False``. The directory is built under a
hidden temporary name and renamed into place only after every file is written and fsync'ed,
with the manifest written last, so an interrupted prepare never leaves a directory that looks
valid (:func:`is_prepared` demands a complete manifest).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from landiff.data.flip import apply_flip, flip_decision
from landiff.data.folder import DataSummary, class_labels, require_readable, summarize
from landiff.data.images import DEFAULT_MAX_PIXELS, JPEG_DRAFT_FACTOR, RESIZE_FILTER, ImageProblem, as_size, load_array
from landiff.data.scan import (
    FolderScan,
    ScannedImage,
    SkippedFile,
    SourceFile,
    default_workers,
    read_bytes,
    scan_folder,
)
from landiff.errors import UnlabelledData, UserError
from landiff.options import check_disk, check_memory
from landiff.runs.files import atomic_write, atomic_write_text, fsync_dir, replace_dir

logger = logging.getLogger("landiff.data")

FORMAT = "landiff-prepared"
VERSION = 1
MANIFEST_NAME = "manifest.json"
_CHUNK = 64  # images decoded per thread-pool round while preparing


@dataclass(frozen=True)
class Preprocessing:
    """How pixels were made; a cache is reused only when all of this matches."""

    resize: str = "shorter-side"  # scale so the image covers (H, W), keeping its aspect ratio
    filter: str = RESIZE_FILTER
    jpeg_draft_factor: int = JPEG_DRAFT_FACTOR  # JPEG DCT-scaled to >= this x the longer target side
    crop: str = "center"
    exif_transpose: bool = True
    alpha: str = "composite-on-white"
    sixteen_bit: str = "scale-65535-to-255"
    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class ManifestEntry:
    """One readable source file and its row in images.npy; width/height of the original."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    row: int
    label: int
    width: int
    height: int


@dataclass(frozen=True)
class Manifest:
    """Contents of manifest.json; ``resolution`` is (height, width)."""

    source_root: str
    created_ns: int
    resolution: tuple[int, int]
    preprocessing: Preprocessing
    class_cond: bool
    classes: list[str]
    count: int
    files: list[ManifestEntry]
    skipped: list[SkippedFile]
    upscaled: list[str] = field(default_factory=list)
    format: str = FORMAT
    version: int = VERSION
    complete: bool = True

    def to_json(self) -> str:
        """Serialises to the manifest.json text."""
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_dict(cls, raw: dict) -> Manifest:
        """Parses a manifest.json object (of this format version)."""
        return cls(
            source_root=raw["source_root"],
            created_ns=int(raw["created_ns"]),
            resolution=as_size(raw["resolution"]),
            preprocessing=Preprocessing(**raw["preprocessing"]),
            class_cond=bool(raw["class_cond"]),
            classes=list(raw["classes"]),
            count=int(raw["count"]),
            files=[ManifestEntry(**e) for e in raw["files"]],
            skipped=[SkippedFile(**s) for s in raw["skipped"]],
            upscaled=list(raw.get("upscaled", [])),
            format=raw["format"],
            version=int(raw["version"]),
            complete=bool(raw["complete"]),
        )

    def summary(self) -> DataSummary:
        """The run-log summary recorded when this was prepared."""
        return DataSummary(self.source_root, self.count, tuple(self.skipped), tuple(self.upscaled), self.resolution)


def _directory_of(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    return path.parent if path.name == MANIFEST_NAME else path


def is_prepared(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` (a directory or its manifest.json) holds a complete prepared dataset."""
    directory = _directory_of(path)
    try:
        raw = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(raw, dict)
        and raw.get("format") == FORMAT
        and raw.get("complete") is True
        and (directory / "images.npy").is_file()
    )


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Reads the manifest of a prepared dataset directory.

    Raises:
        UserError: not a complete prepared dataset, or one of another format version.
    """
    directory = _directory_of(path)
    if not is_prepared(directory):
        raise UserError(
            f"{str(directory)!r} is not a complete prepared dataset (no valid {MANIFEST_NAME}); "
            "make one with: landiff data prepare FOLDER --size R --out DIR"
        )
    raw = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
    if raw.get("version") != VERSION:
        raise UserError(
            f"{str(directory)!r} was prepared with format version {raw.get('version')}, this landiff "
            f"reads version {VERSION}; run landiff data prepare again"
        )
    try:
        return Manifest.from_dict(raw)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise UserError(f"{str(directory)!r} has a damaged {MANIFEST_NAME} ({type(err).__name__}: {str(err)[:80]}); "
                        "run landiff data prepare again") from None


def write_manifest(directory: str | os.PathLike[str], manifest: Manifest) -> None:
    """Writes ``directory/manifest.json`` atomically (temporary file, fsync, rename)."""
    atomic_write_text(Path(directory) / MANIFEST_NAME, manifest.to_json())


def _save_npy(path: Path, array: np.ndarray) -> None:
    """``array`` as a plain .npy file at exactly ``path`` (np.save given a name would append .npy)."""
    with open(path, "wb") as handle:
        np.save(handle, array)


def _decode_row(root: Path, image: ScannedImage, size: tuple[int, int], max_pixels: int) -> np.ndarray | str:
    """The (H, W, 3) pixels of one scanned image, or the reason it failed now."""
    try:
        data = read_bytes(root, SourceFile(image.path, image.size, image.mtime_ns))
        if hashlib.sha256(data).hexdigest() != image.sha256:
            return "changed while preparing; run prepare again"
        return load_array(data, size, max_pixels)
    except ImageProblem as problem:
        return problem.reason


def _decode_into(
    path: Path, scan: FolderScan, size: tuple[int, int], max_pixels: int, workers: int
) -> list[str | None]:
    """Fills a new (N, H, W, 3) .npy at ``path`` row by row; returns, per scanned image, None or why it
    failed now (failed images leave empty rows at the end)."""
    n = len(scan.images)
    failures: list[str | None] = []
    images = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, *size, 3))
    row = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, n, _CHUNK):
            chunk = scan.images[start : start + _CHUNK]
            for result in pool.map(lambda im: _decode_row(scan.root, im, size, max_pixels), chunk):
                if isinstance(result, str):
                    failures.append(result)
                    continue
                images[row] = result
                row += 1
                failures.append(None)
    images.flush()
    del images
    return failures


def _save_rows(path: Path, source: Path, rows: int) -> None:
    """The first ``rows`` rows of the .npy array ``source`` as a .npy file at ``path`` (the map of
    ``source`` is closed on return, before anything renames over it)."""
    full = np.load(source, mmap_mode="r", allow_pickle=False)
    _save_npy(path, np.asarray(full[:rows]))


def _write_images(
    path: Path, scan: FolderScan, size: tuple[int, int], max_pixels: int, workers: int
) -> list[str | None]:
    """Writes images.npy row by row; returns, per scanned image, None or why it failed now."""
    failures: list[str | None] = []
    atomic_write(path, lambda tmp: failures.extend(_decode_into(tmp, scan, size, max_pixels, workers)))
    kept = failures.count(None)
    if kept < len(scan.images):  # rare: a file failed after the scan; rewrite without the empty tail rows
        atomic_write(path, lambda tmp: _save_rows(tmp, path, kept))
    return failures


def _manifest_for(
    scan: FolderScan, size: tuple[int, int], class_cond: bool, max_pixels: int, failures: list[str | None]
) -> Manifest:
    kept = [im for im, why in zip(scan.images, failures, strict=True) if why is None]
    late = [
        SkippedFile(im.path, why, im.size, im.mtime_ns, im.sha256) for im, why in zip(scan.images, failures, strict=True) if why
    ]
    classes, labels = class_labels(scan.root, [im.path for im in kept], class_cond)
    entries = [
        ManifestEntry(im.path, im.size, im.mtime_ns, im.sha256, row, label, im.width, im.height)
        for row, (im, label) in enumerate(zip(kept, labels, strict=True))
    ]
    summary = summarize(FolderScan(scan.root, kept, scan.skipped, scan.ignored, scan.started_ns), size)
    return Manifest(
        source_root=str(scan.root.resolve()),
        created_ns=scan.started_ns,
        resolution=size,
        preprocessing=Preprocessing(max_pixels=max_pixels),
        class_cond=class_cond,
        classes=classes,
        count=len(entries),
        files=entries,
        skipped=sorted([*scan.skipped, *late], key=lambda s: s.path),
        upscaled=list(summary.upscaled),
    )


def _check_destination(out: Path) -> None:
    if out.is_file() or (out.is_dir() and any(out.iterdir()) and not is_prepared(out)):
        raise UserError(f"--out {str(out)!r} exists and is not a prepared dataset; choose a new directory")


def prepare_folder(
    root: str | os.PathLike[str],
    resolution: int | tuple[int, int],
    out: str | os.PathLike[str],
    *,
    class_cond: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int | None = None,
    scan: FolderScan | None = None,
) -> Manifest:
    """Decodes every readable image of ``root`` once into the prepared directory ``out``.

    Args:
        root: the image folder.
        resolution: an int (square) or (height, width) in pixels.
        out: the directory to create (an older prepared dataset there is replaced).
        class_cond: store first-level subfolder names as class labels.
        max_pixels: refuse larger images as decompression bombs.
        workers: decoding threads (default: CPU count, at most 16).
        scan: a scan of ``root`` already made.

    Returns:
        The manifest written.

    Raises:
        UserError: bad folder, no readable image, loose images with ``class_cond``, or ``out`` is
            something other than a prepared dataset.
    """
    size = as_size(resolution)
    row_bytes = float(size[0]) * size[1] * 3
    # A chunk of decoded rows is held while it is written (plus the resized copy of each): refuse a
    # size that cannot fit before scanning anything.
    check_memory({f"{_CHUNK} decoded {size[0]}x{size[1]} images": 2 * _CHUNK * row_bytes}, ["--size"], "cpu")
    scan = scan if scan is not None else scan_folder(root, max_pixels=max_pixels, workers=workers)
    require_readable(scan)
    class_labels(scan.root, [im.path for im in scan.images], class_cond)  # fail before decoding
    out = Path(out)
    _check_destination(out)
    check_disk(row_bytes * len(scan.images), out.parent, ["--size"])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        failures = _write_images(tmp / "images.npy", scan, size, max_pixels, workers or default_workers())
        manifest = _manifest_for(scan, size, class_cond, max_pixels, failures)
        if manifest.count == 0:
            require_readable(FolderScan(scan.root, [], manifest.skipped, scan.ignored, scan.started_ns))
        labels = np.array([e.label for e in manifest.files], dtype=np.int64)
        atomic_write(tmp / "labels.npy", lambda path: _save_npy(path, labels))
        write_manifest(tmp, manifest)  # last: its presence marks the directory complete
        fsync_dir(tmp)
        # Another process that finished the same cache first wins; this copy is then dropped.
        replace_dir(tmp, out, done_elsewhere=is_prepared)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for bad in manifest.skipped:
        if bad not in scan.skipped:
            logger.warning("skipping %s: %s", scan.root / bad.path, bad.reason)
    return manifest


def _load_array(path: Path, mmap: bool) -> np.ndarray:
    """A plain .npy array; object arrays (which would need unpickling) and damaged files are refused."""
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:  # ValueError: object arrays need allow_pickle
        raise UserError(f"{str(path)!r} is not a readable plain array ({str(err)[:100]}); prepare the dataset again "
                        "with landiff data prepare") from None
    if not isinstance(array, np.ndarray) or array.dtype.hasobject:
        raise UserError(f"{str(path)!r} holds Python objects, which landiff never loads; prepare the dataset again")
    return array


class PreparedDataset(Dataset):
    """A prepared directory as ``(uint8 tensor (3, H, W), int label)``, memory-mapped.

    Attributes:
        path: the prepared directory.
        manifest: its parsed manifest.json.
        resolution: (height, width) in pixels.
        classes: class names (``[]`` when prepared without classes or opened with class_cond=False).
        summary: readable / skipped / upscaled counts recorded at prepare time.
    """

    def __init__(
        self, path: str | os.PathLike[str], flip: bool = False, seed: int = 0, class_cond: bool | None = None
    ) -> None:
        """Opens a prepared dataset.

        Args:
            path: the prepared directory (or its manifest.json).
            flip: mirror left-right with p = 1/2, decided by (seed, epoch, index).
            seed: seed of the flips.
            class_cond: None keeps the stored labels; False gives label 0 and no classes; True
                requires a dataset prepared with --class-cond.

        Raises:
            UserError: not a complete prepared dataset, or class labels requested but absent.
        """
        self.path = _directory_of(path)
        self.manifest = read_manifest(self.path)
        if class_cond and not self.manifest.class_cond:
            reason = f"{str(self.path)!r} was prepared without class labels"
            raise UnlabelledData(f"{reason}; run landiff data prepare with --class-cond", reason)
        use_labels = self.manifest.class_cond if class_cond is None else class_cond
        self.resolution = self.manifest.resolution
        self.classes = list(self.manifest.classes) if use_labels else []
        labels = _load_array(self.path / "labels.npy", mmap=False)
        if labels.ndim != 1 or labels.dtype.kind not in "iu" or (
                len(labels) and (labels.min() < 0 or labels.max() >= max(len(self.manifest.classes), 1))):
            raise UserError(f"{str(self.path)!r} is damaged (labels.npy must hold one class id per image, "
                            f"found {labels.dtype} {labels.shape}); prepare it again")
        self._labels = labels if use_labels else np.zeros_like(labels)
        self.flip = flip
        self.seed = seed
        self.epoch = 0
        self.summary = self.manifest.summary()
        self._images: np.ndarray | None = None
        shape, dtype = self._array().shape, self._array().dtype
        if shape != (self.manifest.count, *self.resolution, 3) or len(labels) != self.manifest.count or dtype != np.uint8:
            raise UserError(f"{str(self.path)!r} is damaged (images.npy {dtype} {shape} vs manifest); prepare it again")

    def _array(self) -> np.ndarray:
        # Mapped lazily, per process: a memmap must not be pickled into DataLoader workers.
        if self._images is None:
            self._images = _load_array(self.path / "images.npy", mmap=True)
        return self._images

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_images"] = None
        return state

    def __len__(self) -> int:
        return self.manifest.count

    def set_epoch(self, epoch: int) -> None:
        """Selects the flips of ``epoch``."""
        self.epoch = int(epoch)

    def class_mapping(self) -> dict[str, int]:
        """Class name → label id, for saving as JSON in the run directory."""
        return {name: i for i, name in enumerate(self.classes)}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        array = np.array(self._array()[index])  # copy out of the read-only map
        if self.flip and flip_decision(self.seed, self.epoch, index):
            array = apply_flip(array)
        return torch.from_numpy(array).permute(2, 0, 1).contiguous(), int(self._labels[index])
