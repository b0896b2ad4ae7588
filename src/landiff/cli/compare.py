"""``landiff compare``: evaluate runs with one protocol (same reference, sample count, seeds).

    landiff compare runs/diffusion runs/gan --n 512
    landiff compare --train --data synthetic --minutes 20 --out runs/cmp   # trains both families first
"""

from __future__ import annotations

import argparse
from pathlib import Path

from landiff.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("compare", help="evaluate runs with one protocol (optionally train both families first)")
    p.add_argument("runs", nargs="*", help="run directories")
    p.add_argument("--n", type=int, default=256, help="images per run and reference images (default 256)")
    p.add_argument("--seed", type=int, default=0, help="seeds of the samples (seed..seed+n-1) and of the metrics")
    p.add_argument("--ref", default=None, help="reference images (default: the first run's data, held-out split for synthetic)")
    p.add_argument("--heldout", default=None, help="held-out images for the memorisation ratio (needed for folders)")
    p.add_argument("--sampler", default="dpm++", choices=["ddpm", "ddim", "dpm++"], help="diffusion sampler for the main samples")
    p.add_argument("--steps", type=int, default=20, help="its number of steps (default 20)")
    p.add_argument("--sweep", default=None, help="samplers x steps for diffusion runs, e.g. 'ddim:10,50;dpm++:5,10,20' ('' for none)")
    p.add_argument("--sweep-n", type=int, default=None, help="images per sweep point (default --n)")
    p.add_argument("--repeats", type=int, default=3, help="metric repeats for the spread (default 3)")
    p.add_argument("--inception", default=None, help="FID Inception weights (.safetensors); see landiff weights")
    p.add_argument("--train", action="store_true", help="first train a diffusion model and a DCGAN on --data")
    p.add_argument("--data", default="synthetic", help="data for --train (default synthetic)")
    p.add_argument("--minutes", type=float, default=20.0, help="training budget for --train, split between the two")
    p.add_argument("--resolution", type=int, default=32, help="resolution for --train (default 32)")
    p.add_argument("--out", default="runs/compare", help="where --train puts its two runs (default runs/compare)")
    p.set_defaults(func=run)


def options_from(args: argparse.Namespace):
    from landiff.compare import DEFAULT_SWEEP, CompareOptions, parse_sweep

    for flag in ("n", "steps", "repeats"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be >= 1")
    if args.sweep_n is not None and args.sweep_n < 1:
        raise UserError("--sweep-n must be >= 1")
    return CompareOptions(
        n=args.n, seed=args.seed, reference=args.ref, heldout=args.heldout, sampler=args.sampler, steps=args.steps,
        sweep=DEFAULT_SWEEP if args.sweep is None else parse_sweep(args.sweep), sweep_n=args.sweep_n,
        repeats=args.repeats, inception=args.inception,
    )


def run(args: argparse.Namespace) -> int:
    from landiff.compare import compare_runs

    options = options_from(args)
    runs = list(args.runs)
    if args.train:
        from landiff.pair import train_pair

        if args.minutes <= 0:
            raise UserError("--minutes must be > 0")
        runs += [str(p) for p in train_pair(args.data, Path(args.out), args.minutes, args.resolution)]
    if not runs:
        raise UserError("give run directories to compare, or --train --data … to train both families first")
    summaries = compare_runs(runs, options)
    for s in summaries:
        print(f"{s['run']}: {s['family']} SWD {s['metrics']['swd']['value']:.2f} ± {s['metrics']['swd']['std']:.2f}, "
              f"train {s['cost']['train_seconds']:.0f} s, {s['cost']['sample_seconds_per_image'] * 1000:.1f} ms/image")
    print("report: landiff report " + " ".join(runs) + " --out <dir>")
    return 0
