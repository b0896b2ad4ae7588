"""``landiff data ...``: the built-in landscapes and image-folder tools."""

from __future__ import annotations

import argparse

from landiff.cli import data_folder, data_synth


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="make, check and prepare datasets",
                                   description="built-in landscapes to PNGs; folder health report; decode-once cache")
    data_sub = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    # Each submodule adds its own sub-commands (synth; check, prepare).

    data_synth.register(data_sub)
    data_folder.register(data_sub)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
