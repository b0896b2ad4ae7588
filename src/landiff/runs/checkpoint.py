"""Checkpoints: one ``step-NNNNNNNN.safetensors`` per save, tensors inside, everything else as JSON.

The JSON (step, counters, optimiser hyper-parameters, sampler history, config) lives in the
safetensors header's metadata under ``"landiff"``; the random state of every rank is stored as
uint8 tensors ``rng.rank<r>.*``. Nothing is ever unpickled, and the header is checked before a
tensor byte is read. Saves are atomic (temp + fsync + rename + directory fsync) and verified
before older checkpoints are rotated out.
"""

from __future__ import annotations

import json
import math
import random
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import safetensors.torch
import torch
from safetensors import SafetensorError

from landiff.errors import UserError
from landiff.runs.files import atomic_write_bytes

CHECKPOINT_PATTERN = re.compile(r"^step-(\d{8,})\.safetensors$")
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the limit of the safetensors format itself
# Bytes per element of the safetensors dtypes a landiff checkpoint can hold.
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


@dataclass
class TrainState:
    """Counters that make a run resumable.

    Attributes:
        step: optimiser steps done (skipped steps included: they consumed their data).
        images_seen: examples consumed by all ranks together (the global stream position).
        skipped_steps: steps whose update (any of them, for the GAN) was skipped because a loss
            or a gradient was NaN/Inf on some rank.
        consecutive_skips: skipped steps in a row up to now (0 after any good step).
        seconds: training wall-clock, summed over all invocations.
    """

    step: int = 0
    images_seen: int = 0
    skipped_steps: int = 0
    consecutive_skips: int = 0
    seconds: float = 0.0


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}.safetensors"


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(step, path) of the complete checkpoints in ``directory``, oldest first (temp files ignored)."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name))]
    return sorted(found)


def latest_checkpoint(directory: Path) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


def read_header(path: Path) -> dict[str, Any]:
    """Parses and checks a safetensors header without loading tensors; refuses anything else.

    Checks, before any tensor byte is read: the 8-byte length prefix is plausible (at most
    :data:`MAX_HEADER_BYTES` and inside the file), the header is a JSON object, ``__metadata__``
    maps strings to strings, and every tensor entry has a known dtype, a non-negative shape and
    byte offsets that match that shape and lie inside the file. A pickle (``torch.save``) renamed
    to ``.safetensors`` fails the first check, so nothing in it is ever executed.

    Raises:
        UserError: when the file is not a well-formed safetensors file.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise ValueError("file shorter than a safetensors header")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES or 8 + length > size:
                raise ValueError(f"header length {length} is impossible for a {size}-byte file")
            header = json.loads(handle.read(length).decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        _check_entries(header, size - 8 - length)
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as err:
        raise UserError(f"{path} is not a landiff checkpoint (safetensors expected): {err}") from None
    return header


def _check_entries(header: dict[str, Any], data_bytes: int) -> None:
    """Raises ValueError unless every entry of a parsed header describes a tensor inside the data."""
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError("__metadata__ must map strings to strings")
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"tensor {name!r}: entry must have dtype, shape and data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPE_BYTES:
            raise ValueError(f"tensor {name!r}: unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise ValueError(f"tensor {name!r}: shape must be a list of non-negative integers")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise ValueError(f"tensor {name!r}: data_offsets must be two integers")
        begin, end = offsets
        if not 0 <= begin <= end <= data_bytes or end - begin != math.prod(shape) * DTYPE_BYTES[dtype]:
            raise ValueError(f"tensor {name!r}: offsets {offsets} do not fit shape {shape} inside the file")


def save_checkpoint(directory: Path, step: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any], keep: int) -> Path:
    """Writes checkpoint ``step`` atomically, verifies it, then deletes all but the newest ``keep``.

    Verification re-reads the header from disk and checks the file size, so an older checkpoint is
    only ever deleted once a complete newer one is in place (rotate after the new one is verified, never before).
    """
    path = directory / checkpoint_name(step)
    contiguous = {name: t.detach().contiguous().cpu() for name, t in tensors.items()}
    data = safetensors.torch.save(contiguous, metadata={"landiff": json.dumps(meta)})
    atomic_write_bytes(path, data)
    try:  # verify before rotating anything out
        header = read_header(path)
        if path.stat().st_size != len(data) or len(header) - ("__metadata__" in header) != len(contiguous):
            raise OSError("size or tensor count differs from what was written")
    except (OSError, UserError) as err:
        path.unlink(missing_ok=True)  # a resume must fall back to the previous, verified checkpoint
        raise OSError(f"checkpoint {path} failed verification after writing ({err}); older checkpoints kept") from None
    for _, old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def landiff_meta(header: dict[str, Any]) -> Any:
    """The JSON that landiff stores in a safetensors header (:func:`read_header`) under ``landiff``;
    None when there is none. Raises ValueError (or RecursionError) when it is not JSON."""
    return json.loads(header.get("__metadata__", {}).get("landiff", "null"))


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Returns (tensors, meta) of a checkpoint; every floating tensor must be finite.

    Raises:
        UserError: not a safetensors file written by landiff, unreadable, or holding NaN/Inf.
    """
    header = read_header(path)
    try:
        meta = landiff_meta(header)
        tensors = safetensors.torch.load_file(str(path))
    except (ValueError, OSError, RuntimeError, SafetensorError) as err:
        raise UserError(f"{path} is not a readable landiff checkpoint: {err}") from None
    if not isinstance(meta, dict):
        raise UserError(f"{path} has no landiff metadata; it was not written by landiff")
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise UserError(f"{path}: tensor {name!r} holds NaN or Inf; use an earlier checkpoint")
    return tensors, meta


