"""Data-loading throughput: an image folder read directly vs its prepared (memory-mapped) cache.

Generates ~500 JPEGs (256 px, smooth colour fields plus grain, like photos compress), then
times one pass of a DataLoader over ``ImageFolderDataset`` and over ``PreparedDataset`` at
64 px with 0 and 2 workers, prints a table and appends it to benchmarks/RESULTS.md under
"## Data loading throughput" (``--no-record`` to skip that).

    .venv/bin/python benchmarks/bench_data.py
    .venv/bin/python benchmarks/bench_data.py --n 200 --size 32 --no-record
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from landiff.data import ImageFolderDataset, PreparedDataset, prepare_folder, scan_folder

RESULTS = Path(__file__).with_name("RESULTS.md")


@dataclass(frozen=True)
class Row:
    dataset: str
    workers: int
    images_per_s: float


def make_folder(root: Path, n: int, source: int, seed: int = 0) -> None:
    """Writes ``n`` JPEGs of ``source`` x ``source`` pixels into two class subfolders."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:source, 0:source] / source
    for k in range(n):
        freq, phase = rng.uniform(1, 6, size=(3, 2)), rng.uniform(0, 6.3, size=3)
        channels = [np.sin(freq[c, 0] * 6.3 * xx + freq[c, 1] * 6.3 * yy + phase[c]) for c in range(3)]
        pixels = 127.5 + 100 * np.stack(channels, -1) + rng.normal(0, 8, (source, source, 3))
        folder = root / ("even" if k % 2 == 0 else "odd")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{k:05d}.jpg", quality=90)


def throughput(dataset: Dataset, workers: int, batch_size: int) -> float:
    """Images per second over one full pass of a DataLoader (worker start-up included)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    count = sum(images.shape[0] for images, _ in loader)
    return count / (time.perf_counter() - start)


def timed(label: str, fn):
    """Runs ``fn()``; returns (its result, seconds) and prints the time."""
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    print(f"{label}: {seconds:.2f} s", flush=True)
    return result, seconds


def run(args: argparse.Namespace) -> tuple[list[Row], dict[str, float]]:
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        _, timings["generate"] = timed(f"generate {args.n} JPEGs", lambda: make_folder(root, args.n, args.source))
        scan, timings["scan"] = timed("scan (verify every file)", lambda: scan_folder(root))
        folder = ImageFolderDataset(root, args.size, flip=True, scan=scan)
        _, timings["prepare"] = timed("prepare", lambda: prepare_folder(root, args.size, Path(tmp) / "prep", scan=scan))
        prepared = PreparedDataset(Path(tmp) / "prep", flip=True)
        rows = []
        for name, dataset in (("ImageFolderDataset", folder), ("PreparedDataset", prepared)):
            for workers in (0, 2):
                throughput(dataset, workers, args.batch)  # warm-up pass: page cache, imports
                rows.append(Row(name, workers, throughput(dataset, workers, args.batch)))
                print(f"{name:20s} workers={workers}: {rows[-1].images_per_s:9.0f} images/s", flush=True)
    return rows, timings


def table(rows: list[Row], timings: dict[str, float], args: argparse.Namespace) -> str:
    lines = [
        "## Data loading throughput",
        "",
        f"`{' '.join([Path(sys.executable).name, *sys.argv])}` — {datetime.date.today().isoformat()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f} at the end), "
        f"torch {torch.__version__}; {args.n} JPEGs "
        f"{args.source}x{args.source} px → {args.size}x{args.size}, batch {args.batch}, shuffle + flip, "
        "one pass after a warm-up pass.",
        "",
        "| dataset | DataLoader workers | images/s |",
        "|---|---:|---:|",
        *[f"| {r.dataset} | {r.workers} | {r.images_per_s:.0f} |" for r in rows],
        "",
        f"Scan (verify + sha256 of {args.n} files): {timings['scan']:.2f} s; "
        f"prepare (decode once into images.npy): {timings['prepare']:.2f} s.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="number of generated JPEGs")
    parser.add_argument("--source", type=int, default=256, help="side of the generated JPEGs, px")
    parser.add_argument("--size", type=int, default=64, help="model resolution, px")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the loaders do not use intra-op threads; keep timings comparable
    rows, timings = run(args)
    text = table(rows, timings, args)
    print("\n" + text)
    if not args.no_record:
        with RESULTS.open("a", encoding="utf-8") as out:
            if out.tell() > 0:  # another benchmark wrote first: keep a blank line between sections
                out.write("\n")
            out.write(text)


if __name__ == "__main__":
    main()
