"""The runs under a folder as records (``landiff runs``): what each one is, how far it trained, its latest
measurements and whether it can be used, read from JSON files and safetensors headers alone.

A *run directory* is any folder holding ``config.json``, ``checkpoints/`` or ``stats.jsonl`` (the files
``landiff train`` writes first). :func:`find_runs` looks for them at any depth below a folder (a study's
``OUT/runs/*``, a ``compare --train`` folder, a tree of experiments) but never inside a run: its
``checkpoints/``, ``ema-snapshots/``, ``samples/`` and the ``previous-*`` folders of ``--restart`` are the
run's own. Hidden folders are skipped and symbolic links to folders are not followed.

:func:`read_run` never unpickles anything and never reads a tensor: the latest checkpoint's safetensors
header (its JSON metadata holds the step, the images seen and the training time), ``config.json``, the tail
of ``stats.jsonl`` and the small JSON records the evaluating commands write. Every problem becomes the
run's state ``broken`` with one reason (:attr:`RunRecord.note`), never an exception, so one damaged run
cannot hide the others.

Measurements (:class:`Measurement`): SWD and FID from ``metrics-swd.jsonl`` / ``metrics-fid.jsonl`` (what
``landiff eval`` and ``landiff compare`` append) and ``compare/summary.json``; the NLL bound from
``metrics-nll.jsonl``; a classifier's held-out accuracy from ``classifier-summary.json``; and for a run of
``landiff study`` (``OUT/runs/NAME``) the SWD the study measured, ``OUT/results/runs/NAME.json``. Records of sample
files landiff did not draw (provenance ``source: external``) or without provenance are not the run's and are
left out. The step a record measured is read from the record itself where it says so, else matched through
the checkpoint SHA-256 it carries against the files that name both (``compare/summary.json``,
``metrics-nll.jsonl``, ``classifier-summary.json`` and the meta of ``samples/*/samples.npz``); where nothing
names it, the step is unknown (None). Of several records of one metric the one of the highest step wins,
and of those the last written.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import zipfile
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from landiff.errors import UserError
from landiff.runs.checkpoint import landiff_meta, list_checkpoints, read_header
from landiff.runs.config import MODELS, TrainConfig
from landiff.runs.files import MAX_JSON_BYTES, parse_json
from landiff.runs.run_dir import LOCK_NAME

RUN_MARKERS = ("config.json", "checkpoints", "stats.jsonl")
STATES = ("finished", "training", "stopped", "no-checkpoint", "broken")
PROC_LOCKS = Path("/proc/locks")  # Linux: the advisory locks held now, by device and inode
METRICS = ("swd", "fid", "nll", "accuracy")
# The columns of the table, in order; every one is a --sort key.
COLUMNS = ("name", "family", "preset", "resolution", "step", "images", "time", "loss", *METRICS, "state")
STATS_TAIL_BYTES = 64 * 1024  # the last log lines are all that is read of stats.jsonl
LOSS_FIELDS = ("loss", "loss_d", "loss_g")
# `landiff compare` describes its samples as "<run> step N, seeds A..B" (workflows/compare.py).
COMPARE_SAMPLES = re.compile(r" step (\d+), seeds -?\d+\.\.-?\d+$")


@dataclasses.dataclass(frozen=True)
class Measurement:
    """The latest value of one metric of a run.

    Attributes:
        value: SWD ×10³, FID, the NLL bound in bits/dim, or the held-out accuracy in [0, 1].
        spread: its ± as the metric reports it (std over repeats; the standard error for the NLL), None if none.
        step: the checkpoint step it measured (None: no file names it).
        latest: whether that is the run's latest checkpoint (None when either step is unknown).
        source: the file it was read from, relative to the run.
    """

    value: float
    spread: float | None
    step: int | None
    latest: bool | None
    source: str


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One run directory as ``landiff runs`` lists it (None: unknown or not applicable).

    Attributes:
        name: its path relative to the folder listed (``.`` for the folder itself), with ``/``.
        path: its path as found.
        family: ``diffusion``, ``gan`` or ``classifier`` (``TrainConfig.model``).
        preset: the recipe it was made from; resolution: its image size in px.
        step: the latest checkpoint's step; checkpoint: that file, relative to the run.
        target_steps: ``--steps`` (``train_steps``); target_minutes: ``--minutes`` when time-budgeted.
        images_seen, train_seconds: counters of the latest checkpoint (all ranks, all invocations).
        loss: the last logged training loss (diffusion, classifier); loss_d, loss_g: the GAN's.
        loss_step: the step of that log line.
        swd, fid, nll, accuracy: the latest :class:`Measurement` of each.
        state: one of :data:`STATES`: ``finished`` (the latest checkpoint reached ``--steps`` or ``--minutes``),
            ``training`` (a trainer holds the run's ``.lock`` now; seen where ``/proc/locks`` exists, i.e. Linux),
            ``stopped`` (a checkpoint short of both: re-running ``landiff train`` continues it),
            ``no-checkpoint`` (nothing saved yet), ``broken`` (a file the other commands would refuse).
        note: why it is broken, the trainer's process id, or that a stopped run's last loss is NaN; else None.
    """

    name: str
    path: Path
    family: str | None = None
    preset: str | None = None
    resolution: int | None = None
    step: int | None = None
    checkpoint: str | None = None
    target_steps: int | None = None
    target_minutes: float | None = None
    images_seen: int | None = None
    train_seconds: float | None = None
    loss: float | None = None
    loss_d: float | None = None
    loss_g: float | None = None
    loss_step: int | None = None
    swd: Measurement | None = None
    fid: Measurement | None = None
    nll: Measurement | None = None
    accuracy: Measurement | None = None
    state: str = "broken"
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as JSON values: every key always present, numbers as numbers, None as null."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["path"] = str(self.path)
        for metric in METRICS:
            measured = values[metric]
            values[metric] = dataclasses.asdict(measured) if measured is not None else None
        return values


