"""A deterministic, resumable stream of training batches, and randomness keyed by stream position.

The order of examples is a pure function of (seed, epoch): example i of the stream is
``perm_{i // N}[i % N]`` with ``perm_e`` a seeded permutation. The position in the stream is just
the number of examples consumed, so a checkpoint that stores ``images_seen`` resumes the data order
exactly, whatever the number of loader workers or how far they had prefetched.

Under DDP each micro-batch is a *chunk* of ``batch × world`` consecutive positions; rank r takes
positions ``chunk_start + r, + r + world, …`` (``batch`` of them). So two ranks with batch B see
together exactly the examples one process with batch 2B sees, and the random draws that go with
an example (its noise, timestep, label dropout, GAN latent) are keyed by its position, not by the
rank that happens to hold it: a run computes the same thing on 1 or N processes, up to float
summation order (the EDM idea of one RNG per sample, applied to training).
"""

from __future__ import annotations

import hashlib
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

DrawKind = Literal["noise", "chunk", "rank", "diffaugment", "heldout", "holdout"]


def epoch_permutation(size: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of epoch ``epoch``: a permutation of range(size) seeded by (seed, epoch)."""
    generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % (2**63))
    return torch.randperm(size, generator=generator)


def keyed_seed(seed: int, kind: DrawKind, position: int) -> int:
    """A 63-bit seed from a hash of (run seed, kind of draw, stream position or rank).

    Hashing (BLAKE2b) keeps the streams of different kinds and neighbouring positions unrelated.
    """
    digest = hashlib.blake2b(f"{seed}/{kind}/{position}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def keyed_generator(seed: int, kind: DrawKind, position: int) -> torch.Generator:
    """A CPU generator seeded by :func:`keyed_seed`."""
    return torch.Generator().manual_seed(keyed_seed(seed, kind, position))


def example_noise(seed: int, positions: Sequence[int], shape: Sequence[int]) -> torch.Tensor:
    """Gaussian noise (B, *shape) where row k depends only on (seed, positions[k])."""
    return torch.stack([torch.randn(tuple(shape), generator=keyed_generator(seed, "noise", p)) for p in positions])


@dataclass
class StreamBatch:
    """This rank's share of one micro-batch chunk.

    Attributes:
        images: uint8 (B, 3, H, W).
        labels: int64 (B,).
        positions: global stream positions of the rows, int64 (B,).
        rank, world: this process's share: chunk rows ``rank, rank + world, …``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    positions: torch.Tensor
    rank: int
    world: int

    @property
    def chunk_start(self) -> int:
        """Stream position of the first example of the whole chunk (all ranks)."""
        return int(self.positions[0]) - self.rank

    @property
    def chunk_size(self) -> int:
        """Examples in the whole chunk: this rank's batch × world."""
        return len(self.positions) * self.world

    def chunk_generator(self, seed: int) -> torch.Generator:
        """The generator of draws made once per chunk (same on every rank): timesteps, dropout, z."""
        return keyed_generator(seed, "chunk", self.chunk_start)

    def share(self, values: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a per-chunk draw (chunk_size, ...) → (B, ...)."""
        return values[self.rank :: self.world]


def stream_order(gathered: torch.Tensor, world: int) -> torch.Tensor:
    """Per-rank values concatenated in rank order (world·B, ...) → chunk (stream) order."""
    if world == 1:
        return gathered
    per_rank = gathered.reshape(world, -1, *gathered.shape[1:])
    return per_rank.transpose(0, 1).reshape(gathered.shape)


class StreamSampler(Sampler):
    """Yields ``(epoch, index, position)`` keys for this rank from stream position ``start`` onwards, forever.

    Args:
        size: dataset length N.
        seed: data-order seed.
        start: examples of the *global* stream already consumed (all ranks together).
        rank, world: this process's share: positions p with (p − start) % world == rank.
    """

    def __init__(self, size: int, seed: int, start: int = 0, rank: int = 0, world: int = 1) -> None:
        self.size, self.seed, self.start, self.rank, self.world = size, seed, start, rank, world

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        position = self.start + self.rank
        epoch = position // self.size
        perm = epoch_permutation(self.size, self.seed, epoch)
        while True:
            current = position // self.size
            if current != epoch:
                epoch, perm = current, epoch_permutation(self.size, self.seed, current)
            yield epoch, int(perm[position % self.size]), position
            position += self.world


class EpochKeyed(Dataset):
    """Wraps a dataset so items are fetched by ``(epoch, index, position)``; tells it the epoch (for flips)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]  # torch's Dataset declares no __len__; ours all have one

    def __getitem__(self, key: tuple[int, int, int]) -> Any:
        epoch, index, position = key
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)
        image, label = self.dataset[index]
        return image, label, position


def _ignore_stop_signals(_worker_id: int) -> None:
    """Loader workers leave SIGINT/SIGTERM to the trainer (Ctrl-C and scancel reach the whole
    process group): a worker dying on them would crash the step the trainer is finishing before
    its graceful-stop checkpoint. They still exit with the trainer."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def batch_stream(
    dataset: Dataset, batch: int, seed: int, start: int, num_workers: int = 0, rank: int = 0, world: int = 1
) -> Iterator[StreamBatch]:
    """Endless iterator of this rank's :class:`StreamBatch` es, from global position ``start``."""
    sampler = StreamSampler(len(dataset), seed, start, rank, world)  # type: ignore[arg-type]  # as in __len__ above
    loader = DataLoader(
        EpochKeyed(dataset),
        batch_size=batch,
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
        # Its own generator: a DataLoader otherwise draws its worker seed from torch's global RNG
        # each time it starts, so a resumed run's dropout RNG would be one draw off.
        generator=torch.Generator().manual_seed(seed),
        worker_init_fn=_ignore_stop_signals,
    )
    for images, labels, positions in loader:
        yield StreamBatch(images, torch.as_tensor(labels, dtype=torch.long), torch.as_tensor(positions, dtype=torch.long),
                          rank, world)
