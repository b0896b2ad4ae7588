"""``landiff presets``: list the network presets with their parameter counts.

    landiff presets            # table: name, resolution, params, learned σ, classes, paper count
    landiff presets adm-64     # every field of one preset, as JSON

Nets are built on the meta device, so counting adm-64's ~296 M parameters takes no memory.
"""

from __future__ import annotations

import argparse
import json

import torch

from landiff.nets import PAPER_COUNTS, PRESETS, UNet, UNetConfig, count_parameters, get_preset
from landiff.options import Spec


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``presets``."""
    parser = subparsers.add_parser("presets", help="list the network presets and their parameter counts",
                                   description="network presets and their parameter counts")
    Spec("name", "choice", "show every field of this preset as JSON", choices=tuple(PRESETS),
         metavar="NAME", default_text="none: the table of all presets").add_to(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.name is not None:
        print(json.dumps(get_preset(args.name).to_dict(), indent=2))
        return 0
    print(format_table())
    return 0


def meta_parameter_count(config: UNetConfig) -> int:
    """Parameter count of ``UNet(config)`` built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        return count_parameters(UNet(config))


def format_table() -> str:
    """The presets as an aligned text table, one row per preset."""
    header = ("name", "px", "params (M)", "learned σ", "classes", "paper (M)", "vs paper")
    rows = [header]
    for name, config in PRESETS.items():
        count = meta_parameter_count(config)
        paper = PAPER_COUNTS.get(name)
        rows.append(
            (
                name,
                str(config.resolution),
                f"{count / 1e6:.2f}",
                "yes" if config.learn_sigma else "no",
                str(config.num_classes) if config.num_classes else "-",
                f"{paper.params / 1e6:.1f}" if paper else "-",
                f"{(count - paper.params) / paper.params:+.2%}" if paper else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    # Name column left-aligned, numbers right-aligned.
    lines = [
        "  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]) for row in rows
    ]
    sources = [f"  {name}: {paper.source}" for name, paper in PAPER_COUNTS.items()]
    return "\n".join([*lines, "", "paper counts:", *sources])
