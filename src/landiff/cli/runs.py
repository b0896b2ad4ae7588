"""``landiff runs``: a table of every run directory under a folder (recursively), or the same as JSON.

    landiff runs                          # the runs under ./runs, by name
    landiff runs /work/study/runs --sort swd
    landiff runs runs --json | jq '.[] | select(.state == "stopped") | .name'

One row per run: its name (path under DIR), family, preset, resolution, step / target, images seen, training
time, last loss, the latest SWD / FID / NLL / held-out accuracy with the checkpoint step each measured, and its
state (finished, training, stopped, no checkpoint, broken with the reason). Only JSON files and safetensors headers are
read (landiff.runs.inventory), so listing fifty runs takes a fraction of a second. A DIR without runs prints
one line and exits 0 (``[]`` with --json); a DIR that does not exist is refused (exit 2).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from typing import Any

from landiff.options import Spec, check_input_dir
from landiff.runs.inventory import COLUMNS, STATES, Measurement, RunRecord, list_runs, sort_runs

DEFAULT_DIR = "runs"
STALE_MARK = "*"
# Metric columns left out of the table when no run listed has the metric (the JSON always has every key).
OPTIONAL_COLUMNS = ("fid", "nll", "accuracy")
HEADERS = {"name": "name", "family": "family", "preset": "preset", "resolution": "px", "step": "step/target",
           "images": "images", "time": "time", "loss": "loss", "swd": "SWD", "fid": "FID", "nll": "NLL b/d",
           "accuracy": "acc", "state": "state"}
RIGHT_ALIGNED = frozenset({"resolution", "step", "images", "time", "loss", "swd", "fid", "nll", "accuracy"})

DIR_SPEC = Spec(
    "dir", "path", "folder to list: every run directory at any depth below it (a study's OUT/runs/* included), or "
    "a run directory itself", default=DEFAULT_DIR, metavar="DIR",
    details="A run directory is a folder holding config.json, checkpoints/ or stats.jsonl. Nothing inside a run "
            "(checkpoints/, ema-snapshots/, samples/, previous-* of --restart) is listed as a run of its own; hidden "
            "folders are skipped and symbolic links to folders are not followed. A DIR that does not exist or is a "
            "file is refused (exit 2); one without runs prints one line (or [] with --json) and exits 0.",
)
SORT_SPEC = Spec(
    "--sort", "choice", "column to order the runs by: names A to Z, losses, SWD, FID and NLL lowest first, "
    "resolution, step, images, time and accuracy highest first, state as finished, training, stopped, no checkpoint, "
    "broken; runs without the value last",
    default="name", choices=COLUMNS, metavar="COLUMN",
    details=f"One of {', '.join(COLUMNS)}. Ties are in name order. The order is the same with --json.",
)
JSON_SPEC = Spec(
    "--json", "switch", "print a JSON array instead of the table: one object per run, in the --sort order",
    details="Every object has the same keys (name, path, family, preset, resolution, step, checkpoint, target_steps, "
            "target_minutes, images_seen, train_seconds, loss, loss_d, loss_g, loss_step, swd, fid, nll, accuracy, "
            "state, note) with plain values: numbers unformatted (seconds, images, SWD x10^3, accuracy in [0, 1]), "
            "null where a run has no value. swd, fid, nll and accuracy are null or an object {value, spread, step, "
            "latest, source}: step is the checkpoint step measured (null if no file names it), latest whether that "
            "is the run's latest checkpoint. state is finished, training, stopped, no-checkpoint or broken; note "
            "says why a run is broken, which process trains it, or that a stopped run's last loss is NaN. With no "
            "runs the output is [].",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``runs``."""
    parser = subparsers.add_parser(
        "runs", help="list the run directories under a folder: progress, latest metrics, state",
        description="a table (or JSON) of every run under a folder: family, preset, step / target, images seen, "
                    "training time, last loss, latest SWD / FID / NLL / accuracy with the step measured, and its state")
    DIR_SPEC.add_to(parser)
    SORT_SPEC.add_to(parser)
    JSON_SPEC.add_to(parser)
    parser.set_defaults(func=run_runs)