# ------------------------------------------------------------------ state pieces
def prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    start = prefix + "."
    return {k[len(start):]: v for k, v in tensors.items() if k.startswith(start)}


def check_module_tensors(
    expected: dict[str, tuple[int, ...]], tensors: dict[str, torch.Tensor], prefix: str, source: str
) -> None:
    """Raises UserError unless the tensors under ``prefix`` are exactly ``expected`` (name → shape).

    The one-line message names the first missing, unexpected or differently shaped tensor, so a
    checkpoint whose weights do not belong to its config is refused before any is copied.
    """
    found = unprefixed(prefix, tensors)
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        what = (f"lacks {len(missing)} tensor(s) of its network (e.g. {prefix}.{missing[0]})" if missing
                else f"holds {len(extra)} tensor(s) its network does not have (e.g. {prefix}.{extra[0]})")
        raise UserError(f"{source} {what}; it does not match the config stored in it (use a checkpoint written by "
                        "landiff train)")
    for name, shape in expected.items():
        if tuple(found[name].shape) != tuple(shape):
            raise UserError(f"{source}: tensor {prefix}.{name} has shape {list(found[name].shape)} but the stored "
                            f"config needs {list(shape)}; the weights do not belong to this config")
        if not (found[name].is_floating_point() or found[name].dtype in (torch.int64, torch.int32)):
            raise UserError(f"{source}: tensor {prefix}.{name} is {found[name].dtype}, not a weight type")


def optimizer_state(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Splits an optimizer state into tensors (per-parameter moments) and JSON (hyper-parameters)."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def load_optimizer_state(
    optimizer: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    per_param: dict[int, dict[str, Any]] = {}
    for name, value in unprefixed(prefix, tensors).items():
        index, key = name.split(".", 1)
        per_param.setdefault(int(index), {})[key] = value
    for name, value in meta["scalars"].items():
        index, key = name.split(".", 1)
        per_param.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": per_param, "param_groups": meta["param_groups"]})


def rng_state(generators: dict[str, torch.Generator]) -> dict[str, torch.Tensor]:
    """This process's random state as 1-D uint8 tensors (so ranks can gather them).

    Keys: ``torch`` (CPU default generator), ``cuda.<i>``, ``gen.<name>`` for each named
    generator, and ``host``: the Python and NumPy states as UTF-8 JSON.
    """
    states = {"torch": torch.get_rng_state()}
    for name, generator in generators.items():
        states[f"gen.{name}"] = generator.get_state()
    if torch.cuda.is_available():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            states[f"cuda.{index}"] = state
    version, internal, gauss = random.getstate()
    # numpy's stub types get_state() as a dict (or a union); with legacy=True (the default) it is this tuple.
    legacy_state = cast("tuple[str, np.ndarray, int, int, float]", np.random.get_state(legacy=True))
    kind, keys, pos, has_gauss, cached = legacy_state
    host = {"python": [version, list(internal), gauss], "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
    states["host"] = torch.frombuffer(bytearray(json.dumps(host).encode("utf-8")), dtype=torch.uint8)
    return {name: state.reshape(-1).to(torch.uint8) for name, state in states.items()}


def restore_rng(generators: dict[str, torch.Generator], states: dict[str, torch.Tensor]) -> None:
    """Restores what :func:`rng_state` saved; a missing piece is an error, never silently skipped.

    Raises:
        KeyError: a piece is missing (the caller turns it into a UserError naming the file).
    """
    torch.set_rng_state(states["torch"].clone())
    for name, generator in generators.items():
        generator.set_state(states[f"gen.{name}"].clone())
    cuda = [states[k].clone() for k in sorted((k for k in states if k.startswith("cuda.")), key=lambda k: int(k[5:]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    host = json.loads(bytes(states["host"].tolist()).decode("utf-8"))
    version, internal, gauss = host["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = host["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
