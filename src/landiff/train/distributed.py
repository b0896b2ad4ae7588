"""Data parallelism under ``torchrun``: ranks from the environment, the process group, small collectives.

    torchrun --nproc_per_node=4 -m landiff -- train --run runs/c --preset iddpm-cifar        # one node
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 \\
        -m landiff -- train --run /shared/runs/c --preset adm-64                              # two nodes

The ``--`` stops torchrun from parsing landiff's options (``--run`` would otherwise read as an
abbreviation of torchrun's ``--run-path``, ``--n`` of ``--nnodes``).

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``. Without it (or with ``WORLD_SIZE=1``)
no process group is created and every helper here returns its input, so a single-process run does
exactly what it always did. Rules the callers keep (they are how multi-GPU jobs hang otherwise):
every rank calls every collective in the same order, never inside an ``if dist.is_main`` branch;
a per-rank decision (skip a step, stop on a signal) is all-reduced before anyone acts on it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as torch_dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from landiff.errors import UserError
from landiff.options import pick_device

T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: ``rank`` of ``world`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when there is more than one process (collectives do something)."""
        return self.world > 1


SINGLE = Dist()


def env_dist(environ: dict[str, str] | None = None) -> Dist:
    """Reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (set by torchrun); a plain run is rank 0 of 1.

    Raises:
        UserError: when the variables are not integers or are inconsistent.
    """
    env = os.environ if environ is None else environ
    values = {}
    for name, default in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):
        raw = env.get(name, default)
        try:
            values[name] = int(raw)
        except ValueError:
            raise UserError(f"environment variable {name}={raw!r} must be an integer (it is set by torchrun)") from None
    rank, world, local = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
    if world < 1 or not 0 <= rank < world or local < 0:
        raise UserError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}")
    return Dist(rank=rank, world=world, local_rank=local)


