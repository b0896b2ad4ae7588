"""The study's data, written once under ``OUT/data``: D, its three D′ variants and held-out real images.

Layout::

    OUT/data/D/images/000000.png …        D as PNGs (file name = index in D)
    OUT/data/D/prepared/                   the same, prepared (what the runs train on: --data)
    OUT/data/<kind>/…                      replace / remove / duplicate, plus perturbation.json
    OUT/data/heldout.npz                   2·n held-out real images (reference + real-vs-real floor)
    OUT/data/layout.json                   written last: marks the data complete

Sources. ``synthetic``: D is images 0…N−1 of the built-in landscapes (data seed ``data_seed``), the
replacement pool the next images N, N+1, …, and the reference the landscapes' held-out split.
An image folder or prepared dataset: its images (resized and centre-cropped to the resolution) are
shuffled with ``data_seed``; the first 2·n' are held out (n' = min(n, M/6) for a folder of M images),
D takes the next ones and the replacement pool the rest, so replacements are images of the folder
that D does not contain.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from landiff.data import prepare_folder
from landiff.data.synthetic import SyntheticLandscapes
from landiff.errors import UserError
from landiff.metrics.io import load_reference, read_npz
from landiff.runs.files import atomic_write, atomic_write_text
from landiff.workflows.study.options import StudyOptions
from landiff.workflows.study.perturb import KINDS, apply_perturbation, changed_count, make_perturbation

LAYOUT_NAME = "layout.json"
VARIANT_NAMES = ("D", *KINDS)


@dataclass(frozen=True)
class DataLayout:
    """Where the study's data is and how much of it there is.

    Attributes:
        root: ``OUT/data``.
        n_images: images in D.
        reference_n: held-out images used as the reference (as many more give the real-vs-real floor).
        pool: images outside D available as replacements.
        source: where the images came from, in words.
    """

    root: Path
    n_images: int
    reference_n: int
    pool: int
    source: str

    def prepared(self, variant: str) -> Path:
        """The prepared dataset of ``variant`` (``D``, ``replace``, ``remove``, ``duplicate``)."""
        return self.root / variant / "prepared"

    def images(self, variant: str) -> Path:
        return self.root / variant / "images"

    @property
    def heldout(self) -> Path:
        return self.root / "heldout.npz"

    def perturbation(self, variant: str) -> Path:
        return self.root / variant / "perturbation.json"

    def reference_images(self) -> np.ndarray:
        """The first ``reference_n`` held-out images (N, H, W, 3) uint8."""
        return read_npz(self.heldout)[: self.reference_n]


def read_layout(out: Path) -> DataLayout | None:
    """The layout of ``out/data`` when it is complete, else None."""
    path = out / "data" / LAYOUT_NAME
    if not path.is_file():
        return None
    values = json.loads(path.read_text(encoding="utf-8"))
    return DataLayout(root=out / "data", n_images=int(values["n_images"]), reference_n=int(values["reference_n"]),
                      pool=int(values["pool"]), source=str(values["source"]))


@dataclass(frozen=True)
class SourceImages:
    """D's images, the replacement pool and the held-out images, (N, H, W, 3) uint8 each."""

    train: np.ndarray
    pool: np.ndarray
    heldout: np.ndarray
    source: str


def _synthetic(options: StudyOptions) -> SourceImages:
    n, k = options.images, changed_count(options.images, options.fraction)
    dataset = SyntheticLandscapes(n=n + k, resolution=options.resolution, seed=options.data_seed)
    images = dataset.render(range(n + k))[0]
    heldout = load_reference("synthetic", (options.resolution,) * 2, 2 * options.n, data_seed=options.data_seed,
                             split="heldout").images
    what = (f"built-in landscapes, data seed {options.data_seed}: D = images 0..{n - 1}, replacements {n}..{n + k - 1}, "
            f"reference = held-out split images 0..{2 * options.n - 1}")
    return SourceImages(images[:n], images[n:], heldout, what)


