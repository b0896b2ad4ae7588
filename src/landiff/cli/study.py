"""``landiff study``: measure the four diffusion-vs-GAN claims on your data, with error bars.

    landiff study --data synthetic --budget 60 --out runs/study         # all experiments, ~60 min on 2 CPU cores
    landiff study data-sensitivity --budget 60 --out runs/study         # one experiment; shares the runs
    landiff study --budget 60 --out runs/study --dry-run                # the plan and its estimated minutes
    landiff study --gans dcgan --budget 60 --out runs/study-dcgan       # diffusion vs the DCGAN alone (shorter)
    torchrun --nproc_per_node=4 -m landiff -- study --budget 240 --resolution 64 --out runs/study64

Re-running the same command continues a killed study; finished runs are reused. See docs/study.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from landiff.options import DEVICE, N_IMAGES, OUT_DIR, SEED, STEPS, Spec, check_output_dir
from landiff.runs.config import RECIPES, recipe
from landiff.train.distributed import env_dist
from landiff.workflows.study.execute import run_study
from landiff.workflows.study.options import EXPERIMENTS, GAN_FAMILIES, make_options
from landiff.workflows.study.preview import plan_text

if TYPE_CHECKING:
    from landiff.workflows.study.options import StudyOptions

EXPERIMENT_CHOICES = ("all", "quality", "cost", "data-sensitivity", "hparam-stability", "seed-stability")


def _mode_defaults() -> dict[str, str]:
    """The defaults of the options the budget's mode decides, as the help shows them (timed; tiny)."""
    timed, tiny = make_options(), make_options(budget="tiny")
    names = ("images", "seeds", "n", "curve_n", "curve_points", "sample_steps")
    return {name: f"{getattr(timed, name)}; --budget tiny: {getattr(tiny, name)}" for name in names}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("study", help="measure the diffusion-vs-GAN claims (quality, cost, data and "
                                            "hyper-parameter sensitivity, seeds) with error bars",
                              description="diffusion vs GAN: quality, cost, data sensitivity, hyper-parameter and seed "
                                          "stability, with error bars and verdicts (docs/study.md)")
    mode = _mode_defaults()
    Spec("experiment", "choice", "one experiment, or all; runs are shared between them", default="all",
         choices=EXPERIMENT_CHOICES).add_to(p)
    Spec("--data", "str", "'synthetic' (built-in landscapes), an image folder or a prepared dataset",
         default="synthetic").add_to(p)
    Spec("--budget", "str", "minutes for the whole default plan on a 2-core CPU, or 'tiny' (a minimal plan for "
         "checks)", default="60", metavar="MINUTES|tiny").add_to(p)
    OUT_DIR.add_to(p, required=True, help="study folder (created; re-run to continue)")
    # The bounds are those landiff.workflows.study.options.validate enforces.
    Spec("--resolution", "int", "image size", default=32, low=16, unit="px").add_to(p)
    Spec("--images", "int", "images in D, the study's training set", low=16, unit="images",
         default_text=mode["images"]).add_to(p)
    Spec("--fraction", "float", "share of D each D' changes", default=0.05, low=0.0, high=0.5,
         low_open=True).add_to(p)
    Spec("--seeds", "int", "training seeds per family on D", low=2, default_text=mode["seeds"]).add_to(p)
    N_IMAGES.add_to(p, low=4, help="samples per run and held-out reference images", default_text=mode["n"])
    N_IMAGES.add_to(p, name="--curve-n", low=4, help="samples per quality-vs-compute point",
                    default_text=mode["curve_n"])
    Spec("--curve-points", "int", "points on that curve: every seed run trains in this many stages, measured after "
         "each", low=1, default_text=mode["curve_points"]).add_to(p)
    STEPS.add_to(p, name="--sample-steps", low=2, help="steps of the default sampler for diffusion samples",
                 default_text=mode["sample_steps"])
    Spec("--ema-length", "float", "sample the diffusion runs with the post-hoc EMA of this relative length "
         "sigma_rel (EDM2); 0 = their fixed-decay EMA", low=0.0, high=0.25,
         default_text="the recipe's (tiny: 0.1)").add_to(p)
    Spec("--diffusion-preset", "choice", "recipe of the diffusion runs (tiny-v1, iddpm-tiny, ddpm-tiny or edm-tiny "
         "walk the lineage at the same net and optimiser)", default="tiny",
         choices=tuple(name for name in RECIPES if recipe(name).model == "diffusion")).add_to(p)
    Spec("--gans", "str", "the GANs each claim is tested against, comma-separated: "
         f"{', '.join(GAN_FAMILIES)} or both; fewer GANs give the other runs more of the budget", metavar="GANS",
         default_text=",".join(GAN_FAMILIES)).add_to(p)
    SEED.add_to(p, name="--data-seed", help="seed of the data selection and perturbations")
    DEVICE.add_to(p, help="training device: cpu, cuda, cuda:N or mps")
    Spec("--dry-run", "switch", "print the plan with estimated minutes and exit").add_to(p)
    p.set_defaults(func=run)


def options_from(args: argparse.Namespace) -> StudyOptions:
    """The StudyOptions of the parsed flags (mode defaults for flags left out)."""
    return make_options(data=args.data, budget=args.budget, resolution=args.resolution, images=args.images,
                        fraction=args.fraction, seeds=args.seeds, n=args.n, curve_n=args.curve_n,
                        curve_points=args.curve_points, sample_steps=args.sample_steps, data_seed=args.data_seed,
                        ema_length=args.ema_length, diffusion_preset=args.diffusion_preset, gans=args.gans)


def run(args: argparse.Namespace) -> int:
    options = options_from(args)
    if not args.dry_run:
        check_output_dir(args.out, "--out")  # before the first of many runs is trained
    experiments = EXPERIMENTS if args.experiment == "all" else (args.experiment,)
    out = Path(args.out)
    main_rank = env_dist().is_main
    if main_rank:
        print(plan_text(options, experiments, out))
    if args.dry_run:
        return 0
    outcome = run_study(out, options, experiments, log=print if main_rank else _quiet, device=args.device)
    if main_rank:
        print(f"trained {len(outcome.trained)} run(s), measured {len(outcome.evaluated)}; report: {outcome.report}")
    return 0


def _quiet(_: str) -> None:
    pass
