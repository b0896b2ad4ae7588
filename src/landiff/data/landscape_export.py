"""Writing the procedural landscapes to disk (``landiff data synth``).

Layout of the output directory::

    DIR/day/000000.png, DIR/sunset/000001.png, ...   one subfolder per class
    DIR/params.jsonl    one line per image: index, file, class, label, params (floats rounded)
    DIR/synth.json      the settings, which also mark DIR as synth output

The subfolders are the scenes' palette classes (``label_by="class"``, the generator's own labels:
day, sunset, night, snow) or, with ``label_by="layout"``, their layout: :data:`LAYOUT_CLASSES`, a lake
or not × the horizon above or below the middle of its range (:func:`layout_class`). Every palette
occurs in every layout class, so a layout split is not told apart by colour, which makes it the
harder labelling for class-conditional work (guidance, class consistency).

Everything is written into a temporary sibling directory that replaces ``DIR`` only when
complete, so an interrupted run never leaves a half-written dataset behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from landiff.data.landscape_params import CLASSES, HORIZON_RANGE, LandscapeParams, params_to_json
from landiff.data.synthetic import HELDOUT_OFFSET, Split, SyntheticLandscapes
from landiff.errors import UserError
from landiff.runs.files import replace_dir

MARKER_NAME = "synth.json"
PARAMS_NAME = "params.jsonl"
_GENERATOR = "landiff data synth"
_BATCH = 256
LABEL_BY = ("class", "layout")
LAYOUT_CLASSES = ("lake-high", "lake-low", "land-high", "land-low")
HORIZON_MIDDLE = sum(HORIZON_RANGE) / 2  # the horizon's y splits "high" (y above it, smaller) from "low"


def layout_class(p: LandscapeParams) -> str:
    """The layout class of a landscape: ``lake`` or ``land`` (no lake), and ``high`` when its horizon
    line lies above :data:`HORIZON_MIDDLE` (y measured from the top, so a smaller y), else ``low``."""
    return f"{'lake' if p.lake else 'land'}-{'high' if p.horizon < HORIZON_MIDDLE else 'low'}"


@dataclass(frozen=True)
class SynthSummary:
    """What ``write_landscapes`` wrote."""

    out: str
    count: int
    per_class: dict[str, int]
    resolution: tuple[int, int]
    seconds: float


def is_synth_output(directory: Path) -> bool:
    """True if ``directory`` holds exactly what a previous ``landiff data synth`` wrote."""
    try:
        marker = json.loads((directory / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("generator") != _GENERATOR:
        return False
    expected_files = {MARKER_NAME, PARAMS_NAME}
    folders = LAYOUT_CLASSES if marker.get("label_by") == "layout" else CLASSES
    return all(
        (entry.name in expected_files and entry.is_file()) or (entry.name in folders and entry.is_dir())
        for entry in directory.iterdir()
    )


def write_landscapes(
    out: str | os.PathLike[str],
    n: int,
    size: int,
    *,
    classes: Sequence[str] | None = None,
    seed: int = 0,
    split: Split = "train",
    label_by: str = "class",
) -> SynthSummary:
    """Renders ``n`` landscapes at ``size`` px into ``out`` (see the module doc for the layout).

    ``label_by`` names the subfolders, i.e. the labels a folder loader reads: ``class`` (the
    palette classes) or ``layout`` (:data:`LAYOUT_CLASSES`; ``classes`` still picks the palettes drawn).

    Raises:
        UserError: ``out`` is a file, or a non-empty directory that is not synth output; an unknown ``label_by``.
    """
    if label_by not in LABEL_BY:
        raise UserError(f"--label-by {label_by!r}: choose one of {', '.join(LABEL_BY)}")
    start = time.perf_counter()
    target = Path(out).resolve()  # a name and a real parent to put the temporary sibling in
    _check_target(target)
    dataset = SyntheticLandscapes(n=n, resolution=size, seed=seed, classes=classes, split=split)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.synth-", dir=target.parent))
    try:
        per_class = _fill(tmp, dataset, label_by)
        settings = {
            "generator": _GENERATOR, "n": n, "size": size, "classes": dataset.classes, "seed": seed,
            "split": split, "heldout_offset": HELDOUT_OFFSET, "label_by": label_by,
        }
        (tmp / MARKER_NAME).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SynthSummary(str(target), n, per_class, (size, size), time.perf_counter() - start)


def _check_target(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise UserError(f"--out {str(target)!r} is a file; give a directory to create")
    if target.is_dir() and any(target.iterdir()) and not is_synth_output(target):
        raise UserError(
            f"--out {str(target)!r} is not empty and was not written by landiff data synth; "
            "give a new or empty directory"
        )


def _fill(directory: Path, dataset: SyntheticLandscapes, label_by: str) -> dict[str, int]:
    """Writes the PNGs and params.jsonl; returns the image count per folder."""
    width = max(6, len(str(len(dataset) - 1)))
    folders = LAYOUT_CLASSES if label_by == "layout" else dataset.classes
    per_class = {name: 0 for name in folders}
    with open(directory / PARAMS_NAME, "w", encoding="utf-8") as lines:
        for first in range(0, len(dataset), _BATCH):
            ks = range(first, min(first + _BATCH, len(dataset)))
            images, params = dataset.render(ks)
            for k, image, p in zip(ks, images, params, strict=True):
                folder = layout_class(p) if label_by == "layout" else p.cls
                if not per_class[folder]:
                    (directory / folder).mkdir()  # only classes that have images get a folder
                file = f"{folder}/{k:0{width}d}.png"
                Image.fromarray(image).save(directory / file)
                record = {"index": k, "file": file, "class": p.cls, "label": dataset.label(k)}
                if label_by == "layout":
                    record.update(layout=folder, layout_label=LAYOUT_CLASSES.index(folder))
                lines.write(json.dumps({**record, "params": params_to_json(p)}) + "\n")
                per_class[folder] += 1
    return {name: count for name, count in per_class.items() if count}
