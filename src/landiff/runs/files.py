"""Crash-safe file writes (temp file in the same directory, fsync, rename, fsync the directory), a
finished directory renamed into place, and resolving a path read from a file without letting it
escape its root."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath

from landiff.errors import UserError

MAX_JSON_BYTES = 64 * 1024 * 1024  # run files are small; a larger one is not a landiff file


def fsync_dir(directory: Path) -> None:
    """Makes a rename inside ``directory`` durable (no-op where directories can't be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Calls ``write(tmp_path)`` then renames the finished file onto ``path``.

    A crash or exception at any point leaves either the old ``path`` or the new one, never a part.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def replace_dir(finished: Path, target: Path, *, done_elsewhere: Callable[[Path], bool] | None = None) -> None:
    """Renames the directory ``finished`` (a sibling of ``target``, filled and flushed) to ``target``.

    An older ``target`` is first renamed aside to a hidden sibling and deleted once the new one is
    in place; the parent directory is fsync'ed after the rename.

    Args:
        done_elsewhere: when the rename fails and this is true of ``target`` (another process put an
            equally good directory there first), ``finished`` is deleted instead of raising.

    Raises:
        OSError: the rename failed (and ``done_elsewhere`` was not true of ``target``); the older
            ``target``, if there was one, is back in place.
    """
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
        try:
            os.rename(target, old)
        except FileNotFoundError:  # another process replaced it at the same moment
            old = None
    try:
        os.rename(finished, target)
    except OSError:
        if done_elsewhere is None or not done_elsewhere(target):
            if old is not None and not target.exists():
                os.rename(old, target)  # put the older directory back: a failed replace loses nothing
            raise
        shutil.rmtree(finished, ignore_errors=True)
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def resolve_inside(root: Path, relative: str, source: str = "a manifest") -> Path:
    """``root / relative`` for a path that came out of a file (a manifest, a config, a record).

    Such a path is data, not an instruction: it must be relative, must not climb with ``..``, and
    must not lead outside ``root`` through a symbolic link either.

    Raises:
        UserError: naming ``source`` and the offending path.
    """
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise UserError(f"{source} holds an invalid path {relative!r:.80}")
    posix, windows = PurePosixPath(relative), PureWindowsPath(relative)
    if posix.is_absolute() or windows.anchor or ".." in posix.parts or ".." in windows.parts:
        raise UserError(f"{source} holds the path {relative!r:.80}, which leaves {root}; only paths inside it are read")
    root_resolved = Path(root).resolve()
    target = (root_resolved / posix).resolve()
    if target != root_resolved and root_resolved not in target.parents:
        raise UserError(f"{source} holds the path {relative!r:.80}, which leads outside {root} (symbolic link)")
    return target


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is too large for a float")
    return value


def parse_json(text: str | bytes, source: str) -> object:
    """JSON of a run file: UTF-8, numbers that fit a float (NaN/Infinity literals stay allowed:
    metric records write NaN for an undefined spread); a problem is a one-line UserError."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return json.loads(text, parse_float=_finite_float)
    except UnicodeDecodeError:
        raise UserError(f"{source} is not UTF-8 text; restore it or delete it") from None
    except (ValueError, RecursionError) as err:
        raise UserError(f"{source} is not valid JSON ({str(err)[:120]}); restore it or delete it") from None


def read_json(path: Path, source: str | None = None) -> object:
    """The JSON value in ``path`` (see :func:`parse_json`); unreadable or oversized files are UserErrors."""
    name = source or str(path)
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise UserError(f"{name} ({path}) is larger than {MAX_JSON_BYTES // 2**20} MiB; it is not a landiff file")
        data = path.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {name} ({path}): {err.strerror or err}") from None
    return parse_json(data, f"{name} ({path})" if source else name)

