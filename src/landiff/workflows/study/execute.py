"""Running a study: data, trainings (resumable), evaluations, experiment results, report.

    from landiff.workflows.study import make_options, run_study
    run_study(Path("runs/study"), make_options(budget="60"))          # re-running continues

Order: the data (once); each family's reference run in ``curve_points`` time-budgeted stages,
measuring a curve point after each; the family's other seed runs in as many stages of their matched
steps, a curve point after each; every other run, as many images (or, for an equal-steps cell,
optimiser steps) as its reference (see :mod:`.plan`); then, on rank 0 only, the evaluation of every
run, the experiments and the report. A run whose latest
checkpoint has reached its budget is not trained again (not even opened), so a second invocation
of a finished study trains nothing; an unfinished run is simply trained again and the trainer
resumes it from its checkpoint.

Under ``torchrun`` every process runs the same sequence of trainings (each one a collective, as in
``landiff train``) inside one process group; rank 0 alone writes the data, plan.json, the curve
points, the measurements and the report; the other processes wait for the data
(``OUT/data/layout.json``) and leave after the last training.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from landiff.errors import TrainingDiverged, UserError
from landiff.runs.checkpoint import TrainState
from landiff.runs.config import TrainConfig
from landiff.train import train
from landiff.train.distributed import Dist, env_dist, process_group
from landiff.workflows.study.budget import allocate
from landiff.workflows.study.datasets import DataLayout, prepare_data, read_layout
from landiff.workflows.study.evaluation import RunEval, diverged_eval, evaluate_run, measure_stage
from landiff.workflows.study.experiments import run_experiments
from landiff.workflows.study.options import EXPERIMENTS, Allocation, Experiment, StudyOptions
from landiff.workflows.study.plan import (
    RunSpec,
    build_plan,
    matched_config,
    reference_name,
    run_config,
    staged_config,
    staged_matched_config,
)
from landiff.workflows.study.report import write_report
from landiff.workflows.study.state import StudyState, checkpoint_state, open_state, reached_budget, save_state

DATA_WAIT_SECONDS = 3600


@dataclass
class StudyOutcome:
    """What one invocation did: runs it trained (or resumed), runs it measured, files it wrote."""

    trained: list[str] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)
    report: Path | None = None


@dataclass
class Study:
    """One invocation's context: where, with which options and plan, and on which process."""

    out: Path
    options: StudyOptions
    allocation: Allocation
    layout: DataLayout
    state: StudyState
    dist: Dist
    log: Callable[[str], None]
    device: str | None = None
    outcome: StudyOutcome = field(default_factory=StudyOutcome)

    def run_dir(self, name: str) -> Path:
        return self.out / "runs" / name

    def data(self, spec: RunSpec) -> str:
        return str(self.layout.prepared(spec.variant).resolve())

    def save(self) -> None:
        if self.dist.is_main:
            save_state(self.out, self.state)

    def config(self, spec: RunSpec) -> TrainConfig:
        return run_config(spec, self.options, self.data(spec), self.dist.world)


def _wait_for_data(out: Path) -> DataLayout:
    """Ranks other than 0: wait until rank 0 has written the data."""
    deadline = time.monotonic() + DATA_WAIT_SECONDS
    while (layout := read_layout(out)) is None:
        if time.monotonic() > deadline:
            raise UserError(f"rank 0 did not finish {out / 'data'} within {DATA_WAIT_SECONDS} s; see its log")
        time.sleep(2.0)
    return layout


def _train(study: Study, spec: RunSpec, config: TrainConfig) -> bool:
    """Trains (or resumes) one run; False when it diverged (recorded in plan.json), True otherwise."""
    record = study.state.record(spec.name)
    record.status = "started"
    study.save()
    study.log(f"[study] training {spec.name} ({_budget_text(config)})")
    if spec.name not in study.outcome.trained:
        study.outcome.trained.append(spec.name)
    try:
        train(config, study.run_dir(spec.name), device=study.device, log=study.log)
        if not reached_budget(config, checkpoint_state(study.run_dir(spec.name))):
            # the trainer saved a checkpoint and returned early: SIGTERM / Ctrl-C asked the study to stop
            raise KeyboardInterrupt(f"{spec.name} stopped before its budget; re-run the same command to continue")
    except TrainingDiverged as err:
        if spec.is_reference:
            raise UserError(f"the default {spec.family} config diverged on this data, and every other run is measured "
                            f"against it ({err})") from None
        record.status, record.detail = "diverged", str(err)
        study.log(f"[study] {spec.name} diverged: {err}")
        study.save()
        return False
    return True


def _budget_text(config: TrainConfig) -> str:
    return f"{config.max_minutes:.2f} min" if config.max_minutes else f"{config.train_steps} steps"


def _finish(study: Study, spec: RunSpec) -> None:
    study.state.record(spec.name).status = "finished"
    study.save()