# ---------------------------------------------------------------------- finding runs
def is_run_dir(folder: Path) -> bool:
    """Whether ``folder`` holds one of :data:`RUN_MARKERS` (``checkpoints`` as a folder)."""
    return (folder / "config.json").is_file() or (folder / "stats.jsonl").is_file() or (folder / "checkpoints").is_dir()


def find_runs(root: Path) -> list[Path]:
    """The run directories at or below ``root``, sorted by path; none is looked for inside a run.

    Unreadable folders below ``root`` are skipped (the caller checks ``root`` itself).
    """
    found: list[Path] = []
    pending = [Path(root)]
    while pending:
        folder = pending.pop()
        if is_run_dir(folder):
            found.append(folder)
            continue
        try:
            with os.scandir(folder) as entries:
                children = [Path(e.path) for e in entries if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
        pending.extend(children)
    return sorted(found, key=lambda p: p.parts)


def list_runs(root: Path) -> list[RunRecord]:
    """:func:`read_run` of every run below ``root`` (see :func:`find_runs`), in path order."""
    root, locks = Path(root), held_locks()
    return [read_run(path, path.relative_to(root).as_posix() or ".", locks) for path in find_runs(root)]


def held_locks(source: Path = PROC_LOCKS) -> dict[tuple[int, int, int], int]:
    """(device major, minor, inode) → process id of every lock held now, read from ``/proc/locks``.

    Reading the list takes no lock, so a trainer starting meanwhile is never refused because of it
    (trying the run's ``.lock`` would be). Empty where the file does not exist (not Linux).
    """
    try:
        lines = source.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return {}
    held = {}
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->":  # "->": a process waiting for the lock, not holding it
            continue
        parts = fields[5].split(":")
        try:
            held[(int(parts[0], 16), int(parts[1], 16), int(parts[2]))] = int(fields[4])
        except (ValueError, IndexError):
            continue
    return held


# ---------------------------------------------------------------------- one run
def read_run(root: Path, name: str, locks: dict[tuple[int, int, int], int] | None = None) -> RunRecord:
    """The record of the run directory ``root``; any problem is its ``broken`` state, never an exception.

    ``locks``: :func:`held_locks` (None: not checked), to tell a run being trained from a stopped one.
    """
    problems: list[str] = []
    config, raw = _config(root, problems)
    state, checkpoint, meta_config = _checkpoint(root, problems)
    identity = _identity(raw if raw is not None else meta_config)
    losses = _last_losses(root / "stats.jsonl")
    step = state["step"] if state is not None else None
    record = RunRecord(
        name=name, path=root, **identity,
        step=step, checkpoint=checkpoint.relative_to(root).as_posix() if checkpoint is not None else None,
        images_seen=state["images_seen"] if state is not None else None,
        train_seconds=float(state["seconds"]) if state is not None else None,
        **losses, **_measurements(root, step),
    )
    if config is not None:
        record = dataclasses.replace(record, family=config.model, preset=config.preset, resolution=config.resolution,
                                     target_steps=config.train_steps, target_minutes=config.max_minutes or None)
    if problems:
        return dataclasses.replace(record, state="broken", note=problems[0])
    trainer = _trainer(root, locks or {})
    if trainer is not None:
        return dataclasses.replace(record, state="training", note=f"a trainer holds its .lock (pid {trainer})")
    if state is None or config is None:
        return dataclasses.replace(record, state="no-checkpoint")
    return _progress(record, config, state)


def _trainer(root: Path, locks: dict[tuple[int, int, int], int]) -> int | None:
    """The process id holding ``root/.lock`` according to ``locks`` (None: no one, or not known)."""
    if not locks:
        return None
    try:
        info = (root / LOCK_NAME).stat()
    except OSError:
        return None
    return locks.get((os.major(info.st_dev), os.minor(info.st_dev), info.st_ino))


def _progress(record: RunRecord, config: TrainConfig, state: dict[str, Any]) -> RunRecord:
    """``finished`` or ``stopped``, as the trainer decides when to stop (train/loop_common.py ``out_of_time``)."""
    out_of_time = config.max_minutes > 0 and state["seconds"] >= config.max_minutes * 60
    if state["step"] >= config.train_steps or out_of_time:
        return dataclasses.replace(record, state="finished")
    losses = [v for v in (record.loss, record.loss_d, record.loss_g) if v is not None]
    note = None
    if any(not math.isfinite(v) for v in losses):  # the NaN guard raises before any checkpoint of the bad steps
        note = ("its last logged loss is not finite: the NaN guard (--max-skips) probably stopped it; lower --lr "
                "or raise --warmup before re-running")
    return dataclasses.replace(record, state="stopped", note=note)


def _config(root: Path, problems: list[str]) -> tuple[TrainConfig | None, dict[str, Any] | None]:
    """(validated config, raw JSON object) of ``config.json``; a problem is appended to ``problems``."""
    path = root / "config.json"
    if not path.is_file():
        problems.append("no config.json (not written by landiff train, or moved away)")
        return None, None
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise UserError(f"config.json is larger than {MAX_JSON_BYTES // 2**20} MiB; it is not a landiff file")
        raw = parse_json(path.read_bytes(), "config.json")
    except OSError as err:
        problems.append(f"config.json cannot be read ({err.strerror or err})")
        return None, None
    except UserError as err:
        problems.append(str(err))
        return None, None
    if not isinstance(raw, dict):
        problems.append("config.json is not a JSON object; restore it from a checkpoint's metadata")
        return None, None
    try:
        return TrainConfig.from_dict(raw), raw
    except UserError as err:
        problems.append(f"config.json: {err}")
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, RecursionError) as err:
        problems.append(f"config.json holds an unreadable run config ({type(err).__name__}: {str(err)[:120]})")
    return None, raw


