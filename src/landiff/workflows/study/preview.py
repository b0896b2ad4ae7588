"""The plan as text: every run, its budget, its estimated minutes and its state (``--dry-run``).

Estimates: a reference run takes its allocated minutes; every other run of the family trains on as
many images, so about as long (a batch x1/2 cell a little longer, x2 a little shorter), except the
equal-steps cells, which see their batch factor times the images (x1/2: half as long, x2: twice);
evaluation and data preparation come from :mod:`landiff.workflows.study.budget`'s per-image costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from landiff.workflows.study.budget import allocate, estimate_eval_minutes, estimate_run_minutes, estimate_setup_minutes
from landiff.workflows.study.options import Allocation, Experiment, StudyOptions
from landiff.workflows.study.plan import RunSpec, build_plan
from landiff.workflows.study.state import StudyState, checkpoint_state, read_state

TINY_RUN_MINUTES = 0.05  # a miniature run on 2 cores, for the estimate only


def _status(out: Path, spec: RunSpec, state: StudyState | None) -> str:
    if state is not None and state.runs.get(spec.name) and state.runs[spec.name].status in ("finished", "diverged"):
        return state.runs[spec.name].status
    progress = checkpoint_state(out / "runs" / spec.name)
    return "pending" if progress is None else f"started ({progress.step} steps)"


def _budget(spec: RunSpec, options: StudyOptions, allocation: Allocation) -> tuple[str, float]:
    """(budget in words, estimated minutes)."""
    same = "same steps" if spec.cell is not None and spec.cell.match == "steps" else "same images"
    stages = f", {options.curve_points} stages" if spec.role == "seed" and options.curve_points > 1 else ""
    if allocation.reference_steps:
        return (f"{allocation.reference_steps} steps" if spec.is_reference else same) + stages, TINY_RUN_MINUTES
    minutes = estimate_run_minutes(spec, options, allocation)
    return (f"{minutes:.2f} min" if spec.is_reference else f"{same} as seed 0") + stages, minutes


def plan_text(options: StudyOptions, experiments: Sequence[Experiment], out: Path) -> str:
    """A table of the runs ``experiments`` need, with budgets, estimates and states, and the totals."""
    allocation, state = allocate(options), read_state(out)
    rows = [("run", "budget", "est. min", "state")]
    total = 0.0
    plan = build_plan(options, experiments)
    for spec in plan:
        budget, minutes = _budget(spec, options, allocation)
        total += minutes
        rows.append((spec.name, budget, f"{minutes:.1f}", _status(out, spec, state)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    # Estimates for the runs listed (fewer than the budget's full plan when one experiment is chosen).
    evaluation = estimate_eval_minutes(options, plan)
    setup = estimate_setup_minutes(options, plan)
    lines.append(f"estimated: training {total:.1f} min + evaluation {evaluation:.1f} min + start-ups, data "
                 f"and report {setup:.1f} min = {total + evaluation + setup:.1f} min (2-core CPU at 32 px; GPUs are faster)")
    return "\n".join(lines)
