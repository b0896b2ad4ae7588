"""The health report of an image folder (``landiff data check PATH [--size R]``), without training.

It says how many images are readable, which files are skipped and why, how many would be
upscaled at the target size, how image sizes are distributed, how balanced the first-level
subfolders (classes) are, and which files are exact duplicates (same sha256 of their bytes).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from landiff.data.images import DEFAULT_MAX_PIXELS, covers
from landiff.data.scan import FolderScan, SkippedFile, scan_folder

# Upper bounds (exclusive) of the shorter-side histogram buckets, in pixels.
_BUCKET_EDGES = (16, 32, 64, 128, 256, 512, 1024, 2048)
ROOT_CLASS = "(root)"  # the class-balance entry for images directly in the folder


@dataclass(frozen=True)
class HealthReport:
    """Counts and lists describing one folder; ``size`` is the (H, W) target or None."""

    root: Path
    readable: int
    skipped: list[SkippedFile]
    ignored: int
    size: tuple[int, int] | None
    upscaled: int
    size_histogram: list[tuple[str, int]]  # (bucket of the shorter side, image count)
    class_counts: list[tuple[str, int]]  # (first-level subfolder or "(root)", readable images)
    duplicates: list[list[str]]  # groups of relative paths with identical bytes

    def skip_reasons(self) -> list[tuple[str, int]]:
        """(reason kind, count), most frequent first; the kind is the reason before any '('."""
        kinds = Counter(s.reason.split(" (", 1)[0] for s in self.skipped)
        return kinds.most_common()


def _bucket(shorter: int) -> str:
    low = 0
    for high in _BUCKET_EDGES:
        if shorter < high:
            return f"{low}-{high - 1}"
        low = high
    return f">={low}"


def _histogram(shorter_sides: list[int]) -> list[tuple[str, int]]:
    counts = Counter(_bucket(s) for s in shorter_sides)
    order = [_bucket(e - 1) for e in _BUCKET_EDGES] + [_bucket(_BUCKET_EDGES[-1])]
    return [(name, counts[name]) for name in order if counts[name]]


def build_report(scan: FolderScan, size: tuple[int, int] | None) -> HealthReport:
    """The :class:`HealthReport` of a scan, at target ``size`` = (H, W) if given."""
    groups: dict[str, list[str]] = defaultdict(list)
    for image in scan.images:
        groups[image.sha256].append(image.path)
    classes = Counter(im.path.split("/", 1)[0] if "/" in im.path else ROOT_CLASS for im in scan.images)
    upscaled = sum(not covers(im.width, im.height, size) for im in scan.images) if size else 0
    return HealthReport(
        root=scan.root,
        readable=len(scan.images),
        skipped=list(scan.skipped),
        ignored=scan.ignored,
        size=size,
        upscaled=upscaled,
        size_histogram=_histogram([min(im.width, im.height) for im in scan.images]),
        class_counts=sorted(classes.items()),
        duplicates=sorted(paths for paths in groups.values() if len(paths) > 1),
    )


def check_folder(
    root: str | os.PathLike[str],
    size: tuple[int, int] | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int | None = None,
) -> HealthReport:
    """Scans ``root`` and builds its health report (see :func:`build_report`)."""
    return build_report(scan_folder(root, max_pixels=max_pixels, workers=workers), size)


def format_report(report: HealthReport) -> str:
    """The report as plain text for the terminal."""
    lines = [f"data check: {report.root}", f"  readable      {report.readable}"]
    lines.append(f"  skipped       {len(report.skipped)}")
    lines += [f"    {count:6d}  {kind}" for kind, count in report.skip_reasons()]
    lines.append(f"  ignored       {report.ignored} (hidden or not an image extension)")
    if report.size is not None:
        h, w = report.size
        lines.append(f"  upscaled      {report.upscaled} (smaller than {h}x{w}, kept)")
    lines.append("image sizes (shorter side, px):")
    lines += [f"  {name:>10}  {count}" for name, count in report.size_histogram]
    lines.append("class balance (first-level subfolders):")
    total = max(1, report.readable)
    lines += [f"  {name}  {count} ({100 * count / total:.1f}%)" for name, count in report.class_counts]
    lines.append(f"skipped files: {len(report.skipped)}")
    lines += [f"  {s.path}: {s.reason}" for s in report.skipped]
    extra = sum(len(g) - 1 for g in report.duplicates)
    lines.append(f"exact duplicates: {len(report.duplicates)} group(s), {extra} redundant file(s)")
    for group in report.duplicates:
        lines.append("  " + " = ".join(group))
    return "\n".join(lines)
