"""How ``--budget`` is split between the training runs and their evaluation.

``--budget MINUTES`` is the wall-clock of the whole default plan on the reference machine (a 2-core
CPU at 32 px). Evaluation — the final measurement of every run and a curve point after every
training stage of every seed run — and the trainer start-ups are estimated from measured per-image
costs (:data:`SECONDS`); :data:`SAFETY` of the budget is kept as a margin and the rest trains the runs.

Training is counted in *units*: a run's expected wall-clock relative to its family's reference run
is the number of training images it sees relative to the reference
(:func:`~landiff.workflows.study.plan.relative_images`: 1, but ½ and 2 for the batch ×½ and ×2 cells at
equal steps), times the family's :data:`~landiff.workflows.study.options.TRAIN_WEIGHT`. With
``L_f`` = the sum over family f's runs of their relative images, a unit is
``training minutes / Σ_f TRAIN_WEIGHT[f] · L_f`` (over the families that take part: diffusion and
the GANs of ``--gans``) and the reference run of family f trains ``TRAIN_WEIGHT[f]`` units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from landiff.errors import UserError
from landiff.workflows.study.options import (
    EXPERIMENTS,
    MODEL,
    TINY_REFERENCE_STEPS,
    TRAIN_WEIGHT,
    Allocation,
    StudyOptions,
)
from landiff.workflows.study.plan import VARIANTS, RunSpec, build_plan, relative_images

# Measured on the reference machine (2 x86-64 cores, torch 2.13 CPU, 32 px; scaled by pixels), from
# single-thread CPU time halved for two threads (the machine was shared while measuring):
SECONDS = {
    "sample_nfe": 0.0055,  # tiny UNet, one network evaluation of one image while sampling (0.73 GFLOP)
    "swd_256": 5.0,  # one SWD (3 repeats) between two sets of 256 images (about proportional to the set size)
    "run_overhead": 1.5,  # loading a run (or a curve stage's checkpoint) for evaluation, diversity, writing files
    "train_overhead": 3.0,  # starting a trainer (outside its time budget) and its final checkpoint
    "setup_per_1000": 3.0,  # rendering, writing and preparing 1000 images per data variant
    "report": 20.0,  # calibration, experiments, figures and the two report files
}
SAFETY = 0.05  # share of the budget kept free: grid cells with small batches train slower per image


def _pixels(options: StudyOptions) -> float:
    return (options.resolution / 32) ** 2


def _swd_seconds(n: int, options: StudyOptions) -> float:
    """One SWD between two sets of ``n`` images (below 64 images the fixed costs dominate)."""
    return SECONDS["swd_256"] * max(n, 64) / 256 * _pixels(options)


def curve_stages(spec: RunSpec, options: StudyOptions) -> int:
    """Training stages of a run, each followed by a curve point (seed runs), or 1 (every other run)."""
    return options.curve_points if spec.role == "seed" else 1


def _eval_seconds(spec: RunSpec, options: StudyOptions) -> float:
    """The final measurement (n samples) and, for a seed run, a curve point (curve_n samples) per stage."""
    points = options.curve_points if spec.role == "seed" else 0
    nfe = options.sample_steps if MODEL[spec.family] == "diffusion" else 0  # a GAN's one generator pass is negligible
    sampling = (options.n + points * options.curve_n) * nfe * SECONDS["sample_nfe"] * _pixels(options)
    swd = _swd_seconds(options.n, options) + points * _swd_seconds(options.curve_n, options)
    return sampling + swd + (1 + points) * SECONDS["run_overhead"]


def estimate_eval_minutes(options: StudyOptions, plan: Sequence[RunSpec] | None = None) -> float:
    """Sampling and SWD for the runs of ``plan`` (default: the full plan) and every curve point, plus the
    real-vs-real floor, in minutes."""
    plan = build_plan(options, EXPERIMENTS) if plan is None else plan
    return (_swd_seconds(options.n, options) + sum(_eval_seconds(spec, options) for spec in plan)) / 60


def estimate_setup_minutes(options: StudyOptions, plan: Sequence[RunSpec] | None = None) -> float:
    """Data variants (D and three D′), a trainer start-up per training stage of the runs of ``plan``
    (default: the full plan) and the report, in minutes."""
    plan = build_plan(options, EXPERIMENTS) if plan is None else plan
    data = (1 + len(VARIANTS)) * options.images / 1000 * SECONDS["setup_per_1000"] * _pixels(options)
    starts = sum(curve_stages(spec, options) for spec in plan) * SECONDS["train_overhead"]
    return (data + starts + SECONDS["report"]) / 60


def estimate_run_minutes(spec: RunSpec, options: StudyOptions, allocation: Allocation) -> float:
    """Expected training minutes of one run: its family's reference minutes × its relative images."""
    return allocation.run_minutes(spec.family) * relative_images(spec, options)


def _refuse_absurd_seeds(options: StudyOptions) -> None:
    """Refuses, before the plan is listed, a ``--seeds`` whose seed runs' evaluation alone exceeds the budget
    (listing 10¹² runs would never end)."""
    if options.budget is None:
        return
    seconds = sum(_eval_seconds(RunSpec(f"{f}-D-seed1", f, "seed", seed=1), options) for f in options.families)
    if options.seeds * seconds / 60 > options.budget:
        raise UserError(f"--seeds {options.seeds}: evaluating the seed runs alone would take about "
                        f"{options.seeds * seconds / 60:.3g} min, more than --budget {options.budget:g}; give fewer --seeds")


def allocate(options: StudyOptions) -> Allocation:
    """Splits ``options.budget`` (see the module docstring) over the full plan.

    Raises:
        UserError: the budget leaves less than a third of itself for training, or cannot even evaluate the
            seed runs.
    """
    _refuse_absurd_seeds(options)
    plan = build_plan(options, EXPERIMENTS)
    eval_minutes, setup = estimate_eval_minutes(options, plan), estimate_setup_minutes(options, plan)
    if options.budget is None:
        return Allocation({}, TINY_REFERENCE_STEPS, eval_minutes, setup)
    train = options.budget * (1 - SAFETY) - eval_minutes - setup
    if train < options.budget / 3:
        need = (eval_minutes + setup) / (2 / 3 - SAFETY)
        raise UserError(f"--budget {options.budget:g} leaves {max(train, 0):.1f} min for training after about "
                        f"{eval_minutes + setup:.1f} min of evaluation; give --budget {math.ceil(need)} or more, or lower --n")
    families = options.families
    load = {f: sum(relative_images(s, options) for s in plan if s.family == f) for f in families}
    unit = train / sum(TRAIN_WEIGHT[f] * load[f] for f in families)
    return Allocation({f: unit * TRAIN_WEIGHT[f] for f in families}, 0, eval_minutes, setup)
