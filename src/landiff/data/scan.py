"""Listing and verifying the images of a folder: what is readable, what is skipped and why.

Scanning reads every file once (sha256 of its bytes), verifies it with Pillow and decodes its
first frame (JPEGs at 1/8 scale, which still reads every byte), in a thread pool: Pillow's
decoders release the GIL. Bad files are logged on one line each (logger ``landiff.data``)
and kept in :attr:`FolderScan.skipped` with their reason.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from landiff.data.images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageProblem, has_image_extension, inspect_image
from landiff.errors import UserError

logger = logging.getLogger("landiff.data")

_CHUNK = 1024  # files verified per thread-pool round
# Folders that only ever hold metadata (macOS zip resource forks), never training images.
_JUNK_DIRS = frozenset({"__MACOSX"})


@dataclass(frozen=True)
class SourceFile:
    """A file with an image extension; ``path`` is relative to the root, '/'-separated."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ScannedImage:
    """A readable image; ``width``/``height`` in pixels after EXIF orientation."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    width: int
    height: int


@dataclass(frozen=True)
class SkippedFile:
    """A file with an image extension that cannot be used, and the reason in a few words."""

    path: str
    reason: str
    size: int = 0
    mtime_ns: int = 0
    sha256: str | None = None


@dataclass(frozen=True)
class FolderScan:
    """Result of :func:`scan_folder`; lists are in sorted path order."""

    root: Path
    images: list[ScannedImage]
    skipped: list[SkippedFile]
    ignored: int  # files with other extensions (or hidden): not images, not counted as skipped
    started_ns: int  # wall clock when listing began; see prepared.py on "racy" files


def accepted_extensions_text() -> str:
    """The accepted extensions as one short phrase for error messages."""
    return ", ".join(ext.lstrip(".") for ext in IMAGE_EXTENSIONS) + " (any letter case)"


def require_directory(root: str | os.PathLike[str], what: str = "image folder") -> Path:
    """Returns ``root`` as a Path, or raises UserError when it is missing or not a directory."""
    path = Path(root)
    if not path.exists():
        raise UserError(f"{what} {str(path)!r} does not exist; check the path")
    if not path.is_dir():
        raise UserError(f"{what} {str(path)!r} is not a directory; give a folder of images")
    return path


def _walk(root: Path) -> Iterator[tuple[str, str]]:
    """Yields (directory, file name) in sorted order, skipping hidden entries and junk folders."""
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _JUNK_DIRS)
        for name in sorted(filenames):
            yield directory, name


def list_source_files(root: str | os.PathLike[str]) -> tuple[list[SourceFile], list[SkippedFile], int]:
    """Lists the image-extension files under ``root`` recursively (no decoding; only stat).

    Returns:
        (files sorted by relative path, files that could not be stat'ed, count of ignored files:
        hidden ones and those with other extensions such as ``.txt``).
    """
    root = require_directory(root)
    files: list[SourceFile] = []
    unreadable: list[SkippedFile] = []
    ignored = 0
    for directory, name in _walk(root):
        full = Path(directory, name)
        rel = full.relative_to(root).as_posix()
        if name.startswith(".") or not has_image_extension(name):
            ignored += 1
            continue
        try:
            stat = full.stat()
        except OSError as err:  # e.g. a dangling symlink
            unreadable.append(SkippedFile(rel, f"cannot read ({err.strerror or err})"))
            continue
        files.append(SourceFile(rel, stat.st_size, stat.st_mtime_ns))
    files.sort(key=lambda f: f.path)
    return files, unreadable, ignored


def read_bytes(root: Path, source: SourceFile) -> bytes:
    """Reads a source file; raises ImageProblem when the OS refuses."""
    try:
        return (root / source.path).read_bytes()
    except OSError as err:
        raise ImageProblem(f"cannot read ({err.strerror or err})") from None


def _scan_one(root: Path, source: SourceFile, max_pixels: int) -> ScannedImage | SkippedFile:
    try:
        data = read_bytes(root, source)
    except ImageProblem as problem:
        return SkippedFile(source.path, problem.reason, source.size, source.mtime_ns)
    digest = hashlib.sha256(data).hexdigest()
    try:
        info = inspect_image(data, max_pixels)
    except ImageProblem as problem:
        return SkippedFile(source.path, problem.reason, source.size, source.mtime_ns, digest)
    return ScannedImage(source.path, source.size, source.mtime_ns, digest, info.width, info.height)


def default_workers() -> int:
    """Threads for scanning/decoding: the CPU count, at most 16."""
    return max(1, min(16, os.cpu_count() or 1))


def scan_folder(
    root: str | os.PathLike[str],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int | None = None,
) -> FolderScan:
    """Lists and verifies every image under ``root``; logs one warning line per skipped file.

    Args:
        root: the image folder (searched recursively; hidden files and folders are ignored).
        max_pixels: images declaring more pixels than this are refused as decompression bombs.
        workers: decoding threads (default: the CPU count, at most 16).

    Raises:
        UserError: ``root`` does not exist or is not a directory.
    """
    root = require_directory(root)
    started_ns = time.time_ns()
    sources, unreadable, ignored = list_source_files(root)
    results: list[ScannedImage | SkippedFile] = []
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        for start in range(0, len(sources), _CHUNK):  # bounded: not a million futures at once
            chunk = sources[start : start + _CHUNK]
            results += pool.map(lambda s: _scan_one(root, s, max_pixels), chunk)
    images = [r for r in results if isinstance(r, ScannedImage)]
    skipped = sorted(unreadable + [r for r in results if isinstance(r, SkippedFile)], key=lambda s: s.path)
    for bad in skipped:
        logger.warning("skipping %s: %s", root / bad.path, bad.reason)
    return FolderScan(root=root, images=images, skipped=skipped, ignored=ignored, started_ns=started_ns)