def _checkpoint(root: Path, problems: list[str]) -> tuple[dict[str, Any] | None, Path | None, dict[str, Any] | None]:
    """(state counters, file, stored config) of the latest checkpoint, from its header only."""
    found = list_checkpoints(root / "checkpoints")
    if not found:
        return None, None, None
    step, path = found[-1]
    where = path.relative_to(root).as_posix()
    try:
        meta = landiff_meta(read_header(path))
    except UserError as err:
        problems.append(str(err).replace(str(path), where))
        return None, path, None
    except (ValueError, RecursionError):
        problems.append(f"{where} has unreadable landiff metadata; it was not written by landiff train")
        return None, path, None
    state = meta.get("state") if isinstance(meta, dict) else None
    reason = _state_problem(state, step)
    if reason is not None:
        problems.append(f"{where} {reason}")
        return None, path, None
    stored = meta.get("config") if isinstance(meta, dict) else None
    return state, path, stored if isinstance(stored, dict) else None


def _state_problem(state: Any, step: int) -> str | None:
    """Why a checkpoint's ``state`` metadata is not one ``landiff train`` writes (None when it is)."""
    if not isinstance(state, dict):
        return "has no landiff training state; it was not written by landiff train"
    counters = [state.get(k) for k in ("step", "images_seen", "skipped_steps", "consecutive_skips")]
    seconds = state.get("seconds")
    if (not all(_is_int(v) and v >= 0 for v in counters) or not _is_number(seconds) or not 0 <= seconds < math.inf):
        return "has a training state with invalid counters; it was not written by landiff train"
    if state["step"] != step:
        return f"holds step {state['step']} but is named for step {step}; it was renamed or copied over"
    return None


