"""What every benchmark script shares: timing a call, and appending a table to RESULTS.md."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device, warmup: int = 1,
                   give_up: float = float("inf")) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls (at least one).

    CUDA work is synchronised before and after each call, so the time covers the kernels, not just
    their launch. When the first call already takes longer than ``give_up`` (a mode far slower than
    the best one), that call's time is returned without repeats.
    """

    def timed() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    first = timed()
    if first > give_up:
        return first
    for _ in range(warmup - 1):
        timed()
    return statistics.median([timed() for _ in range(repeats)])


def append_results(path: Path, text: str) -> None:
    """Appends ``text`` (a Markdown section) to ``path`` after a blank line."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("\n" + text.rstrip("\n") + "\n")


def training_parser(doc: str, out: str, steps: int) -> argparse.ArgumentParser:
    """The options every train-then-measure benchmark shares: data, held-out reference, steps, seed,
    sample count, run folder, ``--quick`` (CI's seconds-long check) and ``--no-append``."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--ref", default=None, help="held-out images (default: the synthetic held-out split)")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-append", action="store_true")
    return parser
