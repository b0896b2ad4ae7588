"""Automatic reuse of prepared datasets for image folders (``open_dataset(..., cache_dir=...)``).

A folder's cache lives at ``cache_dir/<folder name>-<H>x<W>[-cond]-<hash of the absolute path>``.
It is reused when its manifest matches the folder now:

* same preprocessing settings, resolution, class mode and absolute source root;
* the same set of image files (relative paths), each with the same size and mtime_ns;
* and, for "racy" files whose mtime is within 2 s of (or after) the moment the cache's scan
  began, the same sha256 — a file rewritten in the same clock tick as the scan keeps its size
  and mtime, so only its content can tell (git's "racy clean" rule). Other files are not hashed:
  that would cost as much as reading the whole folder at every start. When the racy files
  hash equal, the manifest's timestamp moves forward so they are not hashed again next time.

Anything else means the cache is stale and is rebuilt (atomically) before use.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

from landiff.data.images import DEFAULT_MAX_PIXELS
from landiff.data.prepared import (
    Manifest,
    PreparedDataset,
    Preprocessing,
    is_prepared,
    prepare_folder,
    read_manifest,
    write_manifest,
)
from landiff.data.scan import list_source_files, scan_folder
from landiff.errors import UserError

logger = logging.getLogger("landiff.data")

RACY_WINDOW_NS = 2_000_000_000


def cache_path(
    cache_dir: str | os.PathLike[str], root: str | os.PathLike[str], size: tuple[int, int], class_cond: bool
) -> Path:
    """Where the prepared cache of ``root`` at ``size`` = (H, W) lives inside ``cache_dir``."""
    root = Path(root).resolve()
    key = hashlib.sha256(str(root).encode("utf-8")).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", root.name) or "root"
    suffix = "-cond" if class_cond else ""
    return Path(cache_dir) / f"{name}-{size[0]}x{size[1]}{suffix}-{key}"


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _few(paths: list[str]) -> str:
    return ", ".join(paths[:3]) + (", ..." if len(paths) > 3 else "")


@dataclass(frozen=True)
class CacheCheck:
    """Outcome of comparing a manifest with its folder; ``hashed`` counts racy files re-hashed."""

    reason: str | None  # None: the cache is current
    hashed: int
    started_ns: int  # wall clock when the comparison began


def check_cache(
    manifest: Manifest, root: str | os.PathLike[str], size: tuple[int, int], class_cond: bool, max_pixels: int
) -> CacheCheck:
    """Compares ``manifest`` with ``root`` now and with the requested settings."""
    started_ns = time.time_ns()
    root = Path(root).resolve()
    if manifest.source_root != str(root):
        return CacheCheck(f"prepared from {manifest.source_root}", 0, started_ns)
    if manifest.resolution != size or manifest.class_cond != class_cond:
        return CacheCheck("different resolution or class mode", 0, started_ns)
    if manifest.preprocessing != Preprocessing(max_pixels=max_pixels):
        return CacheCheck("different preprocessing settings", 0, started_ns)
    files, unreadable, _ = list_source_files(root)
    now = {f.path: (f.size, f.mtime_ns) for f in files} | {u.path: (0, 0) for u in unreadable}
    recorded: dict[str, tuple[int, int, str | None]] = {e.path: (e.size, e.mtime_ns, e.sha256) for e in manifest.files}
    recorded |= {s.path: (s.size, s.mtime_ns, s.sha256) for s in manifest.skipped}
    added = sorted(now.keys() - recorded.keys())
    removed = sorted(recorded.keys() - now.keys())
    changed = sorted(p for p in now.keys() & recorded.keys() if now[p] != recorded[p][:2])
    settled_before = manifest.created_ns - RACY_WINDOW_NS
    same = sorted((now.keys() & recorded.keys()) - set(changed))
    racy = [p for p in same if now[p][1] >= settled_before]
    changed += [p for p in racy if _sha256(root / p) != recorded[p][2]]
    for what, paths in (("added", added), ("removed", removed), ("changed", changed)):
        if paths:
            return CacheCheck(f"{len(paths)} file(s) {what}: {_few(paths)}", len(racy), started_ns)
    return CacheCheck(None, len(racy), started_ns)


def stale_reason(
    manifest: Manifest, root: str | os.PathLike[str], size: tuple[int, int], class_cond: bool, max_pixels: int
) -> str | None:
    """Why ``manifest`` does not describe ``root`` prepared with these settings, or None if it does."""
    return check_cache(manifest, root, size, class_cond, max_pixels).reason


def open_cached_folder(
    root: str | os.PathLike[str],
    size: tuple[int, int],
    cache_dir: str | os.PathLike[str],
    *,
    class_cond: bool = False,
    flip: bool = False,
    seed: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int | None = None,
) -> PreparedDataset:
    """The prepared cache of ``root`` in ``cache_dir``, reused when current, else (re)built first.

    Raises:
        UserError: as :class:`~landiff.data.folder.ImageFolderDataset` for a bad folder.
    """
    path = cache_path(cache_dir, root, size, class_cond)
    if is_prepared(path):
        try:
            manifest = read_manifest(path)
            check = check_cache(manifest, root, size, class_cond, max_pixels)
            reason = check.reason
        except UserError as err:  # an older format version
            reason = str(err)
        if reason is None:
            if check.hashed:
                # The racy files hashed equal now, so they are settled: move the racy window to
                # this check so the next start does not hash them again.
                try:
                    write_manifest(path, replace(manifest, created_ns=check.started_ns))
                except OSError as err:  # a read-only cache still works, it just hashes again
                    logger.info("could not update %s: %s", path, err)
            logger.info("using prepared cache %s", path)
            return PreparedDataset(path, flip=flip, seed=seed, class_cond=class_cond)
        logger.info("prepared cache %s is stale (%s); rebuilding", path, reason)
    scan = scan_folder(root, max_pixels=max_pixels, workers=workers)
    prepare_folder(root, size, path, class_cond=class_cond, max_pixels=max_pixels, workers=workers, scan=scan)
    return PreparedDataset(path, flip=flip, seed=seed, class_cond=class_cond)