def _identity(raw: dict[str, Any] | None) -> dict[str, Any]:
    """family, preset, resolution and the targets as far as an unvalidated config object tells them."""
    raw = raw or {}
    model, preset, resolution = raw.get("model"), raw.get("preset"), raw.get("resolution")
    steps, minutes = raw.get("train_steps"), raw.get("max_minutes")
    return {"family": model if model in MODELS else None, "preset": preset if isinstance(preset, str) else None,
            "resolution": resolution if _is_int(resolution) else None,
            "target_steps": steps if _is_int(steps) else None,
            "target_minutes": float(minutes) if _is_number(minutes) and minutes > 0 else None}


def _last_losses(path: Path) -> dict[str, Any]:
    """loss, loss_d, loss_g and loss_step of the last ``stats.jsonl`` line that logs a loss (only its tail is read)."""
    values: dict[str, Any] = {name: None for name in (*LOSS_FIELDS, "loss_step")}
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - STATS_TAIL_BYTES))
            lines = handle.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return values
    if size > STATS_TAIL_BYTES:
        lines = lines[1:]  # the first line read is a part of one
    for line in reversed(lines):
        record = _loads(line)
        if isinstance(record, dict) and any(_is_number(record.get(k)) for k in LOSS_FIELDS):
            values.update({k: float(record[k]) if _is_number(record.get(k)) else None for k in LOSS_FIELDS})
            values["loss_step"] = record["step"] if _is_int(record.get("step")) else None
            return values
    return values


# ---------------------------------------------------------------------- measurements
@dataclasses.dataclass
class _Candidate:
    metric: str
    value: float
    spread: float | None
    step: int | None
    sha: str | None
    source: str
    order: int


def _measurements(root: Path, latest_step: int | None) -> dict[str, Any]:
    """The latest :class:`Measurement` of each of :data:`METRICS` (see the module docstring)."""
    shas: dict[str, int] = {}
    candidates = (_summary_candidates(root, shas) + _jsonl_candidates(root, "swd", shas)
                  + _jsonl_candidates(root, "fid", shas) + _nll_candidates(root, shas) + _classifier_candidates(root, shas)
                  + _study_candidates(root))
    if any(c.step is None and c.sha is not None and c.sha not in shas for c in candidates):
        shas.update({sha: step for sha, step in _sample_steps(root).items() if sha not in shas})
    best: dict[str, Any] = {metric: None for metric in METRICS}
    ranks: dict[str, tuple[int, int]] = {}
    for c in candidates:
        step = c.step if c.step is not None else shas.get(c.sha or "")
        rank = (step if step is not None else -1, c.order)
        if c.metric not in ranks or rank > ranks[c.metric]:
            ranks[c.metric] = rank
            latest = None if step is None or latest_step is None else step == latest_step
            best[c.metric] = Measurement(value=c.value, spread=c.spread, step=step, latest=latest, source=c.source)
    return best


