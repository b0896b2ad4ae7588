"""``landiff study``: measure the four impressions the diffusion-vs-GAN study ended with.

    landiff study --data synthetic --budget 60 --out runs/study        # all five experiments, ~60 min on 2 cores
    landiff study data-sensitivity --budget 60 --out runs/study        # one experiment (shares the runs)
    landiff study --budget tiny --out /tmp/s                           # the seconds-long miniature

Modules: :mod:`.options` (options, per-family tables), :mod:`.plan` (runs and their configs),
:mod:`.budget` (how --budget is split),
:mod:`.state` (plan.json, run status), :mod:`.datasets` and :mod:`.perturb` (D and D′),
:mod:`.execute` (training, resumable), :mod:`.evaluation` (measurements), :mod:`.similarity`
(distances, "same picture"), :mod:`.experiments` and :mod:`.sensitivity` (the five experiments),
:mod:`.uncertainty` (statistics), :mod:`.verdict` (the four claims), :mod:`.report`,
:mod:`.sections` and :mod:`.figures` (study.html / study.md). See docs/study.md.
"""

from landiff.workflows.study.budget import allocate
from landiff.workflows.study.execute import StudyOutcome, run_study
from landiff.workflows.study.options import EXPERIMENTS, StudyOptions, make_options
from landiff.workflows.study.plan import RunSpec, build_plan
from landiff.workflows.study.report import write_report

__all__ = ["EXPERIMENTS", "RunSpec", "StudyOptions", "StudyOutcome", "allocate", "build_plan", "make_options",
           "run_study", "write_report"]
