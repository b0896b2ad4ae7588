"""The study's options, the per-family tables, and the :class:`Allocation` of ``--budget``.

``--budget MINUTES`` is the wall-clock of the whole default plan on the reference machine (a
2-core CPU at 32 px); :mod:`landiff.workflows.study.budget` splits it between evaluation (from
measured per-image costs) and training, a run of family f getting
:data:`TRAIN_WEIGHT` [f] times the minutes of a unit. Only the seed-0 runs on D (the *reference* runs)
are time-budgeted; every other run trains as many steps as it takes to see the same number of images
as its family's reference, or, for the equal-steps grid cells, the reference's number of optimiser
steps (see :mod:`landiff.workflows.study.plan`). ``--budget tiny`` is the miniature used by the
tests: very small networks, a few steps per run, a few images.

A family is a name in :data:`FAMILIES` with a row in each table keyed by family: :data:`MODEL`
here, and the recipe and grid tables of :mod:`landiff.workflows.study.plan`. The families are diffusion
and the GANs of :data:`GAN_FAMILIES`, each named after its recipe (``landiff train --preset``): the
DCGAN and ``gan-strong``; ``--gans`` (:attr:`StudyOptions.gans`) chooses which GANs take part, and
every claim is judged against each of them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from landiff.errors import UserError
from landiff.runs.config import RECIPES, recipe
from landiff.runs.posthoc_ema import sigma_rel_to_gamma

Experiment = Literal["quality", "cost", "data-sensitivity", "hparam-stability", "seed-stability"]
EXPERIMENTS: tuple[Experiment, ...] = ("quality", "cost", "data-sensitivity", "hparam-stability", "seed-stability")
Family = Literal["diffusion", "dcgan", "gan-strong"]
FAMILIES: tuple[Family, ...] = ("diffusion", "dcgan", "gan-strong")
# The GAN families, in report order; each family's name is its recipe (landiff.runs.config.RECIPES).
GAN_FAMILIES: tuple[Family, ...] = ("dcgan", "gan-strong")
# The model each family trains (its trainer, and whether sampling takes sample_steps network evaluations).
MODEL: dict[Family, Literal["diffusion", "gan"]] = {"diffusion": "diffusion", "dcgan": "gan", "gan-strong": "gan"}
# Training minutes of a family's runs relative to each other: a diffusion run trains 3x as long as a
# GAN run (the study's ~3 min vs ~1 min); a GAN run trains the same minutes whichever GAN it is.
TRAIN_WEIGHT: dict[Family, float] = {"diffusion": 3.0, "dcgan": 1.0, "gan-strong": 1.0}

DEFAULT_BUDGET = 60.0
TINY_REFERENCE_STEPS = 4
# Defaults of the two modes: (images in D, seeds, n, curve_n, curve points, sampler steps).
_DEFAULTS = {False: (2000, 3, 256, 128, 4, 20), True: (32, 2, 16, 8, 2, 4)}


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
        curve_points: points on that curve (every seed run on D trains in this many stages).
        sample_steps: steps of landiff's default sampler for every diffusion sample.
        data_seed: seed of the data selection and of every perturbation.
        ema_length: None (each run's own length: the tiny recipe's 0.1), 0 (the fixed-decay EMA), or
            the post-hoc EMA length σ_rel every diffusion run is sampled with (its runs then train with
            ``--posthoc-ema``; EDM2, landiff.runs.posthoc_ema).
        diffusion_preset: the recipe of every diffusion run (``tiny``, or a lineage preset such as
            ``tiny-v1``, ``iddpm-tiny``, ``ddpm-tiny`` or ``edm-tiny`` to compare the lineages).
        gans: the GAN families that take part (:data:`GAN_FAMILIES` order; ``--gans``); each claim is
            judged against each of them.
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
    gans: tuple[Family, ...] = GAN_FAMILIES

    @property
    def tiny(self) -> bool:
        return self.budget is None

    @property
    def families(self) -> tuple[Family, ...]:
        """The families that take part: diffusion and the chosen GANs, in :data:`FAMILIES` order."""
        return tuple(f for f in FAMILIES if f == "diffusion" or f in self.gans)

    def to_dict(self) -> dict[str, Any]:
        """The options as plan.json stores them (JSON types: ``gans`` as a list)."""
        return {**dataclasses.asdict(self), "gans": list(self.gans)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StudyOptions:
        """The options of :meth:`to_dict`'s dictionary."""
        return cls(**{**values, "gans": tuple(values.get("gans", GAN_FAMILIES))})


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