def current() -> Dist:
    """The job as seen by an initialised process group, else as the environment describes it."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        env = env_dist()
        return Dist(rank=torch_dist.get_rank(), world=torch_dist.get_world_size(), local_rank=env.local_rank)
    return env_dist()


@contextmanager
def process_group(requested_device: str | None = None) -> Iterator[tuple[Dist, torch.device]]:
    """Joins the torchrun job (NCCL on CUDA, gloo on CPU) for the duration of the block.

    A group that already exists (e.g. made by a test harness) is used and left alone; one made
    here is destroyed on exit. Yields (this process's :class:`Dist`, its device).
    """
    info = env_dist()
    device = pick_device(requested_device, info.local_rank)
    created = False
    if info.enabled and not torch_dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch_dist.init_process_group(backend, rank=info.rank, world_size=info.world)
        created = True
    try:
        yield current(), device
        if created:
            # Leave together: a rank that tears gloo down while its peer is still talking to it
            # can abort the peer ("terminate called without an active exception").
            torch_dist.barrier()
    finally:
        if created and torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def _comm_device() -> torch.device:
    """Where collective buffers must live: the current GPU for NCCL, the CPU for gloo."""
    if torch_dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_max(values: Sequence[float]) -> list[float]:
    """Element-wise maximum over ranks of a few numbers (flags as 0/1, seconds, …)."""
    if not (torch_dist.is_available() and torch_dist.is_initialized()) or torch_dist.get_world_size() == 1:
        return [float(v) for v in values]
    buffer = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device())
    torch_dist.all_reduce(buffer, op=torch_dist.ReduceOp.MAX)
    return buffer.cpu().tolist()


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on at least one (e.g. a NaN loss, a SIGTERM)."""
    return all_max([1.0 if flag else 0.0])[0] > 0.5


def gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenates every rank's ``tensor`` (N_r, ...) along dim 0, in rank order, on every rank.

    The first dimension may differ between ranks (even be 0); the other dimensions and the dtype
    must agree. Returns ``tensor`` itself in a single-process run.
    """
    if not (torch_dist.is_available() and torch_dist.is_initialized()) or torch_dist.get_world_size() == 1:
        return tensor
    world, device = torch_dist.get_world_size(), _comm_device()
    count = torch.tensor([tensor.shape[0]], dtype=torch.int64, device=device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    torch_dist.all_gather(counts, count)
    sizes = [int(c.item()) for c in counts]
    longest = max(sizes)
    padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype, device=device)
    padded[: tensor.shape[0]] = tensor.to(device)
    parts = [torch.empty_like(padded) for _ in range(world)]
    torch_dist.all_gather(parts, padded)
    return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)]).to(tensor.device)


def gather_rank_tensors(local: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """Every rank's ``local`` dict of 1-D uint8 tensors (e.g. RNG states), indexed by rank.

    All ranks must pass the same keys; values may differ in length.
    """
    if not (torch_dist.is_available() and torch_dist.is_initialized()) or torch_dist.get_world_size() == 1:
        return [dict(local)]
    world = torch_dist.get_world_size()
    gathered: list[dict[str, torch.Tensor]] = [{} for _ in range(world)]
    for name in sorted(local):
        value = local[name].reshape(-1)
        length = torch.tensor([value.numel()], dtype=torch.int64)
        lengths = gather_cat(length).tolist()
        flat = gather_cat(value)
        offsets = [0]
        for size in lengths:
            offsets.append(offsets[-1] + size)
        for rank in range(world):
            gathered[rank][name] = flat[offsets[rank] : offsets[rank + 1]].clone()
    return gathered


def average_gradients(params: Sequence[nn.Parameter]) -> None:
    """Replaces every gradient by its mean over ranks (one flat all-reduce); what DDP does in backward.

    Used by the GAN trainer, whose step has three discriminator forwards and two backward passes
    over different parameter sets, where DDP's per-forward bookkeeping does not fit.
    """
    if not (torch_dist.is_available() and torch_dist.is_initialized()) or torch_dist.get_world_size() == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads]).to(_comm_device())
    torch_dist.all_reduce(flat)
    flat /= torch_dist.get_world_size()
    offset = 0
    for param, grad in zip(params, grads, strict=True):
        size = grad.numel()
        param.grad = flat[offset : offset + size].view_as(grad).to(param.device)
        offset += size


def broadcast_buffers(module: nn.Module) -> None:
    """Copies rank 0's buffers (e.g. batch-norm running statistics) to every rank."""
    if not (torch_dist.is_available() and torch_dist.is_initialized()) or torch_dist.get_world_size() == 1:
        return
    device = _comm_device()
    for buffer in module.buffers():
        data = buffer.data.to(device)
        torch_dist.broadcast(data, src=0)
        buffer.data.copy_(data)


def main_first(action: Callable[[], T], info: Dist) -> T | None:
    """Runs ``action`` on rank 0 only and tells every rank whether it failed.

    Rank 0 re-raises its own error; the other ranks raise a UserError pointing at rank 0, so no
    rank is left waiting in a collective for a process that has already given up.
    """
    result, error = None, None
    if info.is_main:
        try:
            result = action()
        except Exception as err:  # noqa: BLE001 - re-raised below, after the other ranks know
            error = err
    if any_rank(error is not None):
        if error is not None:
            raise error
        raise UserError("rank 0 stopped with an error (see its message above); this rank stops too")
    return result


def wrap_for_training(model: nn.Module, info: Dist, device: torch.device,
                      compile: bool) -> tuple[DistributedDataParallel | None, Callable[..., torch.Tensor]]:
    """What a training loop calls its network through: DistributedDataParallel under torchrun (its
    constructor is a collective; None otherwise), then ``torch.compile`` when ``compile``.

    Returns: (the DDP wrapper or None, the callable forward).
    """
    ddp = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None) if info.enabled else None
    module: nn.Module = ddp if ddp is not None else model
    return ddp, torch.compile(module) if compile else module


def barrier() -> None:
    """Waits for every rank (no-op in a single-process run)."""
    if torch_dist.is_available() and torch_dist.is_initialized() and torch_dist.get_world_size() > 1:
        torch_dist.barrier()