def _summary_candidates(root: Path, shas: dict[str, int]) -> list[_Candidate]:
    """SWD and FID of ``compare/summary.json`` (ranked before the jsonl lines of the same step)."""
    summary = _json_object(root / "compare" / "summary.json")
    if summary is None:
        return []
    sha, step = _record_sha(summary), summary.get("step")
    step = step if _is_int(step) else None
    if sha is not None and step is not None:
        shas.setdefault(sha, step)
    metrics = summary.get("metrics")
    metrics = metrics if isinstance(metrics, dict) else {}
    found = []
    for metric in ("swd", "fid"):
        value, spread = _estimate(metrics.get(metric), "value", "std")
        if value is not None and (sha is not None or step is not None):
            found.append(_Candidate(metric, value, spread, step, sha, "compare/summary.json", -1))
    return found


def _jsonl_candidates(root: Path, metric: str, shas: dict[str, int]) -> list[_Candidate]:
    """The ``metrics-<metric>.jsonl`` records drawn from this run's checkpoints (MetricRecord.to_json lines)."""
    source = f"metrics-{metric}.jsonl"
    found = []
    for order, record in enumerate(_jsonl(root / source)):
        sha = _record_sha(record)
        estimates = record.get("estimates")
        if sha is None or not isinstance(estimates, dict):
            continue
        value, spread = _estimate(estimates.get(metric), "value", "std")
        if value is None:
            continue
        described = COMPARE_SAMPLES.search(record["samples"]) if isinstance(record.get("samples"), str) else None
        step = int(described.group(1)) if described else None
        if step is not None:
            shas.setdefault(sha, step)
        found.append(_Candidate(metric, value, spread, step, sha, source, order))
    return found


def _nll_candidates(root: Path, shas: dict[str, int]) -> list[_Candidate]:
    """The bounds of ``metrics-nll.jsonl`` (``landiff eval nll``: bits/dim mean ± s.e. and the step)."""
    found = []
    for order, record in enumerate(_jsonl(root / "metrics-nll.jsonl")):
        sha, step = _record_sha(record), record.get("step")
        value, spread = _estimate(record.get("bpd"), "mean", "se")
        if value is None or sha is None:
            continue
        step = step if _is_int(step) else None
        if step is not None:
            shas.setdefault(sha, step)
        found.append(_Candidate("nll", value, spread, step, sha, "metrics-nll.jsonl", order))
    return found


def _classifier_candidates(root: Path, shas: dict[str, int]) -> list[_Candidate]:
    """A classifier run's held-out accuracy (``classifier-summary.json``, written at its last evaluation)."""
    summary = _json_object(root / "classifier-summary.json")
    if summary is None or not _is_number(summary.get("heldout_acc")):
        return []
    sha, step = _record_sha(summary), summary.get("step")
    step = step if _is_int(step) else None
    if sha is not None and step is not None:
        shas.setdefault(sha, step)
    return [_Candidate("accuracy", float(summary["heldout_acc"]), None, step, sha, "classifier-summary.json", 0)]


def _study_candidates(root: Path) -> list[_Candidate]:
    """The SWD ``landiff study`` measured on ``OUT/runs/NAME``, from ``OUT/results/runs/NAME.json`` (its step included)."""
    if root.parent.name != "runs":
        return []
    result = _json_object(root.parent.parent / "results" / "runs" / f"{root.name}.json")
    if result is None or not _is_int(result.get("step")) or not isinstance(result.get("checkpoint_sha256"), str):
        return []
    value, spread = _estimate(result, "swd", "swd_std")
    if value is None:
        return []
    return [_Candidate("swd", value, spread, result["step"], result["checkpoint_sha256"],
                       f"../../results/runs/{root.name}.json", -2)]