def parse_gans(text: str | Sequence[str]) -> tuple[Family, ...]:
    """``"dcgan,gan-strong"`` (or a sequence of names) → the GAN families, in :data:`GAN_FAMILIES` order.

    Raises:
        UserError: an empty list, a name that is not a GAN family, or a name given twice.
    """
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else [str(n) for n in text]
    unknown = [n for n in names if n not in GAN_FAMILIES]
    if not names or unknown or len(set(names)) != len(names):
        raise UserError(f"--gans must name {' and/or '.join(GAN_FAMILIES)}, comma-separated, each once; got "
                        f"{text if isinstance(text, str) else ','.join(names)!r}")
    return tuple(f for f in GAN_FAMILIES if f in names)


def make_options(data: str = "synthetic", budget: str = "60", resolution: int = 32, **given: Any) -> StudyOptions:
    """Options with the defaults of the mode (``tiny`` or timed) for every field left at None.

    Args:
        data: the ``--data`` string.
        budget: ``"tiny"`` or minutes as text.
        resolution: image size in px.
        given: images, fraction, seeds, n, curve_n, curve_points, sample_steps, data_seed, ema_length,
            diffusion_preset, gans (text such as ``"dcgan,gan-strong"`` or a sequence; None = default).

    Raises:
        UserError: a value out of range, naming its flag.
    """
    minutes = parse_budget(budget)
    names = ("images", "seeds", "n", "curve_n", "curve_points", "sample_steps")
    defaults = dict(zip(names, _DEFAULTS[minutes is None], strict=True))
    unknown = set(given) - set(names) - {"fraction", "data_seed", "ema_length", "diffusion_preset", "gans"}
    if unknown:
        raise TypeError(f"unknown study options: {sorted(unknown)}")
    values = {k: v for k, v in given.items() if v is not None}
    if "gans" in values:
        values["gans"] = parse_gans(values["gans"])
    options = StudyOptions(data=data, budget=minutes, resolution=resolution, **{**defaults, **values})
    validate(options)
    return options


MAX_SEEDS = 100  # training runs per family and seed; more would not fit any budget the plan accepts


def validate(options: StudyOptions) -> None:
    """Raises UserError naming the flag of the first out-of-range option."""
    for flag, value, low in [("--images", options.images, 16), ("--seeds", options.seeds, 2), ("--n", options.n, 4),
                             ("--curve-n", options.curve_n, 4), ("--curve-points", options.curve_points, 1),
                             ("--sample-steps", options.sample_steps, 2), ("--data-seed", options.data_seed, 0),
                             ("--resolution", options.resolution, 16)]:
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise UserError(f"{flag} must be an integer >= {low}, got {value!r}")
    if options.seeds > MAX_SEEDS:
        raise UserError(f"--seeds must be at most {MAX_SEEDS} (each seed is a training run per family), "
                        f"got {options.seeds}")
    if not 0 < options.fraction <= 0.5:
        raise UserError(f"--fraction must be in (0, 0.5], got {options.fraction}")
    if options.curve_n > options.n:
        raise UserError(f"--curve-n ({options.curve_n}) cannot exceed --n ({options.n})")
    if not options.data:
        raise UserError("--data must name 'synthetic', an image folder or a prepared dataset")
    if options.ema_length:  # 0: the fixed-decay EMA
        sigma_rel_to_gamma(options.ema_length)  # refuses a length outside [0.01, 0.25], naming it
    if parse_gans(options.gans) != options.gans:
        raise UserError(f"--gans must list {', '.join(GAN_FAMILIES)} in this order, got {','.join(options.gans)!r}")
    diffusion_presets = [name for name in RECIPES if recipe(name).model == "diffusion"]
    if options.diffusion_preset not in diffusion_presets:
        raise UserError(f"--diffusion-preset must be a diffusion recipe ({', '.join(diffusion_presets)}), "
                        f"got {options.diffusion_preset!r}")


@dataclass(frozen=True)
class Allocation:
    """How the budget is spent (minutes; estimates except the reference runs' training budgets).

    Made by :func:`landiff.workflows.study.budget.allocate`; part of the budget is left unallocated
    (cells with small batches run slower per image).

    Attributes:
        minutes: training time of each family's reference run (empty in tiny mode).
        reference_steps: tiny mode: optimiser steps of each reference run; 0 when time-budgeted.
        eval_minutes: estimated sampling + metrics over all runs and curve points.
        setup_minutes: estimated data preparation, trainer start-ups and report writing.
    """

    minutes: dict[Family, float]
    reference_steps: int
    eval_minutes: float
    setup_minutes: float

    def run_minutes(self, family: Family) -> float:
        """The training minutes of ``family``'s reference run (0 in tiny mode)."""
        return self.minutes.get(family, 0.0)
