"""Checkpoints: one ``step-NNNNNNNN.safetensors`` per save, tensors inside, everything else as JSON.

The JSON (step, counters, RNG states, optimiser hyper-parameters, sampler history, config) lives in
the safetensors header's metadata under ``"landiff"``; nothing is ever unpickled. Saves are atomic
(temp + fsync + rename + directory fsync) and verified before older checkpoints are rotated out.
"""

from __future__ import annotations

import json
import random
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch

from landiff.errors import UserError
from landiff.train.files import atomic_write_bytes

CHECKPOINT_PATTERN = re.compile(r"^step-(\d{8,})\.safetensors$")
MAX_HEADER_BYTES = 100 * 1024 * 1024


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

    Raises:
        UserError: when the file is not a well-formed safetensors file (e.g. a pickle renamed).
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
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is not a landiff checkpoint (safetensors expected): {err}") from None
    if not isinstance(header, dict):
        raise UserError(f"{path} is not a landiff checkpoint: malformed safetensors header")
    return header


def save_checkpoint(directory: Path, step: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any], keep: int) -> Path:
    """Writes checkpoint ``step`` atomically, verifies it, then deletes all but the newest ``keep``."""
    path = directory / checkpoint_name(step)
    contiguous = {name: t.detach().contiguous().cpu() for name, t in tensors.items()}
    data = safetensors.torch.save(contiguous, metadata={"landiff": json.dumps(meta)})
    atomic_write_bytes(path, data)
    header = read_header(path)  # verify before rotating anything out
    if len(header) - ("__metadata__" in header) != len(contiguous):
        raise OSError(f"checkpoint {path} failed verification after writing")
    for _, old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Returns (tensors, meta) of a checkpoint; every floating tensor must be finite."""
    header = read_header(path)
    try:
        meta = json.loads(header.get("__metadata__", {}).get("landiff", "null"))
        tensors = safetensors.torch.load_file(str(path))
    except (ValueError, OSError, RuntimeError) as err:
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


def load_optimizer_state(optimizer: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    per_param: dict[int, dict[str, Any]] = {}
    for name, value in unprefixed(prefix, tensors).items():
        index, key = name.split(".", 1)
        per_param.setdefault(int(index), {})[key] = value
    for name, value in meta["scalars"].items():
        index, key = name.split(".", 1)
        per_param.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": per_param, "param_groups": meta["param_groups"]})


def rng_state(generators: dict[str, torch.Generator]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Python, NumPy, torch CPU/CUDA and named generator states (tensors + JSON)."""
    tensors = {"rng.torch": torch.get_rng_state()}
    for name, generator in generators.items():
        tensors[f"rng.gen.{name}"] = generator.get_state()
    if torch.cuda.is_available():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{index}"] = state
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    meta = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }
    return tensors, meta


def restore_rng(generators: dict[str, torch.Generator], tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Restores what :func:`rng_state` saved; a missing piece is an error, never silently skipped."""
    torch.set_rng_state(tensors["rng.torch"])
    for name, generator in generators.items():
        generator.set_state(tensors[f"rng.gen.{name}"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
