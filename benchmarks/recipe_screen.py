"""Screening diffusion recipes for the CPU: variants of the tiny recipe trained for the same steps.

    python benchmarks/recipe_screen.py --data synthetic                         # 3-minute screen, ~20 min
    python benchmarks/recipe_screen.py --data bench-runs/skylines --ref bench-runs/skylines-heldout
    python benchmarks/recipe_screen.py --variants tiny,edm --steps 1456 --seed 1  # a 10-minute confirmation
    python benchmarks/recipe_screen.py --quick                                  # seconds: CI's check

Every variant is a change of the first wave's tiny recipe (``tiny-v1``'s training: a constant LR;
today's ``tiny`` preset is the ``tiny-cosine`` variant) and has its network and batch, so a step costs the same for all of them
and a step count stands in for the clock (437 steps: 3 of the budget race's 10 minutes, which
bought 1456 steps; a count is also immune to machine load). Each is trained with --posthoc-ema,
and measured (multi-scale SWD ×10³, ``--n`` samples of landiff's default sampler against ``--n``
held-out images) with the run's fixed EMA and with post-hoc EMA lengths ``--lengths``; the best
length is reported with its SWD. The table records how many configurations were tried.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import RESULTS, append_results, training_parser  # noqa: E402

SCREEN_STEPS = 437  # 3/10 of the budget race's 1456 steps

# name → (what it changes, DiffusionConfig changes, TrainConfig changes)
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "tiny": ("the first wave's default (tiny-v1's training): v-prediction, cosine, uniform t, constant LR", {}, {}),
    "min-snr": ("+ min-SNR-5 weighting", {"weighting": "min-snr"}, {}),
    "log-normal": ("+ log-normal t (ln σ ~ N(−1.2, 1.2²))", {"timestep_sampler": "log-normal"}, {}),
    "min-snr+log-normal": ("+ both", {"weighting": "min-snr", "timestep_sampler": "log-normal"}, {}),
    "edm": ("EDM formulation (P_mean −1.2, P_std 1.2)", {"formulation": "edm"}, {}),
    "edm-high": ("EDM, noise levels shifted up (P_mean −0.4, P_std 1.0)",
                 {"formulation": "edm", "p_mean": -0.4, "p_std": 1.0}, {}),
    "edm-lr2e-3": ("EDM at twice the LR (2e-3)", {"formulation": "edm"}, {"lr": 2e-3}),
    # second round, after the first screen (RESULTS.md): the LR was the lever
    "tiny-lr2e-3": ("today's default at twice the LR (2e-3)", {}, {"lr": 2e-3}),
    # third round, after the 10-minute confirmation's two seeds disagreed by 2x (RESULTS.md): anneal
    # the LR to 0 over the run (the horizon is the run's --steps or --minutes, landiff.train.schedule)
    "tiny-cosine": ("the tiny recipe with its LR annealed to 0 by a cosine over the run", {}, {"decay": "cosine"}),
    "edm-lr3e-3": ("EDM at 3e-3", {"formulation": "edm"}, {"lr": 3e-3}),
}
DISCRETE_DEFAULTS = {"prediction": "eps", "schedule": "cosine", "variance": "fixed_small", "loss": "mse",
                     "timestep_sampler": "uniform", "weighting": "none"}


def variant_config(name: str, data: str, resolution: int, steps: int, seed: int, synthetic_n: int | None):
    from landiff.workflows.pairing import diffusion_recipe

    _, process, optim = VARIANTS[name]
    config = diffusion_recipe(data, resolution, 0.0)
    optim = {"decay": "none", **optim}  # every variant is a change of the first wave's constant-LR recipe
    diffusion = config.diffusion
    if process.get("formulation") == "edm":
        diffusion = dataclasses.replace(diffusion, **DISCRETE_DEFAULTS)
    config = dataclasses.replace(
        config, diffusion=dataclasses.replace(diffusion, **process), optim=dataclasses.replace(config.optim, **optim),
        train_steps=steps, max_minutes=0.0, checkpoint_every=steps, preview_count=0, seed=seed, posthoc_ema=True,
        ema_snapshot_every=max(1, steps // 24),
    )
    return dataclasses.replace(config, synthetic_n=synthetic_n) if synthetic_n else config


def main() -> None:
    parser = training_parser(__doc__, "bench-runs/recipes", SCREEN_STEPS)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--lengths", default="0.05,0.1,0.2")
    args = parser.parse_args()
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    resolution, synthetic_n = 32, None
    if args.quick:
        args.steps, args.n, args.no_append, resolution, synthetic_n = 2, 8, True, 16, 64

    from landiff.generate import generate
    from landiff.metrics.evaluate import evaluate_swd
    from landiff.metrics.io import ImageSet, load_reference
    from landiff.train import load_run, train

    reference = ImageSet(load_reference(args.ref or "synthetic", (resolution, resolution), args.n, data_seed=0,
                                        split="heldout").images, "held-out")
    lengths = [float(v) for v in args.lengths.split(",")]
    tag = "synthetic" if args.data == "synthetic" else Path(args.data).name
    rows, start = [], time.perf_counter()
    for name in names:
        config = variant_config(name, args.data, resolution, args.steps, args.seed, synthetic_n)
        if args.quick:
            config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, batch=4))
        run = args.out / tag / f"{name}-{args.steps}-seed{args.seed}"
        began = time.perf_counter()
        train(config, run, log=lambda _: None)
        seconds = time.perf_counter() - began
        scores = {}
        for length in [0.0, *lengths]:  # 0: the run's fixed-decay EMA
            loaded = load_run(run, device="cpu", ema_length=length)
            images = generate(loaded, list(range(args.n))).images
            swd = evaluate_swd(ImageSet(images, "samples"), reference).estimates["swd"]
            scores[length] = (float(swd.value), float(swd.std))
        best = min(lengths, key=lambda v: scores[v][0])
        rows.append((name, scores[0.0], best, scores[best], seconds))
        print(f"{name}: run's EMA {scores[0.0][0]:.1f}, best post-hoc σ_rel {best:g} → {scores[best][0]:.1f}",
              file=sys.stderr, flush=True)
    text = "\n".join([
        f"## Recipe screen on {tag}: {args.steps} steps, seed {args.seed} ({len(names)} configurations)",
        "",
        f"`python benchmarks/recipe_screen.py {' '.join(sys.argv[1:])}` — {time.strftime('%Y-%m-%d %H:%M')}; tiny "
        f"net, batch 32, 32 px; {args.n} samples (default sampler) vs {args.n} held-out images; "
        f"{time.perf_counter() - start:.0f} s.",
        "",
        f"| variant | what | SWD ×10³, run's EMA | best post-hoc σ_rel of {args.lengths} | its SWD ×10³ | training s |",
        "|---|---|---:|---:|---:|---:|",
        *(f"| {name} | {VARIANTS[name][0]} | {ema[0]:.1f} ± {ema[1]:.1f} | {best:g} | {score[0]:.1f} ± {score[1]:.1f} "
          f"| {sec:.0f} |" for name, ema, best, score, sec in rows),
    ])
    print(text)
    if not args.no_append:
        append_results(RESULTS, text)


if __name__ == "__main__":
    main()
