"""Where "has not learned the data yet" starts: SWD as a multiple of the real-vs-real floor, measured on
image sources that have learned nothing, and on trained runs stopped early and late.

    python benchmarks/learned_threshold.py --runs RUN,RUN,… --n 256   # the tables of RESULTS.md ("learned" line)
    python benchmarks/learned_threshold.py --ref bench-runs/skylines-heldout --runs …   # another image set
    python benchmarks/learned_threshold.py --quick           # seconds: the pipeline end to end (CI)

The report (src/landiff/report/verdict.py) places each run on a log scale from the real-vs-real floor
(SWD between two sets of real images at the same n: position 0) to the noise ceiling (SWD of uniform
noise against the same reference: position 1), and labels a run at ``NOT_LEARNED_POSITION`` or beyond
"has not learned the data yet", declaring no winner among such runs. This table shows every source's
multiple of the floor and its position, at the n asked for. The sources that have learned nothing:

- ``uniform noise``: every pixel uniform in 0..255 (the ceiling; compare measures the same images);
- ``grey noise``: N(128, 40²) per pixel, clipped (what a diffusion sampler draws from an untrained net);
- ``mean colour``: each image filled with the mean colour of one held-out image (only the colour
  statistics learned, no structure);
- ``4 px blur``: held-out images downsampled to 4×4 and back (the coarse layout, nothing finer);
- ``8 px blur``: the same at 8×8 (layout and large shapes: a model that has started to learn);

and each ``--runs`` run's latest checkpoint, sampled with landiff's default sampler at the same seeds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import RESULTS, append_results  # noqa: E402


def blurred(images: np.ndarray, size: int) -> np.ndarray:
    """Images reduced to ``size``×``size`` by area averaging and scaled back with nearest-neighbour."""
    n, h, w, c = images.shape
    small = images.reshape(n, size, h // size, size, w // size, c).mean(axis=(2, 4))
    return np.repeat(np.repeat(small, h // size, axis=1), w // size, axis=2).round().astype(np.uint8)


def learned_nothing(real: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    from landiff.metrics.swd import uniform_noise

    rng = np.random.default_rng(seed)
    shape = real.shape
    mean_colour = np.broadcast_to(real.mean(axis=(1, 2), keepdims=True), shape).round().astype(np.uint8)
    return {
        "uniform noise": uniform_noise(real, seed),
        "grey noise": np.clip(rng.normal(128, 40, shape), 0, 255).round().astype(np.uint8),
        "mean colour": mean_colour,
        "4 px blur": blurred(real, 4),
        "8 px blur": blurred(real, 8),
    }


def run_samples(run: str, n: int) -> tuple[np.ndarray, str]:
    from landiff.generate import generate
    from landiff.runs.load import load_run

    loaded = load_run(run, device="cpu")
    images = generate(loaded, list(range(n))).images
    return images, f"{loaded.config.model} {loaded.config.preset}, step {loaded.state.step}"


def measure(sources: dict[str, tuple[np.ndarray, str]], reference: np.ndarray, floor: float, seed: int,
            grids: Path | None) -> list[str]:
    """One table row per source: SWD, its multiple of the floor and its position floor → noise."""
    import math

    from landiff.grid import save_grid
    from landiff.metrics.swd import sliced_wasserstein, uniform_noise

    ceiling = sliced_wasserstein(uniform_noise(reference, seed), reference, seed=seed, repeats=3).mean
    rows = []
    for k, (name, (images, what)) in enumerate(sources.items()):
        swd = sliced_wasserstein(images, reference, seed=seed, repeats=3)
        position = math.log(swd.mean / floor) / math.log(ceiling / floor)
        rows.append(f"| {name} | {what} | {swd.mean:.1f} ± {swd.std:.1f} | {swd.mean / floor:.1f}× | {position:.2f} |")
        print(rows[-1], flush=True)
        if grids is not None:
            grids.mkdir(parents=True, exist_ok=True)
            save_grid(images[:64], grids / f"{k:02d}-{name.replace(' ', '-')}.png", columns=8)
    return rows


def main() -> None:
    from landiff.metrics.io import load_reference
    from landiff.metrics.swd import sliced_wasserstein
    from landiff.report.verdict import NOT_LEARNED_POSITION

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="", help="comma-separated run directories (32 px)")
    parser.add_argument("--ref", default="synthetic", help="held-out real images (default: the built-in landscapes)")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("--grids", type=Path, default=None, help="also save a grid of each source's first 64 images here")
    args = parser.parse_args()
    n = 32 if args.quick else args.n
    both = load_reference(args.ref, (32, 32), 2 * n, seed=args.seed, split="heldout").images
    reference, second = both[:n], both[n:]
    floor = sliced_wasserstein(second, reference, seed=args.seed, repeats=3)
    sources = {name: (images, "real images, blurred" if "blur" in name else "learned nothing")
               for name, images in learned_nothing(second, args.seed).items()}
    for run in filter(None, args.runs.split(",")):
        sources[Path(run).name] = run_samples(run, n)
    rows = measure(sources, reference, floor.mean, args.seed, args.grids)
    text = "\n".join([
        f"## \"Has not learned the data yet\": where runs sit between the floor and noise, n = {n} "
        f"({time.strftime('%Y-%m-%d')})", "",
        f"`python benchmarks/learned_threshold.py --ref {args.ref} --n {n} --runs {args.runs or '…'}` (32 px, SWD ×10³ of "
        f"{n} images against {n} held-out ones, 3 repeats; position = ln(SWD / floor) / ln(noise / floor)). The report "
        f"labels a run at position {NOT_LEARNED_POSITION:g} or beyond \"has not learned the data yet\".",
        "", "| source | what | SWD | / floor | position |", "|---|---|---:|---:|---:|",
        f"| real vs real (the floor) | real images | {floor.mean:.1f} ± {floor.std:.1f} | 1.0× | 0 |", *rows])
    print(text)
    if not args.quick and not args.no_append:
        append_results(RESULTS, text)


if __name__ == "__main__":
    main()
