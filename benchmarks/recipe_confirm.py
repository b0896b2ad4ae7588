"""Confirming a recipe at the budget race's 10 minutes with several training seeds, beside the DCGAN.

    python benchmarks/recipe_confirm.py --data synthetic --seeds 0,1          # ~35 min on 2 cores
    python benchmarks/recipe_confirm.py --data bench-runs/skylines --ref bench-runs/skylines-heldout
    python benchmarks/recipe_confirm.py --minutes 3 --seeds 0,1               # the race's 3-minute point
    python benchmarks/recipe_confirm.py --gans dcgan,gan-strong               # both GAN presets
    python benchmarks/recipe_confirm.py --long 6 --seeds 0                    # one 60-minute run: the curve
    python benchmarks/recipe_confirm.py --quick                               # seconds: CI's check

Entrants, each trained once per seed in ``--seeds`` (the seed sets the init, the data order and the
noise), on the same data at 32 px:

* ``old``: the first wave's tiny recipe (preset ``tiny-v1``: v-prediction, cosine schedule, uniform
  t, constant LR 1e-3, fixed EMA of decay 0.999), trained for the race's 1456 diffusion steps
  (``recipe_screen.py``'s ``tiny`` variant; it also keeps post-hoc EMAs, which change nothing in
  training, so the same run gives the ``old+ema`` row: the old training sampled at ``--length``);
* ``new``: today's ``tiny`` preset (``recipe_screen.py``'s ``tiny-cosine``: the same with the LR
  annealed to 0 by a cosine over the run), sampled with its post-hoc EMA of σ_rel ``--length``;
* ``dcgan``: landiff's DCGAN recipe at 32 px for the race's 214,784 images (1678 steps of 128);
  ``--gans`` adds other GAN presets (e.g. ``gan-strong``) trained for the same steps: a GAN preset
  that costs more per step than the DCGAN gets the DCGAN's step count, which favours it (its img/s is
  recorded by ``benchmarks/gan_screen.py``).

Step and image counts stand in for the race's wall clock (what each entrant reached in its 10 minutes
on 2026-11-30), so the entrants stay equal under any machine load. ``--minutes M`` scales both step
counts to M of the race's minutes (3 → 437 diffusion and 503 GAN steps): every entrant, the
annealed recipe's cosine included, is then a run of that length, not a point along a longer one. Each is measured with
multi-scale SWD ×10³ of ``--n`` samples (diffusion: landiff's default sampler) against ``--n``
held-out images; the table gives every seed, the mean and half the range (the spread of two seeds),
and each entrant's ratio to the DCGAN's mean.

``--long K`` instead trains the ``tiny`` recipe for K × 1456 steps (K of the race's 10-minute budgets;
the cosine's horizon is the whole run) with a checkpoint at every multiple of 1456 steps, and reports
SWD with the fixed EMA and with the post-hoc EMA of ``--lengths`` at each checkpoint (each
reconstructed from the snapshots up to its step, as ``landiff sample --ckpt`` would); ``--draws D``
measures every point D times with disjoint sample seeds (0…n−1, n…2n−1, …) and reports mean ± s.d.
over the draws, the metric's spread at a fixed model; ``--final-only`` measures the last checkpoint
alone. Only the last
row is a K × 10-minute result; the earlier ones are points along its schedule, not yet annealed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import RESULTS, append_results  # noqa: E402
from recipe_screen import variant_config  # noqa: E402

DIFFUSION_STEPS = 1456  # the budget race's landiff entrant in 10 minutes (46,592 images at batch 32)
GAN_STEPS = 1678  # its DCGAN in 10 minutes: 214,784 images at batch 128


def gan_config(data: str, resolution: int, steps: int, seed: int, synthetic_n: int | None, preset: str = "dcgan"):
    from landiff.workflows.pairing import gan_recipe

    config = dataclasses.replace(gan_recipe(data, resolution, 0.0, preset=preset), train_steps=steps, max_minutes=0.0,
                                 checkpoint_every=steps, preview_count=0, seed=seed)
    return dataclasses.replace(config, synthetic_n=synthetic_n) if synthetic_n else config


def measure(run: Path | None, reference, n: int, ema_length: float | None, checkpoint: Path | None = None,
            draw: int = 0) -> float:
    """SWD ×10³ of ``n`` samples (seeds draw·n … draw·n + n − 1) of the run's latest checkpoint (or
    ``checkpoint``)."""
    from landiff.generate import generate
    from landiff.metrics.evaluate import evaluate_swd
    from landiff.metrics.io import ImageSet
    from landiff.train import load_run

    loaded = load_run(run, checkpoint=checkpoint, device="cpu", ema_length=ema_length)
    images = generate(loaded, list(range(draw * n, draw * n + n))).images
    return float(evaluate_swd(ImageSet(images, "samples"), reference).estimates["swd"].value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--ref", default=None, help="held-out images (default: the synthetic held-out split)")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--length", type=float, default=None,
                        help="post-hoc EMA σ_rel of the new entrant (default: the tiny preset's)")
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="the race's minutes to train for (step counts scaled from its 10)")
    parser.add_argument("--gans", default="dcgan", help="GAN presets, comma-separated (the first is the ratio's base)")
    parser.add_argument("--long", type=int, default=0, help="train K × 1456 steps and report the curve")
    parser.add_argument("--lengths", default="0.05,0.1", help="post-hoc σ_rel measured along --long's curve")
    parser.add_argument("--draws", type=int, default=1,
                        help="--long: measure each point with this many disjoint sets of sample seeds (mean ± s.d.)")
    parser.add_argument("--final-only", action="store_true", help="--long: measure only the run's last checkpoint")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("bench-runs"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    from landiff.metrics.io import ImageSet, load_reference
    from landiff.runs.config import recipe
    from landiff.train import train

    if not 0 < args.minutes <= 60:
        parser.error("--minutes must be in (0, 60]")
    if args.draws < 1:
        parser.error("--draws must be >= 1")
    resolution, synthetic_n = 32, None
    steps, gan_steps = round(DIFFUSION_STEPS * args.minutes / 10), round(GAN_STEPS * args.minutes / 10)
    if args.quick:
        args.n, args.no_append, synthetic_n, steps, gan_steps = 8, True, 64, 2, 2
    length = args.length if args.length is not None else recipe("tiny").ema_length
    seeds = [int(s) for s in args.seeds.split(",")]
    reference = ImageSet(load_reference(args.ref or "synthetic", (resolution, resolution), args.n, data_seed=0,
                                        split="heldout").images, "held-out")
    tag = "synthetic" if args.data == "synthetic" else Path(args.data).name
    if args.long:
        text = long_curve(args, tag, reference, resolution, steps, synthetic_n, seeds[0])
        print(text)
        if not args.no_append:
            append_results(RESULTS, text)
        return
    gans = args.gans.split(",")
    scores: dict[str, list[float]] = {name: [] for name in ["old", "old+ema", "new", *gans]}
    start = time.perf_counter()
    for seed in seeds:
        runs = {}
        for variant in ("tiny", "tiny-cosine"):
            diffusion = variant_config(variant, args.data, resolution, steps, seed, synthetic_n)
            if args.quick:
                diffusion = dataclasses.replace(diffusion, optim=dataclasses.replace(diffusion.optim, batch=4, warmup=1))
            runs[variant] = args.out / "recipes" / tag / f"{variant}-{steps}-seed{seed}"
            train(diffusion, runs[variant], log=lambda _: None)
        scores["old"].append(measure(runs["tiny"], reference, args.n, 0.0))
        scores["old+ema"].append(measure(runs["tiny"], reference, args.n, length))
        scores["new"].append(measure(runs["tiny-cosine"], reference, args.n, length))
        for preset in gans:
            gan = gan_config(args.data, resolution, gan_steps, seed, synthetic_n, preset)
            if args.quick:
                gan = dataclasses.replace(gan, optim=dataclasses.replace(gan.optim, batch=4),
                                          gan=dataclasses.replace(gan.gan, ngf=8, ndf=8, z_dim=8))
            gan_run = args.out / "confirm" / tag / f"{preset}-{gan_steps}-seed{seed}"
            train(gan, gan_run, log=lambda _: None)
            scores[preset].append(measure(gan_run, reference, args.n, None))
        print(f"seed {seed}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in scores.items()), file=sys.stderr, flush=True)
    text = render(args, tag, seeds, length, scores, time.perf_counter() - start)
    print(text)
    if not args.no_append:
        append_results(RESULTS, text)


def long_curve(args: argparse.Namespace, tag: str, reference, resolution: int, budget: int,
               synthetic_n: int | None, seed: int) -> str:
    """Trains K budgets of the tiny recipe with a checkpoint per budget; SWD per checkpoint and EMA."""
    from landiff.runs.checkpoint import list_checkpoints
    from landiff.train import train

    config = variant_config("tiny-cosine", args.data, resolution, budget * args.long, seed, synthetic_n)
    config = dataclasses.replace(config, checkpoint_every=budget, keep_checkpoints=args.long)
    if args.quick:
        config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, batch=4, warmup=1))
    run = args.out / "recipes" / tag / f"tiny-cosine-{budget * args.long}-seed{seed}"
    start = time.perf_counter()
    train(config, run, log=lambda _: None)
    lengths = [float(v) for v in args.lengths.split(",")]
    rows = []
    points = list_checkpoints(run / "checkpoints")
    for step, path in points[-1:] if args.final_only else points:
        cells = []
        for length in [0.0, *lengths]:
            draws = [measure(None, reference, args.n, length, checkpoint=path, draw=k) for k in range(args.draws)]
            cells.append(f"{np.mean(draws):.1f} ± {np.std(draws, ddof=1):.1f}" if len(draws) > 1 else f"{draws[0]:.1f}")
        rows.append(f"| {10 * step / budget:.0f} | {step} | " + " | ".join(cells) + " |")
        print(rows[-1], file=sys.stderr, flush=True)
    return "\n".join([
        f"## The tiny recipe's curve on {tag}: {args.long} × the budget race's 10 minutes, seed {seed}",
        "",
        f"`python benchmarks/recipe_confirm.py {' '.join(sys.argv[1:])}` — {time.strftime('%Y-%m-%d %H:%M')}; "
        f"32 px; {args.n} samples vs {args.n} held-out images; SWD ×10³; {time.perf_counter() - start:.0f} s.",
        "",
        "| race minutes | steps | fixed EMA 0.999 | " + " | ".join(f"post-hoc σ_rel {v:g}" for v in lengths) + " |",
        "|---:|---:|---:|" + "---:|" * len(lengths),
        *rows,
    ])


def render(args: argparse.Namespace, tag: str, seeds: list[int], length: float, scores: dict[str, list[float]],
           seconds: float) -> str:
    what = {"old": "tiny-v1: constant LR, fixed EMA 0.999 (the first wave's default)",
            "old+ema": f"the same run, post-hoc EMA σ_rel {length:g}",
            "new": f"tiny: LR annealed by a cosine, post-hoc EMA σ_rel {length:g}",
            "dcgan": "DCGAN recipe, 32 px", "gan-strong": "gan-strong recipe, 32 px"}
    base = args.gans.split(",")[0]
    gan_mean = float(np.mean(scores[base]))
    rows = []
    for name, values in scores.items():
        mean, spread = float(np.mean(values)), (max(values) - min(values)) / 2
        rows.append(f"| {name} | {what.get(name, name + ' preset')} | " + " | ".join(f"{v:.1f}" for v in values)
                    + f" | {mean:.1f} ± {spread:.1f} | {mean / gan_mean:.2f} |")
    return "\n".join([
        f"## Recipe confirmation on {tag}: the budget race's {args.minutes:g} minutes, seeds {', '.join(map(str, seeds))}",
        "",
        f"`python benchmarks/recipe_confirm.py {' '.join(sys.argv[1:])}` — {time.strftime('%Y-%m-%d %H:%M')}; "
        f"32 px; {args.n} samples vs {args.n} held-out images; SWD ×10³; {seconds:.0f} s.",
        "",
        "| entrant | what | " + " | ".join(f"seed {s}" for s in seeds) + f" | mean ± half range | ratio to {base} |",
        "|---|---|" + "---:|" * (len(seeds) + 2),
        *rows,
    ])


if __name__ == "__main__":
    main()
