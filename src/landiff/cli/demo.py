"""``landiff demo``: train a tiny diffusion model and a DCGAN on built-in landscapes, compare, report.

    landiff demo                 # ~10 minutes on a 2-core CPU
    landiff demo --minutes 3     # shorter (rougher pictures)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from landiff.errors import UserError
from landiff.options import OUT_DIR, Spec, check_output_dir
from landiff.workflows.demo import run_demo, summary_table


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="train diffusion and a DCGAN on built-in landscapes, compare them, write a report",
        description="train a small diffusion model and a DCGAN on the built-in landscapes, sample, measure and write a "
                    "side-by-side report")
    Spec("--minutes", "float", "total time budget, shared by the two trainings, sampling and the metrics", default=10.0,
         low=0.2, high=24 * 60, unit="minutes").add_to(p)
    OUT_DIR.add_to(p, default="runs/demo", help="where the runs and the report go")
    Spec("--resolution", "choice", "image size of the data and both models", default="32", choices=("32", "64"),
         unit="px").add_to(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0.2 <= args.minutes <= 24 * 60:
        raise UserError(f"--minutes must be between 0.2 and 1440, got {args.minutes}")
    args.resolution = int(args.resolution)
    if args.resolution not in (32, 64):
        raise UserError(f"--resolution must be 32 or 64 for the demo, got {args.resolution}")
    check_output_dir(args.out, "--out")  # before ten minutes of training
    html, summaries = run_demo(Path(args.out), args.minutes, args.resolution)
    print()
    print(summary_table(summaries))
    print(f"\nreport: {html}")
    return 0
