"""``landiff report``: the comparison report of runs evaluated by ``landiff compare``.

    landiff report runs/demo/diffusion runs/demo/gan --out runs/demo/report

Writes ``DIR/report.html`` (self-contained: the page plus PNGs beside it) and ``DIR/report.md``,
and prints the path of report.html. Nothing is trained, sampled or evaluated: rebuild it any time.
"""

from __future__ import annotations

import argparse

from landiff.options import OUT_DIR, Spec, check_input_dir, check_output_dir
from landiff.report import build_report


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="write the HTML + Markdown comparison report of runs",
                                   description="self-contained `report.html` + `report.md` from run directories")
    Spec("runs", "path", "run directories (made by landiff train; landiff compare adds the metrics)", nargs="+",
         metavar="RUN").add_to(parser)
    OUT_DIR.add_to(parser, required=True, help="report folder: report.html, report.md, PNGs")
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    for run in args.runs:
        check_input_dir(run, "RUN", "run directory made by landiff train")
    check_output_dir(args.out, "--out")  # before any run is read or a plot drawn
    files = build_report(args.runs, args.out)
    print(files.html)
    return 0
