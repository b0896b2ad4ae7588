"""One validation layer for every command: option specs and the shared checks of paths, devices, seeds and sizes.

An :class:`Spec` describes one command-line option: its name, kind, range or choices, unit, default
and a one-line help. Commands declare their argparse arguments from specs (:meth:`Spec.add_to`), so
the ``--help`` texts are generated from the same record that checks the value: the range stated in
the help is the range enforced. ``docs/cli.md`` and the README's command table are rendered from the
same records (``python -m landiff.cli.docs``). A bad value is refused while parsing, as one line naming the option
and what it accepts (``landiff: error: sample: argument --n: must be an integer >= 1, got '0'``).

The checks that need more than the text of one option (a folder that must be writable, a device
that must exist, an estimate of memory against what is available) are plain functions here, called
by the commands before any computation starts; each raises :class:`landiff.errors.UserError` with
one line naming the option and the fix.

This module depends only on the standard library, torch and :mod:`landiff.errors`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, overload

import torch

from landiff.errors import UserError

SEED_LIMIT = 2**63  # seeds are keyed into 64-bit generators (landiff.train.data_stream.keyed_seed)
KINDS = ("int", "float", "str", "choice", "ints", "seed", "device", "path", "size", "switch")


@dataclasses.dataclass(frozen=True)
class Spec:
    """One option: what it is, what it accepts, and its one-line help.

    Attributes:
        name: the flag (``--batch``) or, for a positional argument, its name (``path``).
        kind: one of :data:`KINDS`: ``int``/``float`` numbers, ``str`` free text (non-empty),
            ``choice`` one of ``choices``, ``ints`` comma-separated integers, ``seed`` an integer in
            [0, 2**63), ``device`` cpu|cuda|cuda:N|mps (checked against this machine), ``path`` a
            non-empty path (existence is checked by the command, which knows input from output),
            ``size`` R or HxW pixels, ``switch`` an on/off flag without a value (argparse's store_true).
        help: one line saying what the option does (never empty; the range, unit and default are appended).
        default: the value when the option is left out (None: decided by the command; say how in
            ``default_text``). A switch's default is False or None (None: "not given", for commands
            that tell a given switch from the recipe's value).
        low, high: inclusive bounds of a number (None: unbounded); ``high_open`` makes ``high``
            exclusive, as runs/config.py validate() does for its rates: [low, high).
        low_open: makes ``low`` exclusive (a number > low).
        choices: the accepted words of a ``choice``.
        unit: what the number counts (images, steps, minutes, px …), shown in the help.
        required: the option must be given.
        dest: attribute name on the parsed namespace (default: argparse's from the name).
        metavar: placeholder in the usage line (default: derived from the kind).
        details: longer explanation (optional; for documentation generated from the specs).
        allow_empty: an empty text is a value (e.g. ``--sweep ''`` for no sweep).
        nargs: argparse's nargs of a positional argument (e.g. ``"*"`` or ``"+"``).
        default_text: the default in words, shown instead of ``default`` (e.g. "the run's data" when the
            command decides it, or a recipe's value for ``landiff train``).
        default_label: the words before the default in the help: "default", or the name of the recipe
            the value comes from (``train --preset dcgan --help`` shows "dcgan: 0.0002").
    """

    name: str
    kind: str
    help: str
    default: Any = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    unit: str = ""
    required: bool = False
    dest: str | None = None
    metavar: str | None = None
    details: str = ""
    nargs: str | None = None
    allow_empty: bool = False
    default_text: str = ""
    default_label: str = "default"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"option {self.name}: unknown kind {self.kind!r}")
        if not self.help.strip():
            raise ValueError(f"option {self.name}: every option needs a help line")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"option {self.name}: a choice needs choices")
        if self.kind == "switch" and (self.positional or self.default not in (None, False)):
            raise ValueError(f"option {self.name}: a switch is a --flag that is off unless given")

    @property
    def positional(self) -> bool:
        return not self.name.startswith("-")

    def but(self, **changes: Any) -> Spec:
        """A copy with some fields changed (e.g. another default or help for one command)."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ parsing
    def accepts(self) -> str:
        """What the option accepts, in words (used in errors and in the help)."""
        if self.kind == "switch":
            return "no value (a switch)"
        if self.kind == "seed":
            return "an integer >= 0 and < 2**63"
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "device":
            return "cpu, cuda, cuda:N or mps (a device of this machine)"
        if self.kind == "ints":
            return "comma-separated integers" + (f", each >= {_num(self.low)}" if self.low is not None else "")
        if self.kind == "size":
            bounds = f" from {_num(self.low or 1)} to {_num(self.high)}" if self.high else ""
            return "a size R or HxW in pixels" + bounds
        if self.kind in ("str", "path"):
            return ("a " if self.allow_empty else "a non-empty ") + ("path" if self.kind == "path" else "value")
        what = "an integer" if self.kind == "int" else "a finite number" if self.high is None else "a number"
        if self.low is not None and self.high is not None:
            if self.kind == "float" and self.high_open and not self.low_open:
                return f"{what} in [{float(self.low)}, {float(self.high)})"
            lo, hi = ">" if self.low_open else ">=", "<" if self.high_open else "<="
            return f"{what} {lo} {_num(self.low)} and {hi} {_num(self.high)}"
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {_num(self.low)}"
        if self.high is not None:
            return f"{what} {'<' if self.high_open else '<='} {_num(self.high)}"
        return what

    def problem(self, value: Any) -> str | None:
        """What the spec wants when an already-typed value is outside it (None when it is fine)."""
        reason = f"must be {self.accepts()}"
        if self.kind == "choice":
            return None if value in self.choices else reason
        if self.kind in ("int", "seed") and (not isinstance(value, int) or isinstance(value, bool)):
            return reason
        if self.kind == "float" and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            return reason
        if self.kind == "seed":
            return None if 0 <= value < SEED_LIMIT else reason
        if self.kind == "float" and (math.isnan(value) or (value == math.inf and self.high is None)
                                     or (value == -math.inf and self.low is None)):
            return reason  # unbounded sides must be finite; a bound of inf decides for itself
        if self.kind in ("int", "float"):
            if self.low is not None and (value <= self.low if self.low_open else value < self.low):
                return reason
            if self.high is not None and (value >= self.high if self.high_open else value > self.high):
                return reason
        return None

    def parse(self, text: object) -> Any:
        """The typed value of ``text``; raises ValueError with a message without the flag name."""
        value: Any
        if self.kind == "switch":
            raise ValueError("takes no value")
        if not isinstance(text, str):
            value = text  # a default given already typed
        elif "\x00" in text or (not text.strip() and not self.allow_empty):
            raise ValueError(f"must be {self.accepts()}, got {text!r:.60}")
        elif self.kind in ("int", "seed"):
            value = _to_int(text)
        elif self.kind == "float":
            try:
                value = float(text)
            except ValueError:
                value = None
        elif self.kind == "ints":
            try:
                value = tuple(int(part) for part in text.split(",") if part.strip())
            except ValueError:
                value = None
            if value is not None and ((not value and not self.allow_empty)
                                      or (value and self.low is not None and min(value) < self.low)):
                value = None
            if value is None:
                raise ValueError(f"must be {self.accepts()}, got {text!r:.60}")
            return value
        elif self.kind == "size":
            return self._size(text)
        elif self.kind == "device":
            check_device(text, self.name)
            return text
        else:
            value = text
        if value is None or self.problem(value) is not None:
            raise ValueError(f"must be {self.accepts()}{';' if self.kind == 'choice' else ','} got {text!r:.60}")
        return value

    def _size(self, text: str) -> tuple[int, int]:
        parts = text.lower().split("x")
        values = [_to_int(p) for p in parts]
        if len(values) == 1:
            values = values * 2
        low, high = self.low or 1, self.high or math.inf
        ints = [v for v in values if v is not None]
        if len(values) != 2 or len(ints) != 2 or any(not low <= v <= high for v in ints):
            raise ValueError(f"must be {self.accepts()} (height x width, e.g. 64 or 48x64), got {text!r:.60}")
        return ints[0], ints[1]

    def check(self, value: Any) -> Any:
        """``value`` if it fits the spec, else UserError naming the option (for values not from argparse)."""
        try:
            return self.parse(value if not isinstance(value, (int, float)) or isinstance(value, bool) else str(value))
        except ValueError as err:
            raise UserError(f"{self.name} {err}") from None

    # ------------------------------------------------------------------ argparse
    @property
    def required_always(self) -> bool:
        """The option must be given (a required flag or positional, or a positional of one or more values)."""
        return self.required or (self.positional and self.nargs == "+")

    def shown_default(self) -> str:
        """The default as the help and docs/cli.md show it ("" for an option that must be given)."""
        if self.required_always:
            return ""
        if self.default_text:
            return self.default_text
        if self.kind == "switch":
            return "off"
        return "" if self.default is None else show_value(self.default)

    def help_text(self) -> str:
        """The help line shown by ``--help``: the help, what is accepted, the unit and the default."""
        extra = []
        if self.kind in ("int", "float", "seed", "ints", "size") or (self.kind == "choice" and (self.metavar or self.positional)):
            extra.append(self.accepts())  # a choice's words are in its {a,b} placeholder unless it has another
        if self.unit:
            extra.append(f"unit: {self.unit}")
        if self.shown_default():
            extra.append(f"{self.default_label}: {self.shown_default()}")
        text = self.help.rstrip(".") + (f" ({'; '.join(extra)})" if extra else "")
        return text.replace("%", "%%")

    def add_to(self, parser: argparse.ArgumentParser, **changes: Any) -> argparse.Action:
        """Declares this option on ``parser`` (with ``changes`` applied to the spec first)."""
        spec = self.but(**changes) if changes else self
        if spec.kind == "switch":
            switch: dict[str, Any] = {"dest": spec.dest} if spec.dest else {}
            action = parser.add_argument(spec.name, action="store_true", default=spec.default, help=spec.help_text(),
                                         **switch)
            action.spec = spec  # type: ignore[attr-defined]
            return action
        kwargs: dict[str, Any] = {"type": _Parser(spec), "help": spec.help_text(),
                                  "metavar": spec.metavar or _METAVARS.get(spec.kind, "X")}
        if spec.kind == "choice" and not spec.metavar:
            kwargs["metavar"] = "{" + ",".join(spec.choices) + "}"
        if spec.positional:
            if spec.nargs:
                kwargs.update(nargs=spec.nargs, default=spec.default if spec.nargs in "*?" else None)
            elif not spec.required:
                kwargs.update(nargs="?", default=spec.default)
            kwargs["metavar"] = spec.metavar or spec.name.upper()
        else:
            kwargs.update(default=spec.default, required=spec.required)
            if spec.dest:
                kwargs["dest"] = spec.dest
        action = parser.add_argument(spec.name, **kwargs)
        action.spec = spec  # type: ignore[attr-defined]  # read by tests walking every option
        return action


_METAVARS = {"int": "N", "float": "X", "str": "TEXT", "ints": "A,B,…", "seed": "SEED", "device": "DEVICE",
             "path": "PATH", "size": "R|HxW"}


class _Parser:
    """argparse ``type=`` callable of a spec: a refusal becomes argparse's one-line error."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.__name__ = spec.kind  # argparse names the type in some messages

    def __call__(self, text: str) -> Any:
        try:
            return self.spec.parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        except UserError as err:
            raise argparse.ArgumentTypeError(str(err)) from None


def _num(value: float | None) -> str:
    """A bound as written in messages: integers without a decimal point, powers of ten from 10^6 as such
    (1000, 10^9, 65536; not 1e+09)."""
    if value is None:
        return "?"
    if isinstance(value, int) or (math.isfinite(value) and value == int(value) and abs(value) < 1e15):
        number = int(value)
        power = len(str(abs(number))) - 1
        return f"{'-' if number < 0 else ''}10^{power}" if power >= 6 and abs(number) == 10**power else str(number)
    return f"{value:g}"


def show_value(value: Any) -> str:
    """A default as the help shows it: on/off, 0.0002 (not 2e-04), 1,2,2 for a tuple, '' for empty text."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return ",".join(show_value(v) for v in value) or "''"
    if value == "":
        return "''"
    return str(value)


def _to_int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def spec_of(action: argparse.Action) -> Spec | None:
    """The spec an argparse action was declared from (None for --help and options declared without one)."""
    return getattr(action, "spec", None)


# ---------------------------------------------------------------------- shared checks
def check_seed(value: int, flag: str = "--seed", count: int = 1) -> int:
    """A seed S whose derived seeds S .. S+count-1 all stay in [0, 2**63)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < SEED_LIMIT - max(count - 1, 0):
        limit = "2**63" if count <= 1 else f"2**63 - {count - 1}"
        raise UserError(f"{flag} must be an integer >= 0 and < {limit}, got {value!r:.60}")
    return value


@overload
def check_device(text: str, flag: str = ...) -> str: ...
@overload
def check_device(text: None, flag: str = ...) -> None: ...
def check_device(text: str | None, flag: str = "--device") -> str | None:
    """``text`` when it names a device this machine has (None: the default device).

    Accepts cpu, cuda, cuda:N (N below the number of visible GPUs) and mps (where available).
    """
    if text is None:
        return None
    hint = "use cpu, cuda or cuda:N, or leave it out for the default"
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"{flag} {text!r} is empty; {hint}")
    try:
        device = torch.device(text.strip())
    except (RuntimeError, ValueError):
        raise UserError(f"{flag} {text!r:.60} is not a device; {hint}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UserError(f"{flag} {text}: no CUDA device is visible here; use --device cpu")
        if device.index is not None and device.index >= count:
            raise UserError(f"{flag} {text}: only {count} CUDA device(s) visible (cuda:0..cuda:{count - 1})")
    elif device.type == "mps":
        backend = getattr(torch.backends, "mps", None)
        if backend is None or not backend.is_available():
            raise UserError(f"{flag} mps: Apple's MPS backend is not available here; use cpu or cuda")
    elif device.type != "cpu":
        raise UserError(f"{flag} {text!r:.60}: landiff runs on cpu, cuda or mps; {hint}")
    return text


def _name(path: str | os.PathLike[str] | None, flag: str) -> str:
    return f"{flag} {str(path)!r:.120}" if flag else repr(str(path))


def _check_text_path(path: str | os.PathLike[str] | None, flag: str) -> Path:
    if path is None or not str(path).strip() or "\x00" in str(path):
        raise UserError(f"{flag} {str(path)!r:.60} is not a path; give a folder or file name")
    return Path(path)


def check_output_dir(path: str | os.PathLike[str] | None, flag: str) -> Path:
    """``path`` as a folder this process can create or write into; nothing is left behind.

    Probes by creating and deleting a temporary file in ``path`` (or in its nearest existing
    ancestor when ``path`` is yet to be created), so a read-only file system, missing permissions
    or a file where a folder is expected are found before any computation.
    """
    target = _check_text_path(path, flag)
    if str(path) in (".", "./") and flag == "--run":
        raise UserError(f"{flag} . would put run files into the current folder; give a run folder name")
    probe = target
    while not probe.exists():
        if probe.is_symlink():
            raise UserError(f"{_name(path, flag)}: {probe} is a broken symbolic link; give another folder")
        parent = probe.parent
        if parent == probe:
            break
        probe = parent
    if not probe.is_dir():
        where = "is a file" if probe == target else f"cannot be created: {probe} is a file"
        raise UserError(f"{_name(path, flag)} {where}; give a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=".landiff-probe-", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        reason = err.strerror or str(err)
        raise UserError(f"{_name(path, flag)} cannot be written ({probe}: {reason}); "
                        "choose a writable folder") from None
    return target


def check_output_file(path: str | os.PathLike[str] | None, flag: str) -> Path:
    """``path`` as a file this process can create or replace (its folder is probed as above)."""
    target = _check_text_path(path, flag)
    if target.is_dir():
        raise UserError(f"{_name(path, flag)} is a folder; give a file name")
    if target.exists() and not os.access(target, os.W_OK):
        raise UserError(f"{_name(path, flag)} exists and cannot be overwritten; choose another file")
    check_output_dir(target.parent if str(target.parent) else Path("."), "")
    return target


def check_input_file(path: str | os.PathLike[str] | None, flag: str, what: str = "file") -> Path:
    """``path`` as an existing, readable regular file."""
    return _check_input(path, flag, what, folder=False)


def check_input_dir(path: str | os.PathLike[str] | None, flag: str, what: str = "folder") -> Path:
    """``path`` as an existing, readable folder."""
    return _check_input(path, flag, what, folder=True)


def _check_input(path: str | os.PathLike[str] | None, flag: str, what: str, *, folder: bool) -> Path:
    target = _check_text_path(path, flag)
    if not target.exists():
        raise UserError(f"{_name(path, flag)} does not exist; give the {what}")
    if target.is_dir() != folder or (not folder and not target.is_file()):
        raise UserError(f"{_name(path, flag)} is not a {'folder' if folder else 'file'}; give the {what}")
    if not os.access(target, os.R_OK | (os.X_OK if folder else 0)):
        raise UserError(f"{_name(path, flag)} cannot be read (permissions); give a readable {what}")
    return target


# ---------------------------------------------------------------------- memory estimates
def pick_device(requested: str | None = None, local_rank: int = 0) -> torch.device:
    """``--device`` checked: default ``cuda:LOCAL_RANK`` when CUDA is there, else ``cpu``.

    Raises:
        UserError: an unparsable device string, or CUDA asked for where none is visible.
    """
    if not requested:
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(check_device(requested))
    if device.type == "cuda" and device.index is None:  # plain "cuda" under torchrun: this rank's GPU
        device = torch.device("cuda", local_rank)
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"--device {requested}: local rank {local_rank} has no GPU "
                            f"(only {torch.cuda.device_count()} visible)")
    return device


def native_bf16(device: torch.device | str) -> bool:
    """True when ``device`` computes in bf16 natively, so autocast to bf16 is a speed-up there.

    CUDA: what torch reports (Ampere and newer). CPU: oneDNN's check for AVX512-BF16 or AMX.
    Elsewhere (mps), False.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def available_memory(device: Any = None) -> tuple[int | None, str]:
    """(bytes free for new tensors, where the number comes from) on ``device`` (None when unknown)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
            return int(free), f"free on {device} (torch.cuda.mem_get_info)"
        except (RuntimeError, AssertionError, ValueError):
            return None, str(device)
    if device.type != "cpu":
        return None, str(device)
    try:
        fields = {}
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                fields[key] = int(rest.split()[0]) * 1024
        return fields["MemAvailable"] + fields.get("SwapFree", 0), "MemAvailable + SwapFree in /proc/meminfo"
    except (OSError, KeyError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "available physical memory"
    except (OSError, ValueError, AttributeError):
        return None, "this machine"


def format_bytes(count: float) -> str:
    """``1536`` → ``"1.5 KiB"``; beyond PiB in powers of ten (``"3.2e+06 PiB"``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} PiB" if abs(count) < 10_000 else f"{count:.2g} PiB"


def check_memory(parts: dict[str, float], flags: Sequence[str], device: Any = None, fix: str | None = None) -> None:
    """Refuses a job whose estimated memory (a lower bound: ``parts`` name → bytes) cannot fit.

    The message states the estimate, its parts and what is available, and names the options
    that set the size (``flags``).
    """
    need = sum(parts.values())
    free, source = available_memory(device)
    if free is None or need <= free:
        return
    detail = " + ".join(f"{name} {format_bytes(value)}" for name, value in parts.items())
    raise UserError(f"{', '.join(flags)}: needs at least {format_bytes(need)} ({detail}) but only "
                    f"{format_bytes(free)} is available ({source}); {fix or 'lower ' + ' or '.join(flags)}")


def check_disk(need: float, path: str | os.PathLike[str], flags: Sequence[str]) -> None:
    """Refuses to write ``need`` bytes under ``path`` when its file system has less free space."""
    probe = Path(path)
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return
    if need > free:
        raise UserError(f"{', '.join(flags)}: would write about {format_bytes(need)} but {probe} has only "
                        f"{format_bytes(free)} free; lower {' or '.join(flags)} or choose another place")


def unet_bytes(net: Any, batch: int, training: bool) -> dict[str, float]:
    """Lower bounds of an ADM UNet's memory (fp32): weights (+ EMA, gradient, AdamW moments) and activations.

    Per level i with C_i = base_channels x channel_mult[i] channels at (resolution / 2**i)² pixels,
    the encoder has num_res_blocks residual blocks and the decoder one more (nets/config.py), each
    with two 3x3 convolutions: at least 18 C_i² weights and, when training, two stored C_i x H_i x W_i
    outputs per image; sampling keeps at least the skip connections (num_res_blocks + 1 per level).
    """
    levels = list(getattr(net, "channel_mult", ()) or (1,))
    base, blocks, res = float(net.base_channels), float(net.num_res_blocks), float(net.resolution)
    params = sum(18.0 * (base * m) ** 2 * (2 * blocks + 1) for m in levels)
    pixels = sum(base * m * (res / 2**i) ** 2 for i, m in enumerate(levels))
    if training:
        return {"weights, EMA, gradients and AdamW moments": 20.0 * params,
                "activations": 4.0 * 2 * (2 * blocks + 1) * pixels * batch}
    return {"weights": 4.0 * params, "activations": 4.0 * (blocks + 1) * pixels * batch}


def dcgan_bytes(z_dim: int, ngf: int, ndf: int, resolution: int, batch: int, training: bool) -> dict[str, float]:
    """Lower bounds for the DCGAN (Radford et al. 2016, §3): the 4x4 transposed convolution from
    8·ngf to 4·ngf channels (and its mirror in D) and one ngf-channel map at full resolution per image."""
    g = 16.0 * (8 * ngf) * (4 * ngf) + 16.0 * z_dim * 8 * ngf
    d = 16.0 * (8 * ndf) * (4 * ndf) if training else 0.0
    acts = 4.0 * batch * (ngf + (ndf if training else 0)) * float(resolution) ** 2
    if training:
        return {"weights, gradients and Adam moments": 16.0 * (g + d), "activations": acts}
    return {"weights": 4.0 * g, "activations": acts}


# ---------------------------------------------------------------------- options several commands share
DEVICE = Spec("--device", "device", "where to compute: cpu, cuda, cuda:N or mps",
              default_text="cuda when available, else cpu")
SEED = Spec("--seed", "seed", "seed of every random choice", default=0)
N_IMAGES = Spec("--n", "int", "number of images", low=1, unit="images")
BATCH = Spec("--batch", "int", "images per network batch", low=1, unit="images")
STEPS = Spec("--steps", "int", "network evaluations of the sampler", low=1, unit="steps")
REPEATS = Spec("--repeats", "int", "metric repeats for the ± spread", low=1, default=3)
RUN = Spec("--run", "path", "run directory (made by landiff train)")
OUT_DIR = Spec("--out", "path", "output folder", metavar="DIR")
