"""The study's runs: which trainings, with which configs, and how long each trains.

Runs per family (names ``<family>-…``):

* ``D-seed<s>``, s = 0 … seeds−1: the default config on D, each trained in ``curve_points`` stages
  with a curve point after each stage (the quality-vs-compute curve, repeated over seeds). Seed 0 is
  the *reference*: it is the quality run, the default cell of the grid and the D-model of the
  data-sensitivity experiment, and its stages are time-budgeted.
* ``replace`` / ``remove`` / ``duplicate``: the default config, seed 0, on D′.
* grid cells (:data:`GRID`, one factor at a time around the default): diffusion lr ×¼ / ×4, batch ×½ / ×2
  twice (equal images, and equal steps: ``batch-x1_2-equal-steps``, ``batch-x2-equal-steps``), linear
  schedule, and "fixed σ + mse → learned σ + hybrid" (two factors in one cell, labelled so: with a fixed
  σ the hybrid loss trains exactly like mse, and a learned σ needs the bound); each GAN (the DCGAN and
  ``gan-strong``, the same cells for both) lr ×¼ / ×4, the same four batch cells, Adam β1 0.9 (vs the
  paper's 0.5), 2 D steps per G step.

The families are ``options.families``: diffusion and the GANs of ``--gans``, each GAN family built from
the recipe of its name (``gan_recipe(..., preset=family)``).

Budgets: the reference trains for its minutes (``landiff train --minutes``), in ``curve_points``
equal parts; every other run of the family trains ``ceil(images seen by the reference / images per
step)`` steps, i.e. the same number of training images (a batch ×2 cell takes half the steps; two D
steps per G step take half the G steps), except the equal-steps cells (``Cell.match == "steps"``),
which train the reference's number of optimiser steps (a batch ×2 cell then sees twice the images):
batch size is confounded with the step count in one pair and with the images seen in the other.
The other seed runs stop after the same fractions of their steps as the reference's stages of its
minutes, so the seeds' curve points line up in images seen and FLOPs. Equal images rather than equal
time keeps the comparison deterministic: two runs that differ only in their data see exactly the same
number of examples, whatever the machine's load.

Every run is an ordinary ``landiff train`` run directory under ``OUT/runs/<name>``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from landiff.errors import UserError
from landiff.runs.config import TrainConfig, validate
from landiff.workflows.pairing import diffusion_recipe, gan_recipe
from landiff.workflows.study.options import EXPERIMENTS, MODEL, Allocation, Experiment, Family, StudyOptions

Variant = Literal["D", "replace", "remove", "duplicate"]
VARIANTS: tuple[Variant, ...] = ("replace", "remove", "duplicate")
Role = Literal["seed", "variant", "grid"]
Match = Literal["images", "steps"]
CHECKPOINT_EVERY = 100  # steps: what a kill -9 can lose (SIGTERM / Ctrl-C save at once)


@dataclass(frozen=True)
class Cell:
    """One grid change from the default: ``factor`` set to ``setting`` (the run's name is built from
    both); ``label`` is the setting as plan and report show it, when it says more than ``setting``.
    ``match`` is what the run shares with its family's reference: the number of training images
    (the default) or the number of optimiser steps."""

    factor: str
    setting: str
    label: str = ""
    match: Match = "images"

    @property
    def shown(self) -> str:
        """The setting as the report shows it."""
        return self.label or self.setting


# Batch size at equal training images (×½ takes twice the steps) and at equal optimiser steps (×½ sees
# half the images): each pair confounds the batch with one of the two, together they separate them.
BATCH_CELLS = tuple(Cell("batch", setting, label=f"{setting} (equal {match})", match=match)
                    for match in ("images", "steps") for setting in ("x1/2", "x2"))
# Every GAN gets the same cells, so their stability is measured on the same changes.
GAN_CELLS = (Cell("lr", "x1/4"), Cell("lr", "x4"), *BATCH_CELLS, Cell("beta1", "0.9"), Cell("d_steps", "2"))
GRID: dict[Family, tuple[Cell, ...]] = {
    "diffusion": (Cell("lr", "x1/4"), Cell("lr", "x4"), *BATCH_CELLS, Cell("schedule", "linear"),
                  Cell("loss", "hybrid", label="learned σ + hybrid")),
    "dcgan": GAN_CELLS,
    "gan-strong": GAN_CELLS,
}
# What the default config has for each factor (the middle column of the heat-map). The "loss" cell
# changes the variance with the loss (a fixed σ makes hybrid train like mse; a learned σ with mse
# never trains), so both of its columns name both factors.
DEFAULT_SETTING = {"lr": "x1", "batch": "x1", "schedule": "cosine", "loss": "fixed σ + mse", "beta1": "0.5",
                   "d_steps": "1"}
_FACTORS = {"x1/4": 0.25, "x4": 4.0, "x1/2": 0.5, "x2": 2.0}


@dataclass(frozen=True)
class RunSpec:
    """One training run of the study."""

    name: str
    family: Family
    role: Role
    seed: int = 0
    variant: Variant = "D"
    cell: Cell | None = None

    @property
    def is_reference(self) -> bool:
        return self.role == "seed" and self.seed == 0


def reference_name(family: Family) -> str:
    return f"{family}-D-seed0"


def _slug(cell: Cell) -> str:
    steps = "-equal-steps" if cell.match == "steps" else ""
    return f"{cell.factor}-{cell.setting.replace('/', '_')}{steps}"


def family_runs(family: Family, options: StudyOptions, experiments: Sequence[Experiment]) -> list[RunSpec]:
    """The runs of one family that ``experiments`` need (every experiment needs the seed runs)."""
    runs = [RunSpec(f"{family}-D-seed{s}", family, "seed", seed=s) for s in range(options.seeds)]
    if "data-sensitivity" in experiments:
        runs += [RunSpec(f"{family}-{v}", family, "variant", variant=v) for v in VARIANTS]
    if "hparam-stability" in experiments:
        runs += [RunSpec(f"{family}-{_slug(c)}", family, "grid", cell=c) for c in GRID[family]]
    return runs


def build_plan(options: StudyOptions, experiments: Sequence[Experiment] = EXPERIMENTS) -> list[RunSpec]:
    """All runs, references first (every other run's length depends on them)."""
    unknown = [e for e in experiments if e not in EXPERIMENTS]
    if unknown:
        raise UserError(f"unknown experiment {unknown[0]!r}; choose from {', '.join(EXPERIMENTS)}")
    runs = [run for family in options.families for run in family_runs(family, options, experiments)]
    return sorted(runs, key=lambda run: not run.is_reference)


def _shrink(config: TrainConfig) -> TrainConfig:
    """The ``tiny`` miniature: networks and batches small enough for a test to train in seconds.

    Only the family's own network shrinks: the other family's section keeps its defaults, which
    ``validate`` requires (a field the run would ignore is refused). A GAN keeps its recipe's loss,
    spectral norm, DiffAugment and EMA (all of them work at 8 channels)."""
    config = dataclasses.replace(config, precision="fp32", optim=dataclasses.replace(config.optim, batch=8))
    if config.model == "gan":
        return dataclasses.replace(config, gan=dataclasses.replace(config.gan, ngf=8, ndf=8))
    net = dataclasses.replace(config.net, base_channels=8, channel_mult=(1, 2, 2), num_res_blocks=1,
                              attention_resolutions=(), head_channels=8)  # attention only in the 8 px middle
    return dataclasses.replace(config, net=net)


def base_config(family: Family, options: StudyOptions, data: str, seed: int) -> TrainConfig:
    """The default config of ``family`` (landiff.workflows.pairing's recipes) on ``data``, before its budget."""
    if MODEL[family] == "diffusion":
        config = diffusion_recipe(data, options.resolution, 0.0, preset=options.diffusion_preset)
    else:
        config = gan_recipe(data, options.resolution, 0.0, preset=family)  # a GAN family is named after its recipe
    config = dataclasses.replace(config, seed=seed, preview_count=0, keep_checkpoints=1, log_every=25,
                                 checkpoint_every=CHECKPOINT_EVERY)
    if config.model == "diffusion" and options.ema_length:  # sampled with a post-hoc EMA length
        config = dataclasses.replace(config, posthoc_ema=True)
    return _shrink(config) if options.tiny else config


def apply_cell(config: TrainConfig, cell: Cell | None) -> TrainConfig:
    """The config with one factor changed (None: unchanged)."""
    if cell is None:
        return config
    optim, diffusion, gan = config.optim, config.diffusion, config.gan
    if cell.factor == "lr":
        optim = dataclasses.replace(optim, lr=optim.lr * _FACTORS[cell.setting])
    elif cell.factor == "batch":
        optim = dataclasses.replace(optim, batch=max(1, round(optim.batch * _FACTORS[cell.setting])))
    elif cell.factor == "schedule":
        diffusion = dataclasses.replace(diffusion, schedule=cell.setting)
    elif cell.factor == "loss":  # two factors: fixed σ + mse -> learned σ + hybrid (Improved DDPM §3.1);
        # either alone trains nothing new (hybrid with a fixed σ is mse; a learned σ with mse never trains)
        diffusion = dataclasses.replace(diffusion, loss=cell.setting, variance="learned_range")
    elif cell.factor == "beta1":
        optim = dataclasses.replace(optim, beta1=float(cell.setting))
    elif cell.factor == "d_steps":
        gan = dataclasses.replace(gan, d_steps=int(cell.setting))
    else:
        raise ValueError(f"unknown grid factor {cell.factor!r}")
    return dataclasses.replace(config, optim=optim, diffusion=diffusion, gan=gan)


def per_rank(config: TrainConfig, world: int) -> TrainConfig:
    """Under torchrun the batch is per process: divide it so the global batch stays the plan's.

    Raises:
        UserError: the batch does not divide by the number of processes.
    """
    if world == 1:
        return config
    if config.optim.batch % world:
        raise UserError(f"the study's batch {config.optim.batch} does not divide by {world} processes; "
                        "use a process count that divides it (torchrun --nproc_per_node)")
    return dataclasses.replace(config, optim=dataclasses.replace(config.optim, batch=config.optim.batch // world))


def images_per_step(config: TrainConfig, world: int = 1) -> int:
    """Training images one optimiser step consumes (all processes; GAN: every D step takes a batch)."""
    per_step = config.gan.d_steps if config.model == "gan" else config.optim.accum
    return config.optim.batch * world * per_step


def run_config(spec: RunSpec, options: StudyOptions, data: str, world: int = 1) -> TrainConfig:
    """The run's config without its budget (``train_steps``/``max_minutes`` set by the callers below)."""
    config = apply_cell(base_config(spec.family, options, data, spec.seed), spec.cell)
    config = per_rank(config, world)
    validate(config)
    return config


def _stage_steps(config: TrainConfig, steps: int, stage: int, stages: int) -> TrainConfig:
    """Stage ``stage`` of ``stages`` of a run of ``steps`` optimiser steps: ``ceil(steps · stage / stages)``
    steps so far. A decaying LR schedule keeps the whole run as its horizon from the first stage on, so
    the stages are points along one run's schedule and every resume is allowed."""
    staged = dataclasses.replace(config, train_steps=max(1, math.ceil(steps * stage / stages)), max_minutes=0.0)
    if config.optim.decay == "none":
        return staged
    optim = dataclasses.replace(staged.optim, decay_steps=steps, warmup=_warmup_within(config.optim.warmup, steps))
    return dataclasses.replace(staged, optim=optim)


def staged_config(config: TrainConfig, family: Family, allocation: Allocation, stage: int, stages: int) -> TrainConfig:
    """A reference run's config for curve stage ``stage`` of ``stages`` (1-based): the budget so far.

    A decaying LR schedule (the tiny recipe's cosine) keeps the whole budget as its horizon from the
    first stage on, so the stages are points along one run's schedule and every resume is allowed."""
    if allocation.reference_steps:
        return _stage_steps(config, allocation.reference_steps, stage, stages)
    minutes = allocation.run_minutes(family)
    staged = dataclasses.replace(config, train_steps=1_000_000, max_minutes=minutes * stage / stages)
    optim = dataclasses.replace(staged.optim, decay_steps=1_000_000, decay_minutes=minutes)
    return staged if config.optim.decay == "none" else dataclasses.replace(staged, optim=optim)


def matched_steps(config: TrainConfig, reference_images: int, world: int = 1) -> int:
    """Optimiser steps it takes ``config`` to see ``reference_images`` training images."""
    return max(1, math.ceil(reference_images / images_per_step(config, world)))


def matched_config(config: TrainConfig, reference_images: int, world: int = 1, *, steps: int | None = None) -> TrainConfig:
    """A non-reference run: as many steps as it takes to see ``reference_images`` training images, or
    ``steps`` optimiser steps when given (an equal-steps grid cell: the reference's step count)."""
    steps = matched_steps(config, reference_images, world) if steps is None else max(1, steps)
    if config.optim.decay != "none":
        config = dataclasses.replace(config, optim=dataclasses.replace(
            config.optim, warmup=_warmup_within(config.optim.warmup, steps)))
    return dataclasses.replace(config, train_steps=steps, max_minutes=0.0)


def staged_matched_config(config: TrainConfig, reference_images: int, stage: int, stages: int,
                          world: int = 1) -> TrainConfig:
    """A non-reference seed run's config for curve stage ``stage`` of ``stages``: the same fraction of its
    :func:`matched_config` steps as the reference's stage is of its minutes, the whole run as the horizon
    of a decaying LR schedule. Its last stage is :func:`matched_config`'s run."""
    return _stage_steps(config, matched_steps(config, reference_images, world), stage, stages)


def relative_images(spec: RunSpec, options: StudyOptions) -> float:
    """Training images of the run relative to its family's reference, ≈ its wall-clock relative to the
    reference's (1 but for an equal-steps cell: its images per step over the default's)."""
    if spec.cell is None or spec.cell.match == "images":
        return 1.0
    default = base_config(spec.family, options, "D", spec.seed)
    return images_per_step(apply_cell(default, spec.cell)) / images_per_step(default)


def _warmup_within(warmup: int, steps: int) -> int:
    """The recipe's warm-up, or a tenth of a decaying run too short for it (the LR must have time to decay)."""
    return warmup if warmup < steps else steps // 10