def split_folder(count: int, options: StudyOptions) -> tuple[int, int, int]:
    """(held-out, D, pool) sizes for a folder of ``count`` images (module docstring).

    Raises:
        UserError: too few images for a D of 16 plus its replacements and a held-out reference.
    """
    heldout = 2 * min(options.n, count // 6)
    d = min(options.images, math.floor((count - heldout) / (1 + options.fraction)))
    if heldout < 8 or d < 16 or count - heldout - d < changed_count(d, options.fraction):
        raise UserError(f"--data {options.data!r} has {count} usable images; the study needs at least about 25 (a D of "
                        "16, its replacements and 8 held-out images), and hundreds for useful error bars")
    return heldout, d, count - heldout - d


def _folder(options: StudyOptions) -> SourceImages:
    everything = load_reference(options.data, (options.resolution,) * 2, None, seed=options.data_seed)
    order = np.random.default_rng([options.data_seed, 5]).permutation(len(everything))
    heldout, d, _ = split_folder(len(order), options)
    images = everything.images[order]
    what = (f"{options.data} ({len(order)} images at {options.resolution} px, shuffled with seed {options.data_seed}): "
            f"{heldout} held out, D = {d}, the other {len(order) - heldout - d} are replacements")
    return SourceImages(images[heldout : heldout + d], images[heldout + d :], images[:heldout], what)


def _write_pngs(images: np.ndarray, folder: Path, keep: np.ndarray | None = None) -> None:
    """PNG ``NNNNNN.png`` per image; ``keep`` names the D index of each row (default 0..N−1)."""
    folder.mkdir(parents=True, exist_ok=True)
    indices = np.arange(len(images)) if keep is None else keep
    width = max(6, len(str(int(indices.max()))))
    for index, image in zip(indices, images, strict=True):
        Image.fromarray(image).save(folder / f"{int(index):0{width}d}.png")


def _write_variant(root: Path, name: str, images: np.ndarray, options: StudyOptions, keep: np.ndarray | None) -> None:
    _write_pngs(images, root / name / "images", keep)
    prepare_folder(root / name / "images", options.resolution, root / name / "prepared", workers=1)


def prepare_data(out: Path, options: StudyOptions, log: Callable[[str], None] = print) -> DataLayout:
    """Writes ``out/data`` (module docstring) unless a complete one is there; returns its layout.

    An incomplete ``out/data`` (no layout.json: the study was killed while writing it) is removed
    and written again; no run trains before the data is complete, so nothing depends on it yet.
    """
    layout = read_layout(out)
    if layout is not None:
        return layout
    root = out / "data"
    if root.exists():
        shutil.rmtree(root)
    source = _synthetic(options) if options.data == "synthetic" else _folder(options)
    log(f"data: {source.source}")
    _write_variant(root, "D", source.train, options, None)
    for kind in KINDS:
        p = make_perturbation(kind, len(source.train), options.fraction, options.data_seed, pool_size=len(source.pool))
        keep = np.setdiff1d(np.arange(p.n), np.array(p.changed)) if kind == "remove" else None
        _write_variant(root, kind, apply_perturbation(p, source.train, source.pool), options, keep)
        atomic_write_text(root / kind / "perturbation.json", p.to_json())
        log(f"data: D-{kind}: {len(p.changed)} of {p.n} images changed ({p.n_after} images)")
    atomic_write(root / "heldout.npz", lambda tmp: _save_npz(tmp, source.heldout))
    layout = DataLayout(root=root, n_images=len(source.train), reference_n=len(source.heldout) // 2,
                        pool=len(source.pool), source=source.source)
    values = {k: v for k, v in asdict(layout).items() if k != "root"}
    atomic_write_text(root / LAYOUT_NAME, json.dumps(values, indent=1) + "\n")
    return layout


def _save_npz(path: Path, images: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, images=images)
