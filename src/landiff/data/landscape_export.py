"""Writing the procedural landscapes to disk (``landiff data synth``).

Layout of the output directory::

    DIR/day/000000.png, DIR/sunset/000001.png, ...   one subfolder per class
    DIR/params.jsonl    one line per image: index, file, class, label, params (floats rounded)
    DIR/synth.json      the settings, which also mark DIR as synth output

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

from landiff.data.landscape_params import CLASSES, params_to_json
from landiff.data.synthetic import HELDOUT_OFFSET, Split, SyntheticLandscapes
from landiff.errors import UserError
from landiff.runs.files import replace_dir

MARKER_NAME = "synth.json"
PARAMS_NAME = "params.jsonl"
_GENERATOR = "landiff data synth"
_BATCH = 256


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
    return all(
        (entry.name in expected_files and entry.is_file()) or (entry.name in CLASSES and entry.is_dir())
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
) -> SynthSummary:
    """Renders ``n`` landscapes at ``size`` px into ``out`` (see the module doc for the layout).

    Raises:
        UserError: ``out`` is a file, or a non-empty directory that is not synth output.
    """
    start = time.perf_counter()
    target = Path(out).resolve()  # a name and a real parent to put the temporary sibling in
    _check_target(target)
    dataset = SyntheticLandscapes(n=n, resolution=size, seed=seed, classes=classes, split=split)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.synth-", dir=target.parent))
    try:
        per_class = _fill(tmp, dataset)
        settings = {
            "generator": _GENERATOR, "n": n, "size": size, "classes": dataset.classes, "seed": seed,
            "split": split, "heldout_offset": HELDOUT_OFFSET,
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


def _fill(directory: Path, dataset: SyntheticLandscapes) -> dict[str, int]:
    """Writes the PNGs and params.jsonl; returns the image count per class."""
    width = max(6, len(str(len(dataset) - 1)))
    per_class = {name: 0 for name in dataset.classes}
    with open(directory / PARAMS_NAME, "w", encoding="utf-8") as lines:
        for first in range(0, len(dataset), _BATCH):
            ks = range(first, min(first + _BATCH, len(dataset)))
            images, params = dataset.render(ks)
            for k, image, p in zip(ks, images, params, strict=True):
                if not per_class[p.cls]:
                    (directory / p.cls).mkdir()  # only classes that have images get a folder
                file = f"{p.cls}/{k:0{width}d}.png"
                Image.fromarray(image).save(directory / file)
                record = {"index": k, "file": file, "class": p.cls, "label": dataset.label(k)}
                lines.write(json.dumps({**record, "params": params_to_json(p)}) + "\n")
                per_class[p.cls] += 1
    return per_class
