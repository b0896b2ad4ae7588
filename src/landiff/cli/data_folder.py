"""``landiff data check`` and ``landiff data prepare``: image-folder health report and decode cache.

Examples::

    landiff data check photos/ --size 64
    landiff data prepare photos/ --size 64 --out cache/photos-64 --class-cond
"""

from __future__ import annotations

import argparse


def parse_size(text: str) -> tuple[int, int]:
    """``"64"`` → (64, 64); ``"48x64"`` → (48, 64), i.e. height x width."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected a size like 64 or 48x64 (height x width), got {text!r}")
    return values[0], values[1]


def _check(args: argparse.Namespace) -> int:
    from landiff.data.folder import require_readable
    from landiff.data.health import build_report, format_report
    from landiff.data.scan import scan_folder

    scan = scan_folder(args.path, max_pixels=args.max_pixels, workers=args.workers)
    print(format_report(build_report(scan, args.size)))
    require_readable(scan)  # prints the report first: the skipped list says what went wrong
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from landiff.data.prepared import prepare_folder

    manifest = prepare_folder(
        args.path, args.size, args.out, class_cond=args.class_cond, max_pixels=args.max_pixels, workers=args.workers
    )
    h, w = manifest.resolution
    classes = f", {len(manifest.classes)} classes" if manifest.class_cond else ""
    print(
        f"prepared {manifest.count} images at {h}x{w}{classes} into {args.out} "
        f"({len(manifest.skipped)} skipped, {len(manifest.upscaled)} upscaled)"
    )
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    from landiff.data.images import DEFAULT_MAX_PIXELS

    parser.add_argument("path", help="image folder (searched recursively)")
    parser.add_argument(
        "--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
        help=f"refuse images above this many pixels as decompression bombs (default {DEFAULT_MAX_PIXELS})",
    )
    parser.add_argument("--workers", type=int, default=None, help="decoding threads (default: CPU count, max 16)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``check`` and ``prepare`` to ``landiff data``."""
    check = subparsers.add_parser("check", help="health report of an image folder (no training)")
    _common(check)
    check.add_argument("--size", type=parse_size, default=None, help="target size R or HxW: counts upscaled images")
    check.set_defaults(func=_check)

    prepare = subparsers.add_parser("prepare", help="decode an image folder once into a memory-mapped cache")
    _common(prepare)
    prepare.add_argument("--size", type=parse_size, required=True, help="output size R or HxW (height x width)")
    prepare.add_argument("--out", required=True, help="directory to write (images.npy, labels.npy, manifest.json)")
    prepare.add_argument("--class-cond", action="store_true", help="label images by their first-level subfolder")
    prepare.set_defaults(func=_prepare)