def _sample_steps(root: Path) -> dict[str, int]:
    """checkpoint SHA-256 → step named in the meta of ``samples/*/samples.npz`` (``landiff sample``).

    Only the ``meta`` member is read (a JSON string; ``allow_pickle=False``), never the images.
    """
    found: dict[str, int] = {}
    for path in sorted((root / "samples").glob("*/samples.npz")):
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = _loads(str(data["meta"])) if "meta" in data.files else None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            continue
        if not isinstance(meta, dict):
            continue
        sha, step = _record_sha(meta), meta.get("step")
        if sha is not None and _is_int(step):
            found.setdefault(sha, step)
    return found


# ---------------------------------------------------------------------- small readers
def _record_sha(record: dict[str, Any]) -> str | None:
    """The checkpoint SHA-256 of a derived record drawn by landiff from a checkpoint (None: external, or unknown)."""
    provenance = record.get("provenance")
    if isinstance(provenance, dict):
        sha = provenance.get("checkpoint_sha256")
        return sha if provenance.get("source", "checkpoint") == "checkpoint" and isinstance(sha, str) else None
    sha = record.get("checkpoint_sha256")  # classifier-summary.json names its checkpoint directly
    return sha if isinstance(sha, str) and "provenance" not in record else None


def _estimate(entry: Any, value_key: str, spread_key: str) -> tuple[float | None, float | None]:
    if not isinstance(entry, dict) or not _is_number(entry.get(value_key)) or not math.isfinite(entry[value_key]):
        return None, None
    spread = entry.get(spread_key)
    return float(entry[value_key]), float(spread) if _is_number(spread) and math.isfinite(spread) else None


def _json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when it is missing, too large, unreadable or not an object."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_JSON_BYTES:
            return None
        value = parse_json(path.read_bytes(), str(path))
    except (OSError, UserError):
        return None
    return value if isinstance(value, dict) else None


def _jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a ``*.jsonl`` file, in order; unreadable lines (a torn last one) are skipped."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_JSON_BYTES:
            return []
        lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [record for record in map(_loads, lines) if isinstance(record, dict)]


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ---------------------------------------------------------------------- sorting
# Sort direction of each column: text A to Z; losses and the distances best (lowest) first; progress and
# accuracy highest first. Runs without the value come last, then ties by name.
HIGHEST_FIRST = frozenset({"resolution", "step", "images", "time", "accuracy"})


def sort_key_value(record: RunRecord, column: str) -> Any:
    """The value ``column`` sorts ``record`` by (None when the run has none)."""
    if column in METRICS:
        measured = getattr(record, column)
        return measured.value if measured is not None else None
    direct = {"images": record.images_seen, "time": record.train_seconds, "state": STATES.index(record.state)}
    if column in direct:
        return direct[column]
    if column == "loss":
        return record.loss if record.loss is not None else record.loss_g
    return getattr(record, column)


def sort_runs(records: list[RunRecord], column: str) -> list[RunRecord]:
    """``records`` ordered by ``column`` (one of :data:`COLUMNS`); see :data:`HIGHEST_FIRST`.

    Raises:
        UserError: an unknown column.
    """
    if column not in COLUMNS:
        raise UserError(f"--sort {column!r:.40} is not a column; use one of {', '.join(COLUMNS)}")
    by_name = sorted(records, key=lambda r: r.name)
    present = [r for r in by_name if sort_key_value(r, column) is not None]
    missing = [r for r in by_name if sort_key_value(r, column) is None]
    present.sort(key=lambda r: sort_key_value(r, column), reverse=column in HIGHEST_FIRST)
    return present + missing
