"""``build_report``: run directories in, ``report.html`` + ``report.md`` + PNGs out.

A pure function of the run directories: it reads config.json, stats.jsonl and compare/ files and
never trains, samples or evaluates, so rebuilding gives the same report (no timestamps are added).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from landiff.errors import UserError
from landiff.report.collect import load_runs
from landiff.report.document import figure_sources
from landiff.report.html import render_html
from landiff.report.markdown import render_markdown
from landiff.report.sections import build_blocks
from landiff.runs.files import atomic_write_bytes, atomic_write_text

# The PNG names the report sections produce (report/sections.py): a rebuild removes the ones it did not
# produce this time, so a run whose samples are now left out cannot keep showing an old grid.
REPORT_PNG = re.compile(r"(real|losses|curve|sweep|(samples|preview|memorization)-\d+)\.png")


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`build_report` wrote."""

    html: Path
    markdown: Path
    images: tuple[Path, ...]


def build_report(runs: list[str | Path], out: str | Path) -> ReportFiles:
    """Writes ``out/report.html``, ``out/report.md`` and the PNGs both reference.

    Args:
        runs: run directories (each with config.json and/or compare/summary.json); any other piece
            may be missing and is then shown as "not measured".
        out: the report folder (created if needed); existing report files in it are replaced, and
            report PNGs of an earlier build that this one did not produce are removed.

    Raises:
        UserError: no runs, a path that is not a run directory, or ``out`` is a file.
    """
    if not runs:
        raise UserError("landiff report needs at least one run directory")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; pass a folder for the report")
    blocks, assets = build_blocks(load_runs(list(runs)))
    missing = [src for src in figure_sources(blocks) if src not in assets.files]
    if missing:  # a section referenced a PNG it did not produce: a bug, not a user mistake
        raise RuntimeError(f"report references PNGs that were not produced: {missing}")
    out.mkdir(parents=True, exist_ok=True)
    images = []
    for name, data in sorted(assets.files.items()):
        _publish(out / name, partial(atomic_write_bytes, data=data))
        images.append(out / name)
    _publish(out / "report.md", lambda path: atomic_write_text(path, render_markdown(blocks)))
    _publish(out / "report.html", lambda path: atomic_write_text(path, render_html(blocks)))
    for stale in out.iterdir():
        if REPORT_PNG.fullmatch(stale.name) and stale.name not in assets.files and stale.is_file():
            stale.unlink()
    return ReportFiles(html=out / "report.html", markdown=out / "report.md", images=tuple(images))


def _publish(path: Path, write: Callable[[Path], None]) -> None:
    """Writes atomically, then makes the file world-readable like any other written file (the
    temporary file behind the atomic rename is created owner-only), so the folder can be served."""
    write(path)
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)
