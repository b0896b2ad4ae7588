"""``landiff report``: the comparison report of runs evaluated by ``landiff compare``.

    landiff report runs/demo/diffusion runs/demo/gan --out runs/demo/report

Writes ``DIR/report.html`` (self-contained: the page plus PNGs beside it) and ``DIR/report.md``,
and prints the path of report.html. Nothing is trained, sampled or evaluated: rebuild it any time.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="write the HTML + Markdown comparison report of runs")
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directories (made by landiff train; "
                        "landiff compare adds the metrics)")
    parser.add_argument("--out", required=True, metavar="DIR", help="report folder: report.html, report.md, PNGs")
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from landiff.report import build_report

    files = build_report(args.runs, args.out)
    print(files.html)
    return 0
