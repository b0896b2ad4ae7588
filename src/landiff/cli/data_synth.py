"""``landiff data synth``: write built-in procedural landscapes to a folder.

Example::

    landiff data synth --out data/landscapes-32 --n 10000 --size 32
    landiff data synth --out data/heldout --n 1000 --size 64 --classes day,snow --split heldout

Writes ``DIR/<class>/<index>.png``, ``DIR/params.jsonl`` (one line per image) and
``DIR/synth.json``; see :mod:`landiff.data.landscape_export`.
"""

from __future__ import annotations

import argparse

from landiff.errors import UserError

MAX_SIZE = 1024


def _parse_classes(text: str | None) -> list[str] | None:
    from landiff.data.landscape_params import CLASSES

    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in CLASSES]
    if unknown or not names:
        raise UserError(f"--classes {text!r}: use comma-separated names from {','.join(CLASSES)}")
    if len(set(names)) != len(names):
        raise UserError(f"--classes {text!r} names a class twice; list each once")
    return names


def _integer(option: str, text: str, lo: int, hi: int) -> int:
    """Parses an integer option here rather than in argparse, so a mistake is one clear line."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:
        raise UserError(f"{option} must be an integer from {lo} to {hi}, got {text!r}")
    return value


def _synth(args: argparse.Namespace) -> int:
    from landiff.data.landscape_export import write_landscapes
    from landiff.data.synthetic import HELDOUT_OFFSET

    n = _integer("--n", args.n, 1, HELDOUT_OFFSET)
    size = _integer("--size", args.size, 8, MAX_SIZE)
    seed = _integer("--seed", args.seed, 0, 2**63 - 1)
    if args.split not in ("train", "heldout"):
        raise UserError(f"--split must be train or heldout, got {args.split!r}")
    classes = _parse_classes(args.classes)
    summary = write_landscapes(args.out, n, size, classes=classes, seed=seed, split=args.split)
    counts = ", ".join(f"{name} {count}" for name, count in summary.per_class.items())
    print(f"wrote {summary.count} landscapes at {size}px to {summary.out} ({counts}) in {summary.seconds:.1f} s")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``synth`` to ``landiff data``."""
    parser = subparsers.add_parser(
        "synth", help="render the built-in procedural landscapes to PNG files",
        description="Render procedural landscapes (classes day, sunset, night, snow) into DIR/<class>/.",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="directory to create (or a previous synth output)")
    parser.add_argument("--n", required=True, help="number of images (≥ 1)")
    parser.add_argument("--size", required=True, help=f"image size in pixels (8 to {MAX_SIZE})")
    parser.add_argument("--classes", default=None, help="comma-separated subset, e.g. day,snow (default: all four)")
    parser.add_argument("--seed", default="0", help="dataset seed (default 0)")
    parser.add_argument(
        "--split", default="train", metavar="{train,heldout}",
        help="heldout uses generator indices 10^9 + k, disjoint from training images (default train)",
    )
    parser.set_defaults(func=_synth)
