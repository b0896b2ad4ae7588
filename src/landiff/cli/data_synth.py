"""``landiff data synth``: write built-in procedural landscapes to a folder.

Example::

    landiff data synth --out data/landscapes-32 --n 10000 --size 32
    landiff data synth --out data/heldout --n 1000 --size 64 --classes day,snow --split heldout
    landiff data synth --out data/layouts --n 4000 --size 32 --label-by layout   # lake/land x high/low horizon

Writes ``DIR/<class>/<index>.png``, ``DIR/params.jsonl`` (one line per image) and
``DIR/synth.json``; see :mod:`landiff.data.landscape_export`.
"""

from __future__ import annotations

import argparse

from landiff.data.landscape_export import LABEL_BY, LAYOUT_CLASSES, write_landscapes
from landiff.data.landscape_params import CLASSES
from landiff.data.synthetic import HELDOUT_OFFSET
from landiff.errors import UserError
from landiff.options import OUT_DIR, SEED, Spec, check_disk, check_output_dir

MAX_SIZE = 1024


def _parse_classes(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in CLASSES]
    if unknown or not names:
        raise UserError(f"--classes {text!r}: use comma-separated names from {','.join(CLASSES)}")
    if len(set(names)) != len(names):
        raise UserError(f"--classes {text!r} names a class twice; list each once")
    return names


def _synth(args: argparse.Namespace) -> int:
    n, size, seed = args.n, args.size, args.seed  # typed and range-checked by their Specs
    classes = _parse_classes(args.classes)
    check_output_dir(args.out, "--out")
    check_disk(float(n) * size * size * 3, args.out, ["--n", "--size"])  # PNG never needs more than raw pixels
    summary = write_landscapes(args.out, n, size, classes=classes, seed=seed, split=args.split, label_by=args.label_by)
    counts = ", ".join(f"{name} {count}" for name, count in summary.per_class.items())
    print(f"wrote {summary.count} landscapes at {size}px to {summary.out} ({counts}) in {summary.seconds:.1f} s")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``synth`` to ``landiff data``."""
    parser = subparsers.add_parser(
        "synth", help="render the built-in procedural landscapes to PNG files",
        description="Render procedural landscapes (classes day, sunset, night, snow, or layout classes) into DIR/<class>/.",
    )

    OUT_DIR.add_to(parser, required=True, help="directory to create (or a previous synth output)")
    Spec("--n", "int", "number of images", required=True, low=1, high=HELDOUT_OFFSET, unit="images").add_to(parser)
    Spec("--size", "int", "image size", required=True, low=8, high=MAX_SIZE, unit="px").add_to(parser)
    Spec("--classes", "str", "comma-separated subset of the classes, e.g. day,snow",
         default_text="all: " + ",".join(CLASSES)).add_to(parser)
    SEED.add_to(parser, help="dataset seed")
    Spec("--split", "choice", "train, or heldout: generator indices 10^9 + k, disjoint from the training images",
         default="train", choices=("train", "heldout")).add_to(parser)
    Spec("--label-by", "choice", f"what the class folders are: class (the palettes {', '.join(CLASSES)}) or "
         f"layout ({', '.join(LAYOUT_CLASSES)}: a lake or not x the horizon above or below the middle of its range; "
         "every palette in every class, the harder split for guidance)", default="class", choices=LABEL_BY).add_to(parser)
    parser.set_defaults(func=_synth)
