"""``OUT/plan.json``: the study's options and the state of each run, so a killed study continues.

A run's progress lives in its own run directory (the trainer resumes it); ``plan.json`` adds what
a run directory cannot say: the options the study was started with (a re-run with other options
is refused rather than silently mixing two plans), the process count, and which runs diverged
(their last checkpoint never reaches the budget, yet they are done).

A run counts as finished when its latest checkpoint has reached the config's budget: ``step ≥
train_steps``, or ``seconds ≥ max_minutes · 60`` for a time-budgeted run. The checkpoint's JSON
header is read without loading a tensor.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from landiff.errors import UserError
from landiff.runs.checkpoint import TrainState, latest_checkpoint, read_header
from landiff.runs.config import TrainConfig
from landiff.runs.files import atomic_write_text
from landiff.workflows.study.options import StudyOptions

# 3: the GAN families are named after their recipes (dcgan-…, gan-strong-…) and ``options.gans`` says
# which take part; a study of format 2 named its one GAN "gan" (gan-D-seed0 …). 2: every seed run trains
# in stages with its own curve (results/curves/<run>.json); format 1 had curve points for the seed-0
# runs only. Neither can be continued.
STATE_FORMAT = 3
_OLDER = {1: "a study from before every seed run had its own curve",
          2: "a study from before the strong GAN, with one GAN family named 'gan'"}
STATE_NAME = "plan.json"
Status = Literal["pending", "started", "finished", "diverged"]


@dataclass
class RunRecord:
    """What plan.json says about one run: its status and, for a diverged run, the trainer's message."""

    status: Status = "pending"
    detail: str = ""


@dataclass
class StudyState:
    """The contents of plan.json."""

    options: dict[str, Any]
    world: int = 1
    runs: dict[str, RunRecord] = field(default_factory=dict)
    format: int = STATE_FORMAT

    def record(self, name: str) -> RunRecord:
        return self.runs.setdefault(name, RunRecord())


def _differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    return sorted(k for k in stored.keys() | current.keys() if stored.get(k) != current.get(k))


def read_state(out: Path) -> StudyState | None:
    """The parsed ``out/plan.json`` (None when there is none).

    Raises:
        UserError: the file is unreadable or of another format.
    """
    path = out / STATE_NAME
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        state = StudyState(options=raw["options"], world=int(raw["world"]), format=int(raw["format"]),
                           runs={name: RunRecord(**r) for name, r in raw["runs"].items()})
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"cannot read {path} ({err}); pick a new --out, or delete the file to re-check every run") from None
    if state.format != STATE_FORMAT:
        what = _OLDER.get(state.format, "another landiff's study")
        raise UserError(f"{path} has format {state.format} ({what}), this landiff reads format {STATE_FORMAT}; "
                        "pick a new --out (its runs stay readable by landiff sample, eval and compare)")
    return state


def open_state(out: Path, options: StudyOptions, world: int = 1) -> StudyState:
    """Reads ``out/plan.json`` (or starts one) and checks it was made with these options.

    Raises:
        UserError: plan.json is unreadable, or was written with other options or process count.
    """
    current = options.to_dict()
    state = read_state(out)
    if state is None:
        return StudyState(options=current, world=world)
    changed = _differences(state.options, current)
    if changed:
        shown = ", ".join(f"{k}: {state.options.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise UserError(f"{out} holds a study made with other options ({shown}); re-run with the stored options "
                        "to continue it, or pick another --out")
    if state.world != world:
        raise UserError(f"{out} was trained by {state.world} process(es), this job has {world}; "
                        f"continue it with {state.world}, or pick another --out")
    return state


def save_state(out: Path, state: StudyState) -> None:
    """Writes plan.json atomically."""
    values = {"format": state.format, "options": state.options, "world": state.world,
              "runs": {name: asdict(record) for name, record in sorted(state.runs.items())}}
    atomic_write_text(out / STATE_NAME, json.dumps(values, indent=1) + "\n")


def checkpoint_state(run_dir: Path) -> TrainState | None:
    """The counters stored in the run's latest checkpoint (None when it has none)."""
    path = latest_checkpoint(run_dir / "checkpoints")
    if path is None:
        return None
    header = read_header(path)
    try:
        meta = json.loads(header["__metadata__"]["landiff"])
        return TrainState(**meta["state"])
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{path} has no readable landiff state ({err}); move the run aside and re-run the study") from None


def reached_budget(config: TrainConfig, state: TrainState | None) -> bool:
    """Whether a checkpoint with ``state`` ends a run of ``config`` (steps, or its time budget)."""
    if state is None:
        return False
    if state.step >= config.train_steps:
        return True
    return config.max_minutes > 0 and state.seconds >= config.max_minutes * 60
