"""The study's options and how ``--budget`` is split between training runs and evaluation.

``--budget MINUTES`` is the wall-clock of the whole default plan on the reference machine (a
2-core CPU at 32 px). Evaluation is estimated from measured per-image costs (:data:`SECONDS`);
5 % is kept as a margin and the rest trains the runs, a diffusion run getting :data:`DIFFUSION_WEIGHT` times a GAN run's
minutes. Only the two seed-0 runs on D (the *reference* runs) are time-budgeted; every other run
trains as many steps as it takes to see the same number of images as its family's reference
(see :mod:`landiff.workflows.study.plan`), so its wall-clock is about the same. ``--budget tiny`` is the
miniature used by the tests: very small networks, a few steps per run, a few images.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from landiff.errors import UserError
from landiff.runs.config import RECIPES, recipe
from landiff.runs.posthoc_ema import sigma_rel_to_gamma

Experiment = Literal["quality", "cost", "data-sensitivity", "hparam-stability", "seed-stability"]
EXPERIMENTS: tuple[Experiment, ...] = ("quality", "cost", "data-sensitivity", "hparam-stability", "seed-stability")
Family = Literal["diffusion", "gan"]
FAMILIES: tuple[Family, ...] = ("diffusion", "gan")

DEFAULT_BUDGET = 60.0
DIFFUSION_WEIGHT = 3.0  # a diffusion run trains 3x as long as a GAN run (the study's ~3 min vs ~1 min)
TINY_REFERENCE_STEPS = 4
# Measured on the reference machine (2 x86-64 cores, torch 2.13 CPU, 32 px; scaled by pixels), from
# single-thread CPU time halved for two threads (the machine was shared while measuring):
SECONDS = {
    "sample_nfe": 0.0055,  # tiny UNet, one network evaluation of one image while sampling (0.73 GFLOP)
    "swd_256": 5.0,  # one SWD (3 repeats) between two sets of 256 images
    "run_overhead": 1.5,  # loading a run for evaluation, diversity, writing files
    "train_overhead": 3.0,  # starting a trainer (outside its time budget) and its final checkpoint
    "setup_per_1000": 3.0,  # rendering, writing and preparing 1000 images per data variant
    "report": 20.0,  # calibration, experiments, figures and the two report files
}
SAFETY = 0.05  # share of the budget kept free: grid cells with small batches train slower per image
# Defaults of the two modes: (images in D, seeds, n, curve_n, curve points, sampler steps).
_DEFAULTS = {False: (2000, 3, 256, 128, 4, 20), True: (32, 2, 16, 8, 2, 4)}
GRID_CELLS = 6  # one-factor-at-a-time changes per family (see plan.GRID)
VARIANTS = 3  # replace, remove, duplicate


@dataclass(frozen=True)
class StudyOptions:
    """Everything that decides the study's runs and measurements (stored in ``OUT/plan.json``).

    Attributes:
        data: ``synthetic`` (the built-in landscapes) or an image folder / prepared dataset.
        budget: minutes for the whole default plan; None for the ``tiny`` miniature.
        resolution: image size in px (a size both the UNet and the DCGAN support, e.g. 32, 64).
        images: images in D.
        fraction: share of D that each D′ changes.
        seeds: training seeds per family on D (≥ 2: the spread and the seed-vs-seed baseline).
        n: generated images per run for the final metrics (and as many held-out real ones).
        curve_n: generated images per point of the quality-vs-compute curve.
        curve_points: points on that curve (the reference runs train in this many stages).
        sample_steps: steps of landiff's default sampler for every diffusion sample.
        data_seed: seed of the data selection and of every perturbation.
        ema_length: None (each run's own length: the tiny recipe's 0.1), 0 (the fixed-decay EMA), or
            the post-hoc EMA length σ_rel every diffusion run is sampled with (its runs then train with
            ``--posthoc-ema``; EDM2, landiff.runs.posthoc_ema).
        diffusion_preset: the recipe of every diffusion run (``tiny``, or a lineage preset such as
            ``tiny-v1``, ``iddpm-tiny``, ``ddpm-tiny`` or ``edm-tiny`` to compare the lineages).
    """

    data: str = "synthetic"
    budget: float | None = DEFAULT_BUDGET
    resolution: int = 32
    images: int = 2000
    fraction: float = 0.05
    seeds: int = 3
    n: int = 256
    curve_n: int = 128
    curve_points: int = 4
    sample_steps: int = 20
    data_seed: int = 0
    ema_length: float | None = None
    diffusion_preset: str = "tiny"

    @property
    def tiny(self) -> bool:
        return self.budget is None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_budget(text: str) -> float | None:
    """``"tiny"`` → None; ``"60"`` → 60.0 minutes.

    Raises:
        UserError: neither ``tiny`` nor a positive number.
    """
    if text.strip().lower() == "tiny":
        return None
    try:
        minutes = float(text)
    except ValueError:
        raise UserError(f"--budget must be a number of minutes or 'tiny', got {text!r}") from None
    if not 0 < minutes < 1e6 or not math.isfinite(minutes):
        raise UserError(f"--budget must be a positive number of minutes, got {text!r}")
    return minutes


def make_options(data: str = "synthetic", budget: str = "60", resolution: int = 32, **given: Any) -> StudyOptions:
    """Options with the defaults of the mode (``tiny`` or timed) for every field left at None.

    Args:
        data: the ``--data`` string.
        budget: ``"tiny"`` or minutes as text.
        resolution: image size in px.
        given: images, fraction, seeds, n, curve_n, curve_points, sample_steps, data_seed (None = default).

    Raises:
        UserError: a value out of range, naming its flag.
    """
    minutes = parse_budget(budget)
    names = ("images", "seeds", "n", "curve_n", "curve_points", "sample_steps")
    defaults = dict(zip(names, _DEFAULTS[minutes is None], strict=True))
    unknown = set(given) - set(names) - {"fraction", "data_seed", "ema_length", "diffusion_preset"}
    if unknown:
        raise TypeError(f"unknown study options: {sorted(unknown)}")
    values = {k: v for k, v in given.items() if v is not None}
    options = StudyOptions(data=data, budget=minutes, resolution=resolution, **{**defaults, **values})
    validate(options)
    return options


def validate(options: StudyOptions) -> None:
    """Raises UserError naming the flag of the first out-of-range option."""
    for flag, value, low in [("--images", options.images, 16), ("--seeds", options.seeds, 2), ("--n", options.n, 4),
                             ("--curve-n", options.curve_n, 4), ("--curve-points", options.curve_points, 1),
                             ("--sample-steps", options.sample_steps, 2), ("--data-seed", options.data_seed, 0),
                             ("--resolution", options.resolution, 16)]:
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise UserError(f"{flag} must be an integer >= {low}, got {value!r}")
    if not 0 < options.fraction <= 0.5:
        raise UserError(f"--fraction must be in (0, 0.5], got {options.fraction}")
    if options.curve_n > options.n:
        raise UserError(f"--curve-n ({options.curve_n}) cannot exceed --n ({options.n})")
    if not options.data:
        raise UserError("--data must name 'synthetic', an image folder or a prepared dataset")
    if options.ema_length:  # 0: the fixed-decay EMA
        sigma_rel_to_gamma(options.ema_length)  # refuses a length outside [0.01, 0.25], naming it
    diffusion_presets = [name for name in RECIPES if recipe(name).model == "diffusion"]
    if options.diffusion_preset not in diffusion_presets:
        raise UserError(f"--diffusion-preset must be a diffusion recipe ({', '.join(diffusion_presets)}), "
                        f"got {options.diffusion_preset!r}")


def runs_per_family(options: StudyOptions) -> int:
    """Runs of one family in the full plan: the seeds on D, three D′ variants, the grid cells."""
    return options.seeds + VARIANTS + GRID_CELLS


@dataclass(frozen=True)
class Allocation:
    """How the budget is spent (minutes; estimates except the two training budgets).

    ``SAFETY`` of the budget is left unallocated (cells with small batches run slower per image).

    Attributes:
        diffusion_minutes: training time of the diffusion reference run (0 in tiny mode).
        gan_minutes: training time of the GAN reference run (0 in tiny mode).
        reference_steps: tiny mode: optimiser steps of each reference run; 0 when time-budgeted.
        eval_minutes: estimated sampling + metrics over all runs and curve points.
        setup_minutes: estimated data preparation and report writing.
    """

    diffusion_minutes: float
    gan_minutes: float
    reference_steps: int
    eval_minutes: float
    setup_minutes: float

    def run_minutes(self, family: Family) -> float:
        return self.diffusion_minutes if family == "diffusion" else self.gan_minutes


def _pixels(options: StudyOptions) -> float:
    return (options.resolution / 32) ** 2


def estimate_eval_minutes(options: StudyOptions, runs: int | None = None) -> float:
    """Sampling and SWD for ``runs`` runs per family (default: the full plan; n images each) and every
    curve point (curve_n images), in minutes."""
    runs = runs_per_family(options) if runs is None else runs
    diffusion_images = runs * options.n + options.curve_points * options.curve_n
    sampling = diffusion_images * options.sample_steps * SECONDS["sample_nfe"] * _pixels(options)
    swd_calls = 2 * runs + 2 * options.curve_points + 1  # one per run and curve point, plus the floor
    swd = swd_calls * SECONDS["swd_256"] * max(options.n, 64) / 256 * _pixels(options)
    return (sampling + swd + 2 * runs * SECONDS["run_overhead"]) / 60


def estimate_setup_minutes(options: StudyOptions, runs: int | None = None) -> float:
    """Data variants (D and three D′), trainer start-ups for ``runs`` runs per family (default: the
    full plan) and the report, in minutes."""
    runs = runs_per_family(options) if runs is None else runs
    data = 4 * options.images / 1000 * SECONDS["setup_per_1000"] * _pixels(options)
    starts = 2 * (runs + options.curve_points) * SECONDS["train_overhead"]
    return (data + starts + SECONDS["report"]) / 60


def allocate(options: StudyOptions) -> Allocation:
    """Splits ``options.budget`` (see the module docstring).

    Raises:
        UserError: the budget leaves less than a third of itself for training.
    """
    eval_minutes, setup = estimate_eval_minutes(options), estimate_setup_minutes(options)
    if options.budget is None:
        return Allocation(0.0, 0.0, TINY_REFERENCE_STEPS, eval_minutes, setup)
    train = options.budget * (1 - SAFETY) - eval_minutes - setup
    if train < options.budget / 3:
        need = (eval_minutes + setup) / (2 / 3 - SAFETY)
        raise UserError(f"--budget {options.budget:g} leaves {max(train, 0):.1f} min for training after about "
                        f"{eval_minutes + setup:.1f} min of evaluation; give --budget {math.ceil(need)} or more, or lower --n")
    runs = runs_per_family(options)
    unit = train / (runs * DIFFUSION_WEIGHT + runs)
    return Allocation(unit * DIFFUSION_WEIGHT, unit, 0, eval_minutes, setup)