def run_runs(args: argparse.Namespace) -> int:
    root = check_input_dir(args.dir, "DIR", "folder that holds run directories (made by landiff train)")
    records = sort_runs(list_runs(root), args.sort)
    if args.json:
        text = json.dumps([_finite(record.to_json()) for record in records], indent=2, allow_nan=False)
    elif not records:
        text = (f"no run directories under {root} (a run holds config.json, checkpoints/ or stats.jsonl; "
                "landiff train makes one)")
    else:
        text = format_table(records)
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `landiff runs | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the flush at exit cannot fail again
    return 0


def _finite(value: Any) -> Any:
    """``value`` with NaN and ±inf (a diverged loss) as None: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------- the table
def format_table(records: list[RunRecord]) -> str:
    """The aligned table of ``records`` (in their order), a legend line when needed and a count of states."""
    columns = [c for c in COLUMNS if c not in OPTIONAL_COLUMNS or any(getattr(r, c) is not None for r in records)]
    rows = [[HEADERS[c] for c in columns]] + [[CELLS[c](r) for c in columns] for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = []
    for row in rows:
        cells = [cell.rjust(w) if c in RIGHT_ALIGNED else cell.ljust(w)
                 for c, cell, w in zip(columns, row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    if any(m is not None and m.latest is False for r in records for m in (r.swd, r.fid, r.nll, r.accuracy)):
        lines.append(f"{STALE_MARK} measured on an earlier checkpoint than the run's latest; re-run landiff eval / compare")
    counts = {state: sum(r.state == state for r in records) for state in STATES}
    lines.append(f"{len(records)} run{'s' if len(records) != 1 else ''}: "
                 + ", ".join(f"{n} {state.replace('-', ' ')}" for state, n in counts.items() if n))
    return "\n".join(lines)


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def _target(record: RunRecord) -> str:
    step = _text(record.step)
    if record.target_minutes is not None:
        return f"{step}/{_minutes(record.target_minutes)} min"
    return f"{step}/{_text(record.target_steps)}"


def _minutes(minutes: float) -> str:
    return f"{minutes:.0f}" if minutes >= 10 else f"{minutes:.2f}".rstrip("0").rstrip(".")


def _count(n: int | None) -> str:
    if n is None:
        return "-"
    if n < 10_000:
        return str(n)
    return f"{n / 1e3:.1f}k" if n < 1_000_000 else f"{n / 1e6:.2f}M"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _loss(record: RunRecord) -> str:
    if record.loss is not None:
        return f"{record.loss:.4g}"
    if record.loss_d is not None or record.loss_g is not None:
        return f"D {_number(record.loss_d, '.3f')} G {_number(record.loss_g, '.3f')}"
    return "-"


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _measured(spec: str) -> Callable[[Measurement | None], str]:
    """A metric cell: the value and ``@step`` of the checkpoint it measured (``*``: not the latest; ``?``: unknown)."""
    def cell(measured: Measurement | None) -> str:
        if measured is None:
            return "-"
        step = "?" if measured.step is None else str(measured.step)
        return f"{format(measured.value, spec)} @{step}{STALE_MARK if measured.latest is False else ''}"
    return cell


def _state(record: RunRecord) -> str:
    state = record.state.replace("-", " ")
    return f"{state}: {record.note}" if record.note else state


_SWD, _FID, _NLL, _ACC = _measured(".1f"), _measured(".1f"), _measured(".3f"), _measured(".1%")
CELLS: dict[str, Callable[[RunRecord], str]] = {
    "name": lambda r: r.name, "family": lambda r: _text(r.family), "preset": lambda r: _text(r.preset),
    "resolution": lambda r: _text(r.resolution), "step": _target, "images": lambda r: _count(r.images_seen),
    "time": lambda r: _duration(r.train_seconds), "loss": _loss, "swd": lambda r: _SWD(r.swd),
    "fid": lambda r: _FID(r.fid), "nll": lambda r: _NLL(r.nll), "accuracy": lambda r: _ACC(r.accuracy),
    "state": _state,
}