def _reference_state(study: Study, spec: RunSpec) -> TrainState:
    reference = checkpoint_state(study.run_dir(reference_name(spec.family)))
    if reference is None:
        raise RuntimeError(f"the {spec.family} reference run must be trained before {spec.name}")
    return reference


def stage_config(study: Study, spec: RunSpec, stage: int) -> TrainConfig:
    """Seed run ``spec``'s config for curve stage ``stage``: the reference's time-budgeted stages, or the
    same fractions of the steps that match the reference's images."""
    stages = study.options.curve_points
    if spec.is_reference:
        return staged_config(study.config(spec), spec.family, study.allocation, stage, stages)
    images = _reference_state(study, spec).images_seen
    return staged_matched_config(study.config(spec), images, stage, stages, study.dist.world)


def train_seed_run(study: Study, spec: RunSpec) -> None:
    """A seed run on D, in ``curve_points`` stages, with a curve point after each stage (rank 0).

    A stage whose budget the previous stage's last step already passed (coarse steps on a busy
    machine) gets no point of its own: its checkpoint is the previous point's.
    """
    if study.state.record(spec.name).status == "diverged":
        return
    run_dir, stages = study.run_dir(spec.name), study.options.curve_points
    for stage in range(1, stages + 1):
        config = stage_config(study, spec, stage)
        if not reached_budget(config, checkpoint_state(run_dir)) and not _train(study, spec, config):
            return  # diverged (a reference run raises instead)
        if not study.dist.is_main:
            continue
        point, why = measure_stage(study.out, spec.name, spec.family, run_dir, stage, study.layout, study.options)
        if point is not None:
            study.log(f"[study] {spec.name} stage {stage}/{stages}: {point.images_seen} images, SWD {point.swd:.2f}")
        elif why == "no progress":
            study.log(f"[study] {spec.name}: stage {stage} ended within the previous stage's last step; no extra point")
    _finish(study, spec)


def train_matched(study: Study, spec: RunSpec) -> None:
    """A non-reference run outside the seeds: as many training images as its family's reference saw, or
    as many optimiser steps for an equal-steps grid cell."""
    if study.state.record(spec.name).status == "diverged":
        return
    reference = _reference_state(study, spec)
    steps = reference.step if spec.cell is not None and spec.cell.match == "steps" else None
    config = matched_config(study.config(spec), reference.images_seen, study.dist.world, steps=steps)
    if not reached_budget(config, checkpoint_state(study.run_dir(spec.name))):
        if not _train(study, spec, config):
            return
    _finish(study, spec)


def evaluate_runs(study: Study, plan: Sequence[RunSpec]) -> dict[str, RunEval]:
    """Every run's measurements (cached per checkpoint); rank 0."""
    results = {}
    for spec in plan:
        record = study.state.record(spec.name)
        if record.status == "diverged":
            results[spec.name] = diverged_eval(spec.name, spec.family, record.detail, study.out)
            continue
        results[spec.name], fresh = evaluate_run(spec.name, spec.family, study.run_dir(spec.name), study.out,
                                                 study.layout, study.options)
        if fresh:
            study.outcome.evaluated.append(spec.name)
            study.log(f"[study] measured {spec.name}: SWD {results[spec.name].swd:.2f}")
    return results


def open_study(out: Path, options: StudyOptions, log: Callable[[str], None] = print,
               device: str | None = None) -> Study:
    """Checks the options against ``out/plan.json`` and makes sure the data exists."""
    dist = env_dist()
    out.mkdir(parents=True, exist_ok=True)
    state = open_state(out, options, dist.world)
    allocation = allocate(options)
    layout = prepare_data(out, options, log) if dist.is_main else _wait_for_data(out)
    study = Study(out, options, allocation, layout, state, dist, log, device)
    study.save()
    return study


def run_study(out: Path, options: StudyOptions, experiments: Sequence[Experiment] = EXPERIMENTS, *,
              log: Callable[[str], None] = print, device: str | None = None) -> StudyOutcome:
    """Trains what is missing, measures every run, computes ``experiments`` and writes the report.

    Returns:
        What this invocation trained and measured, and the report path (None on ranks other than 0).

    Raises:
        UserError: other options than the study in ``out`` was made with, unusable data, or a
            reference run that diverged.
    """
    study = open_study(out, options, log, device)
    plan = build_plan(options, experiments)
    # Under torchrun one process group serves every training (the trainers use an existing group
    # and leave it alone): re-creating a group per run in one process does not rendezvous reliably.
    # It is left, together, before rank 0 measures, so no rank waits in a collective meanwhile.
    with process_group(device):
        for family in options.families:  # diffusion and the GANs of --gans
            train_seed_run(study, RunSpec(reference_name(family), family, "seed"))
        for spec in plan:
            if not spec.is_reference:
                (train_seed_run if spec.role == "seed" else train_matched)(study, spec)
    if not study.dist.is_main:
        return study.outcome
    evaluate_runs(study, plan)
    results = run_experiments(out, experiments)
    study.outcome.report = write_report(out, results)
    log(f"[study] report: {study.outcome.report}")
    return study.outcome
