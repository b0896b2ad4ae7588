"""Throughput of the procedural landscape generator (images/s), 1 process and 2 worker processes.

Run::

    .venv/bin/python benchmarks/bench_landscapes.py            # ~30 s; appends to benchmarks/RESULTS.md
    .venv/bin/python benchmarks/bench_landscapes.py --quick    # ~5 s smoke run, prints only

Single process: ``render_batch`` on consecutive indices (the DataLoader path through
``SyntheticLandscapes.__getitems__`` does the same work). Two processes: a spawn-started pool,
warmed up before timing, each task rendering 256 images and returning them (pickling included).
The time to start the pool is not counted. Wall-clock rates drop when other programs load the
machine; the per-CPU-second rate of the single process is less sensitive to that.
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landiff.data.landscapes import render_batch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADING = "## Landscape generator throughput"
SIZES = (32, 64, 128)
TASK = 256  # images per pool task


@dataclass(frozen=True)
class Row:
    size: int
    images: int
    single: float  # images/s, one process, wall clock
    single_cpu: float  # images per CPU-second of that process (robust to other load)
    pool: float  # images/s, two worker processes, wall clock


def _render_task(args: tuple[int, int, int]) -> np.ndarray:
    start, count, size = args
    return render_batch(0, range(start, start + count), size)[0]


def _single(size: int, images: int) -> tuple[float, float]:
    """Images/s by the wall clock and per CPU-second of this process."""
    render_batch(1, range(64), size)  # warm-up: lerp tables, allocator
    wall, cpu = time.perf_counter(), time.process_time()
    render_batch(0, range(images), size)
    return images / (time.perf_counter() - wall), images / (time.process_time() - cpu)


def _pool(pool: multiprocessing.pool.Pool, size: int, images: int) -> float:
    tasks = [(start, min(TASK, images - start), size) for start in range(0, images, TASK)]
    start = time.perf_counter()
    done = sum(len(batch) for batch in pool.imap_unordered(_render_task, tasks))
    return done / (time.perf_counter() - start)


def measure(scale: float) -> list[Row]:
    counts = {32: 8000, 64: 4000, 128: 1000}
    rows = []
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        # Start and warm both workers first, so their imports do not overlap any measurement.
        pool.map(_render_task, [(10**6 + i * 64, 64, size) for size in SIZES for i in range(2)], chunksize=1)
        for size in SIZES:
            n = max(TASK, int(counts[size] * scale))
            rows.append(Row(size, n, *_single(size, n), _pool(pool, size, n)))
            r = rows[-1]
            print(f"{size:4d} px: {r.single:6.0f} images/s (1 process; {r.single_cpu:.0f} per CPU-second), "
                  f"{r.pool:6.0f} images/s (2 processes)")
    return rows


def markdown(rows: list[Row], command: str) -> str:
    date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        "", HEADING, "",
        f"`{command}` — {date}, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"load average {os.getloadavg()[0]:.1f} at the end",
        "", "| size | images | 1 process (img/s) | 1 process (img per CPU-s) | 2 processes (img/s) |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r.size} | {r.images} | {r.single:.0f} | {r.single_cpu:.0f} | {r.pool:.0f} |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images; print only, do not append")
    args = parser.parse_args()
    rows = measure(0.1 if args.quick else 1.0)
    if not args.quick:
        command = "python benchmarks/bench_landscapes.py " + " ".join(sys.argv[1:])
        with open(RESULTS, "a", encoding="utf-8") as results:
            results.write(markdown(rows, command.strip()))
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
