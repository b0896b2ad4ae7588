"""``landiff data check`` and ``landiff data prepare``: image-folder health report and decode cache.

Examples::

    landiff data check photos/ --size 64
    landiff data prepare photos/ --size 64 --out cache/photos-64 --class-cond
"""

from __future__ import annotations

import argparse

from landiff.data.folder import require_readable
from landiff.data.health import build_report, format_report
from landiff.data.images import DEFAULT_MAX_PIXELS
from landiff.data.prepared import prepare_folder
from landiff.data.scan import scan_folder
from landiff.options import OUT_DIR, Spec, check_input_dir, check_output_dir


def _check(args: argparse.Namespace) -> int:
    check_input_dir(args.path, "PATH", "image folder")
    scan = scan_folder(args.path, max_pixels=args.max_pixels, workers=args.workers)
    print(format_report(build_report(scan, args.size)))
    require_readable(scan)  # prints the report first: the skipped list says what went wrong
    return 0


def _prepare(args: argparse.Namespace) -> int:
    check_input_dir(args.path, "PATH", "image folder")
    check_output_dir(args.out, "--out")  # before the folder is scanned and decoded
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
    Spec("path", "path", "image folder (searched recursively)", required=True).add_to(parser)
    Spec("--max-pixels", "int", "refuse images above this many pixels as decompression bombs",
         default=DEFAULT_MAX_PIXELS, low=1, unit="pixels").add_to(parser)
    Spec("--workers", "int", "threads that decode the images", low=1, high=256, unit="threads",
         default_text="the CPU count, at most 16").add_to(parser)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``check`` and ``prepare`` to ``landiff data``."""
    check = subparsers.add_parser("check", help="health report of an image folder (no training)")
    _common(check)
    Spec("--size", "size", "target size R or HxW: also count the images smaller than it (they would be upscaled)",
         default_text="none (no upscale count)").add_to(check)
    check.set_defaults(func=_check)

    prepare = subparsers.add_parser("prepare", help="decode an image folder once into a memory-mapped cache")
    _common(prepare)
    Spec("--size", "size", "output size R or HxW (height x width)", required=True).add_to(prepare)
    OUT_DIR.add_to(prepare, required=True, help="directory to write (images.npy, labels.npy, manifest.json)")
    Spec("--class-cond", "switch", "label images by their first-level subfolder (labels.npy)").add_to(prepare)
    prepare.set_defaults(func=_prepare)
