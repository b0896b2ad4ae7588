"""The plan as text: every run, its budget, its estimated minutes and its state (``--dry-run``).

Estimates: a reference run takes its allocated minutes; every other run of the family trains on as
many images, so about as long (a batch x1/2 cell a little longer, x2 a little shorter); evaluation
and data preparation come from :func:`landiff.workflows.study.options.allocate`'s per-image costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from landiff.workflows.study.options import (
    Allocation,
    Experiment,
    StudyOptions,
    allocate,
    estimate_eval_minutes,
    estimate_setup_minutes,
)
from landiff.workflows.study.plan import RunSpec, build_plan
from landiff.workflows.study.state import StudyState, checkpoint_state, read_state

TINY_RUN_MINUTES = 0.05  # a miniature run on 2 cores, for the estimate only


def _status(out: Path, spec: RunSpec, state: StudyState | None) -> str:
    if state is not None and state.runs.get(spec.name) and state.runs[spec.name].status in ("finished", "diverged"):
        return state.runs[spec.name].status
    progress = checkpoint_state(out / "runs" / spec.name)
    return "pending" if progress is None else f"started ({progress.step} steps)"


def _budget(spec: RunSpec, allocation: Allocation) -> tuple[str, float]:
    """(budget in words, estimated minutes)."""
    if allocation.reference_steps:
        return (f"{allocation.reference_steps} steps" if spec.is_reference else "same images", TINY_RUN_MINUTES)
    minutes = allocation.run_minutes(spec.family)
    return (f"{minutes:.2f} min" if spec.is_reference else "same images as seed 0", minutes)


def plan_text(options: StudyOptions, experiments: Sequence[Experiment], out: Path) -> str:
    """A table of the runs ``experiments`` need, with budgets, estimates and states, and the totals."""
    allocation, state = allocate(options), read_state(out)
    rows = [("run", "budget", "est. min", "state")]
    total = 0.0
    plan = build_plan(options, experiments)
    for spec in plan:
        budget, minutes = _budget(spec, allocation)
        total += minutes
        rows.append((spec.name, budget, f"{minutes:.1f}", _status(out, spec, state)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    # Estimates for the runs listed (fewer than the budget's full plan when one experiment is chosen).
    evaluation = estimate_eval_minutes(options, len(plan) // 2)
    setup = estimate_setup_minutes(options, len(plan) // 2)
    lines.append(f"estimated: training {total:.1f} min + evaluation {evaluation:.1f} min + start-ups, data "
                 f"and report {setup:.1f} min = {total + evaluation + setup:.1f} min (2-core CPU at 32 px; GPUs are faster)")
    return "\n".join(lines)
