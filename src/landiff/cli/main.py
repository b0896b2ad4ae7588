"""Entry point of the ``landiff`` command: builds the parser from the command modules and runs one.

Each command module exposes ``register(subparsers)`` which adds its parser and sets
``func`` to a function ``(args) -> int`` (the exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from landiff import __version__
from landiff.errors import UserError

# Command modules, in the order they appear in --help.
COMMAND_MODULES = (
    "landiff.cli.demo",
    "landiff.cli.train",
    "landiff.cli.sample",
    "landiff.cli.eval",
    "landiff.cli.compare",
    "landiff.cli.study",
    "landiff.cli.report",
    "landiff.cli.data",
    "landiff.cli.presets",
    "landiff.cli.weights",
)


class OneLineParser(argparse.ArgumentParser):
    """argparse with errors as one line (``landiff <cmd>: error: …``) instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="landiff",
        description="Train, sample, evaluate and compare diffusion models and a DCGAN baseline.",
    )
    parser.add_argument("--version", action="version", version=f"landiff {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:  # `torchrun … -m landiff -- train …` may pass the separator on
        argv = argv[1:]
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"landiff: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("landiff: interrupted", file=sys.stderr)
        return 130
