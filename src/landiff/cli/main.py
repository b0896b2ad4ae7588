"""Entry point of the ``landiff`` command: builds the parser from the command modules and runs one.

Each command module exposes ``register(subparsers)`` which adds its parser and sets
``func`` to a function ``(args) -> int`` (the exit code).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from landiff import __version__
from landiff.cli.train_options import describe_recipe
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
    "landiff.cli.runs",
    "landiff.cli.data",
    "landiff.cli.presets",
    "landiff.cli.weights",
)


ENVIRONMENT_ERRORS = (PermissionError, IsADirectoryError, NotADirectoryError)
ENVIRONMENT_ERRNOS = {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES}


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


class OneLineParser(argparse.ArgumentParser):
    """argparse with errors as one line (``landiff <cmd>: error: …``) instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        # The same "landiff: error:" start as a UserError; the command's name follows, one line.
        command = self.prog.partition(" ")[2]
        message = " ".join(message.split())  # argparse may wrap; a bad value may hold a newline
        self.exit(2, f"landiff: error: {command + ': ' if command else ''}{message} (see {self.prog} --help)\n")


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The ``landiff`` parser, with every command's options.

    ``argv`` is the command line it is about to parse: ``train``'s help then states the defaults of the
    recipe that line chooses (``train --preset dcgan --help``); without it, the default recipe's (tiny).
    """
    parser = OneLineParser(
        prog="landiff",
        description="Train, sample, evaluate and compare diffusion models and a DCGAN baseline.",
    )
    parser.add_argument("--version", action="version", version=f"landiff {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    if list(argv[:1]) == ["train"]:
        describe_recipe(subparsers.choices["train"], argv[1:])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:  # `torchrun … -m landiff -- train …` may pass the separator on
        argv = argv[1:]
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a refused option (already printed as one line)
        return exit_.code if isinstance(exit_.code, int) else 2
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"landiff: error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except OSError as err:
        # The file system refused a write the checks before the work could not foresee (the disk
        # filled up, a folder was made read-only meanwhile): one line, not a traceback.
        if not isinstance(err, ENVIRONMENT_ERRORS) and err.errno not in ENVIRONMENT_ERRNOS:
            raise
        where = f" ({err.filename})" if err.filename else ""
        print(f"landiff: error: {_one_line(err.strerror or str(err))}{where}; free space or choose a writable "
              "place and re-run", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("landiff: interrupted", file=sys.stderr)
        return 130
