"""Non-leaking augmentation on a small data set: the same recipe trained on 1,000 images with and without it.

    python benchmarks/augment_small.py                          # built-in landscapes, ~20 min on 2 cores
    python benchmarks/augment_small.py --data bench-runs/skylines --ref bench-runs/skylines-heldout
    python benchmarks/augment_small.py --quick                  # seconds: CI's check

Each entrant is the demo's diffusion recipe (landiff.workflows.pairing.diffusion_recipe, 32 px)
trained for ``--steps`` optimiser steps (the budget race's 10 minutes by default, so every image is
seen about 47 times at batch 32) on the first ``--subset`` images, with ``--augment`` p of 0 (off)
and each given value (EDM App. C.4; landiff.train.augment). Quality is multi-scale SWD ×10³ of
``--n`` samples (landiff's default sampler) against ``--n`` held-out images that no entrant saw.
SWD cannot tell a copied training image from a new one, and on 1,000 images a model can copy, so
the table also gives each entrant's median memorisation ratio: distance from a sample to its
nearest training image over the distance to its nearest held-out image (landiff.metrics.memorization;
about 1 for new images, far below 1 for copies) and how many samples are flagged as copies.
A step count instead of a clock keeps the entrants equal under any machine load; augmentation's
own cost (one resampling per image) is reported as the img/s of the training log.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import RESULTS, append_results, training_parser  # noqa: E402

BUDGET_RACE_STEPS = 1456


def subset_folder(source: Path, count: int, out: Path) -> Path:
    """A folder of symbolic links to the first ``count`` images of ``source`` (sorted paths)."""
    files = sorted(p for p in source.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))[:count]
    if len(files) < count:
        raise SystemExit(f"--data {source}: {len(files)} images, fewer than --subset {count}")
    out.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(files):
        link = out / f"{i:06d}{path.suffix.lower()}"
        if not link.exists():
            link.symlink_to(path.resolve())
    return out


def main() -> None:
    parser = training_parser(__doc__, "bench-runs/augment-small", BUDGET_RACE_STEPS)
    parser.add_argument("--subset", type=int, default=1000)
    parser.add_argument("--augment", default="0.12,0.25", help="p values to try beside 0")
    args = parser.parse_args()
    if args.quick:
        args.subset, args.steps, args.n, args.no_append, args.augment = 16, 2, 8, True, "0.5"

    from landiff.generate import generate
    from landiff.metrics.evaluate import evaluate_swd
    from landiff.metrics.io import ImageSet, load_reference
    from landiff.metrics.memorization import memorization
    from landiff.train import load_run, train
    from landiff.workflows.pairing import diffusion_recipe

    data = args.data if args.data == "synthetic" else str(subset_folder(Path(args.data), args.subset, args.out / "data"))
    size = 16 if args.quick else 32
    reference = ImageSet(load_reference(args.ref or "synthetic", (size, size), args.n, data_seed=args.seed,
                                        split="heldout").images, "held-out")
    train_images = load_reference(data, (size, size), args.subset if data == "synthetic" else None,
                                  data_seed=args.seed, split="train").images
    rows, start = [], time.perf_counter()
    for p in [0.0, *(float(v) for v in args.augment.split(","))]:
        config = diffusion_recipe(data, size, 0.0)
        # measured with the first wave's tiny recipe (constant LR, one fixed EMA); pinned to stay reproducible
        config = dataclasses.replace(config, train_steps=args.steps, max_minutes=0.0, checkpoint_every=args.steps,
                                     preview_count=0, synthetic_n=args.subset, seed=args.seed, augment=p,
                                     posthoc_ema=False, ema_length=0.0, optim=dataclasses.replace(config.optim, decay="none"))
        if args.quick:
            config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, batch=4))
        run = args.out / f"p{p:g}-seed{args.seed}"
        train(config, run, log=lambda _: None)
        loaded = load_run(run, device="cpu")
        images = generate(loaded, list(range(args.n))).images
        swd = evaluate_swd(ImageSet(images, "samples"), reference).estimates["swd"]
        memo = memorization(images, train_images, reference.images)
        rows.append((p, float(swd.value), float(swd.std), float(np.median(memo.ratio)), len(memo.flagged),
                     loaded.state.seconds))
        print(f"augment {p:g}: SWD {swd.value:.1f}", file=sys.stderr, flush=True)
    base = rows[0][1]
    text = "\n".join([
        f"## Non-leaking augmentation on {args.subset} images ({args.data})",
        "",
        f"`python benchmarks/augment_small.py {' '.join(sys.argv[1:])}` — {time.strftime('%Y-%m-%d %H:%M')}; "
        f"{args.steps} steps of the demo's diffusion recipe at batch 32, seed {args.seed}; {args.n} samples vs "
        f"{args.n} held-out images; {time.perf_counter() - start:.0f} s.",
        "",
        f"| --augment | SWD ×10³ | ratio to no augmentation | median memorisation ratio | flagged copies of {args.n} "
        "| training seconds |",
        "|---:|---:|---:|---:|---:|---:|",
        *(f"| {p:g} | {swd:.1f} ± {std:.1f} | {swd / base:.2f} | {ratio:.2f} | {flagged} | {sec:.0f} |"
          for p, swd, std, ratio, flagged, sec in rows),
    ])
    print(text)
    if not args.no_append:
        append_results(RESULTS, text)


if __name__ == "__main__":
    main()
