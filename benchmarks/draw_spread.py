"""How much one SWD number depends on which samples were drawn: disjoint sample-seed draws of trained runs.

    python benchmarks/draw_spread.py --runs bench-runs/recipes/synthetic/tiny-cosine-8736-seed0 --draws 4
    python benchmarks/draw_spread.py --quick                     # seconds: CI's check (a 2-step run)

Every comparison in RESULTS.md measures ``--n`` samples of seeds 0 … n−1 against ``--n`` held-out
images; the ± it prints is the spread over the metric's random projections, not over which samples
were drawn. This script measures each run (its latest checkpoint, its own sampling EMA, landiff's
default sampler) with ``--draws`` disjoint sets of sample seeds (k·n … k·n + n − 1) against the same
held-out reference, and, as the yardstick, ``--draws`` disjoint sets of real training images against
it (real vs real). It reports multi-scale SWD ×10³ per draw with its 32 px and 16 px levels, the
mean ± s.d. over draws and the mean pixel value of each draw (0–255).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import RESULTS, append_results  # noqa: E402


def measure_draws(images_of, reference, draws: int) -> list[tuple[float, float, float, float]]:
    """(SWD, SWD 32 px, SWD 16 px, mean pixel) of ``images_of(k)`` for k < draws."""
    from landiff.metrics.evaluate import evaluate_swd
    from landiff.metrics.io import ImageSet

    rows = []
    for k in range(draws):
        images = images_of(k)
        estimates = evaluate_swd(ImageSet(images, f"draw {k}"), reference).estimates
        levels = sorted((name for name in estimates if name != "swd"), key=lambda name: -int(name.split("_")[1]))
        coarse = [float(estimates[name].value) for name in levels]
        rows.append((float(estimates["swd"].value), coarse[0], coarse[-1], float(np.asarray(images, np.float32).mean())))
    return rows


def row(label: str, values: list[tuple[float, float, float, float]]) -> str:
    swd = [v[0] for v in values]
    cells = " | ".join(f"{v[0]:.1f} ({v[1]:.1f} / {v[2]:.1f}; {v[3]:.0f})" for v in values)
    spread = float(np.std(swd, ddof=1)) if len(swd) > 1 else float("nan")
    return f"| {label} | {cells} | {np.mean(swd):.1f} ± {spread:.1f} | {min(swd):.1f}–{max(swd):.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="", help="run directories, comma-separated")
    parser.add_argument("--draws", type=int, default=4)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--ref", default=None, help="held-out images (default: the synthetic held-out split)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    if args.draws < 2:
        parser.error("--draws must be >= 2 (a spread needs two draws)")
    from landiff.generate import generate
    from landiff.metrics.io import ImageSet, load_reference
    from landiff.train import load_run

    runs = [Path(r) for r in args.runs.split(",") if r]
    if args.quick:
        runs, args.n, args.no_append = [quick_run()], 8, True
    if not runs:
        parser.error("--runs: give one or more run directories")
    start = time.perf_counter()
    reference = ImageSet(load_reference(args.ref or "synthetic", (32, 32), args.n, data_seed=0,
                                        split="heldout").images, "held-out")
    real = load_reference(args.ref or "synthetic", (32, 32), args.n * args.draws, data_seed=0, split="train").images
    rows = [row(f"real vs real ({'training' if args.ref is None else args.ref} images)",
                measure_draws(lambda k: real[k * args.n:(k + 1) * args.n], reference, args.draws))]
    for run in runs:
        loaded = load_run(run, device="cpu")
        rows.append(row(run.name, measure_draws(
            lambda k, loaded=loaded: generate(loaded, list(range(k * args.n, (k + 1) * args.n))).images,
            reference, args.draws)))
        print(rows[-1], file=sys.stderr, flush=True)
    text = "\n".join([
        f"## SWD over disjoint sample draws: {args.draws} draws of {args.n}",
        "",
        f"`python benchmarks/draw_spread.py {' '.join(sys.argv[1:])}` — {time.strftime('%Y-%m-%d %H:%M')}; 32 px; "
        f"each cell SWD ×10³ (32 px / 16 px level; mean pixel 0–255) of draw k (sample seeds k·{args.n} …) against "
        f"the same {args.n} held-out images; {time.perf_counter() - start:.0f} s.",
        "",
        "| run | " + " | ".join(f"draw {k}" for k in range(args.draws)) + " | mean ± s.d. | range |",
        "|---|" + "---|" * args.draws + "---:|---:|",
        *rows,
    ])
    print(text)
    if not args.no_append:
        append_results(RESULTS, text)


def quick_run() -> Path:
    """A 2-step tiny-GAN run in a temporary directory (CI's check of the script itself)."""
    import dataclasses
    import tempfile

    from landiff.runs.config import recipe
    from landiff.train import train

    config = recipe("dcgan")
    config = dataclasses.replace(config, resolution=32, synthetic_n=64, preview_count=0, train_steps=2,
                                 checkpoint_every=2, optim=dataclasses.replace(config.optim, batch=4),
                                 gan=dataclasses.replace(config.gan, ngf=8, ndf=8, z_dim=8))
    run = Path(tempfile.mkdtemp()) / "quick-gan"
    train(config, run, log=lambda _: None)
    return run


if __name__ == "__main__":
    main()
