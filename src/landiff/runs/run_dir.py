"""The run directory contract: ``config.json``, ``stats.jsonl``, ``checkpoints/``, ``samples/``.

Opening a run directory decides between a fresh start and a resume: re-running the same command
resumes from the latest checkpoint; a config that differs in a field that matters is refused with
the list of fields; ``restart`` moves the old contents aside before starting over — everything but
``.lock`` and earlier ``previous-*`` folders, so the old model's evaluations (``compare/``,
``metrics-*.jsonl``, sample folders) cannot be mistaken for the new model's. While a trainer
writes a run it holds ``.lock`` (an advisory ``flock``, released by the OS even on ``kill -9``), so
a second trainer on the same directory is refused instead of interleaving checkpoints, and temp
files left by a killed writer can be swept safely.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a second trainer is not detected there
    fcntl = None  # type: ignore[assignment]

from landiff.errors import UserError
from landiff.runs.checkpoint import latest_checkpoint
from landiff.runs.config import TrainConfig, config_differences, read_config, write_config
from landiff.runs.files import atomic_write_text

RUN_ENTRIES = ("config.json", "stats.jsonl", "checkpoints", "samples", "classes.json", "data-skipped.txt")
LOCK_NAME = ".lock"


@dataclass
class RunDir:
    """Paths of one run and the checkpoint to resume from (None for a fresh start)."""

    root: Path
    resume_from: Path | None

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def stats(self) -> Path:
        return self.root / "stats.jsonl"


def open_run_dir(root: Path, config: TrainConfig, restart: bool = False) -> RunDir:
    """Prepares ``root`` for ``config``: fresh, resumed, or restarted (old contents moved aside)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise UserError(f"run directory {root} is a file; pass a directory to --run")
    stored_path = root / "config.json"
    if restart and root.is_dir():
        _move_aside(root)
    if stored_path.exists():
        stored = read_config(stored_path)
        differences = config_differences(stored, config)
        if differences:
            raise UserError(
                f"{root} holds a run with a different config ({', '.join(differences)}); "
                "re-run with the same options to resume, pick another --run, or pass --restart"
            )
    elif root.is_dir() and any(p.name in RUN_ENTRIES for p in root.iterdir()):
        raise UserError(f"{root} has run files but no config.json; pick another --run or pass --restart")
    root.mkdir(parents=True, exist_ok=True)
    write_config(config, stored_path)
    return RunDir(root=root, resume_from=latest_checkpoint(root / "checkpoints"))


class RunLock:
    """Exclusive lock on ``root/.lock`` for as long as one trainer writes the run (rank 0 only)."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / LOCK_NAME
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        """Takes the lock (creating ``root``), sweeps stale temp files.

        Raises:
            UserError: another live process holds it, or ``root`` is a file.
        """
        root = self.path.parent
        if root.exists() and not root.is_dir():
            raise UserError(f"run directory {root} is a file; pass a directory to --run")
        root.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                handle.close()
                raise UserError(
                    f"{root} is being trained by another process (pid {holder}); wait for it to finish, "
                    "stop it, or pick another --run"
                ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        sweep_temp_files(root)

    def release(self) -> None:
        if self._handle is not None:
            if fcntl is not None:
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def sweep_temp_files(root: Path) -> list[Path]:
    """Deletes ``.*.tmp`` files that an atomic write killed mid-way left behind; returns them.

    Only safe while holding :class:`RunLock` (no live writer can own them).
    """
    swept = []
    for folder in (root, root / "checkpoints", root / "samples"):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                swept.append(tmp)
    return swept


PREVIOUS_PREFIX = "previous-"


def _move_aside(root: Path) -> Path | None:
    """Moves everything of the previous run into ``root/previous-<time>[-k]/`` (nothing is deleted).

    Everything means every entry but the trainer's ``.lock`` and earlier ``previous-*`` folders:
    checkpoints and stats, and also what was derived from them (``compare/``, ``metrics-*.jsonl``,
    ``samples/<sampler>-<steps>/``, memorisation pairs …). Returns the folder, None when there was
    nothing to move.
    """
    entries = [p for p in root.iterdir() if p.name != LOCK_NAME and not p.name.startswith(PREVIOUS_PREFIX)]
    if not entries:
        return None
    stamp = f"{PREVIOUS_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}"
    for k in range(1, 10_000):  # two restarts within one second get -2, -3 …
        target = root / (stamp if k == 1 else f"{stamp}-{k}")
        try:
            target.mkdir()
            break
        except FileExistsError:
            continue
    else:
        raise UserError(f"{root} has too many {stamp}* folders; remove some before --restart")
    for path in entries:
        shutil.move(str(path), str(target / path.name))
    return target


def truncate_stats(path: Path, step: int) -> None:
    """Drops stats lines logged after ``step`` (they belong to steps the resume will redo)."""
    if not path.exists():
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as err:
        raise UserError(f"{path} cannot be read as UTF-8 text ({type(err).__name__}); move it aside to resume "
                        "(the training log restarts there)") from None
    kept = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
            logged = record.get("step", 0) if isinstance(record, dict) else None
            if isinstance(logged, (int, float)) and not isinstance(logged, bool) and logged <= step:
                kept.append(line)
        except (ValueError, RecursionError):
            continue  # a torn last line from a crash (other unreadable lines are dropped the same way)
    atomic_write_text(path, "".join(f"{line}\n" for line in kept))


def append_stats(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def read_stats(path: Path) -> list[dict[str, Any]]:
    """The records of ``stats.jsonl``; a torn last line (a crash mid-write) and non-object lines are skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
