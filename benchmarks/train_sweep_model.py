"""Trains the model a sampler sweep measures: the budget race's landiff entrant, by step count.

    python benchmarks/train_sweep_model.py --data synthetic --out bench-runs/sweep/landscapes
    python benchmarks/train_sweep_model.py --data bench-runs/skylines --out bench-runs/sweep/skylines
    python benchmarks/train_sweep_model.py --data synthetic --recipe iddpm --out bench-runs/sweep/landscapes-iddpm

The recipe is the demo's diffusion recipe (``landiff.workflows.pairing.diffusion_recipe``: the tiny
preset at 32 px) trained for 1456 steps, what the 10-minute budget race's landiff entrant reached
(benchmarks/RESULTS.md, "Quality at a fixed budget"). ``--recipe iddpm`` is the second recipe: the
same net, optimiser and steps with Improved DDPM's process instead of the tiny preset's (ε
prediction, learned variance, the hybrid loss; arXiv 2102.09672), so the samplers also meet a
model whose ancestral steps use a learned variance. A step count instead of a clock makes the
model the same on any machine and under any load. Prints the checkpoint's sha256, which the sweep
records. Re-running resumes (and does nothing once finished).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from landiff.runs.load import load_run
from landiff.train import train
from landiff.workflows.pairing import diffusion_recipe

BUDGET_RACE_STEPS = 1456


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="synthetic, or an image folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=BUDGET_RACE_STEPS)
    parser.add_argument("--recipe", choices=("tiny", "iddpm"), default="tiny")
    args = parser.parse_args()
    config = diffusion_recipe(args.data, 32, 0.0)
    # the sweep models were trained with the first wave's tiny recipe (tiny-v1's training: constant LR,
    # one fixed EMA); pinned so this command still reproduces them
    config = dataclasses.replace(config, posthoc_ema=False, ema_length=0.0,
                                 optim=dataclasses.replace(config.optim, decay="none"))
    if args.recipe == "iddpm":
        config = dataclasses.replace(config, diffusion=dataclasses.replace(
            config.diffusion, prediction="eps", variance="learned_range", loss="hybrid"))
    config = dataclasses.replace(config, train_steps=args.steps, max_minutes=0.0, checkpoint_every=args.steps,
                                 preview_count=0)
    state = train(config, args.out)
    loaded = load_run(args.out)
    print(f"{args.out}: step {state.step}, {state.images_seen} images seen, checkpoint sha256 {loaded.checkpoint_sha256}")


if __name__ == "__main__":
    main()
