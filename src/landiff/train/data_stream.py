"""A deterministic, resumable stream of training batches.

The order of examples is a pure function of (seed, epoch): example i of the stream is
``perm_{i // N}[i % N]`` with ``perm_e`` a seeded permutation. The position in the stream is just
the number of examples consumed, so a checkpoint that stores ``images_seen`` resumes the data order
exactly, whatever the number of loader workers or how far they had prefetched. Under DDP the
global batch is split between ranks by position, so the ranks see disjoint examples.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def epoch_permutation(size: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of epoch ``epoch``: a permutation of range(size) seeded by (seed, epoch)."""
    generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % (2**63))
    return torch.randperm(size, generator=generator)


class StreamSampler(Sampler):
    """Yields ``(epoch, index)`` keys for this rank from stream position ``start`` onwards, forever.

    Args:
        size: dataset length N.
        seed: data-order seed.
        start: examples of the *global* stream already consumed (all ranks together).
        rank, world: this process's share: positions p with p % world == rank.
    """

    def __init__(self, size: int, seed: int, start: int = 0, rank: int = 0, world: int = 1) -> None:
        self.size, self.seed, self.start, self.rank, self.world = size, seed, start, rank, world

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.start + self.rank
        epoch, perm = -1, None
        while True:
            current = position // self.size
            if current != epoch:
                epoch, perm = current, epoch_permutation(self.size, self.seed, current)
            yield epoch, int(perm[position % self.size])
            position += self.world


class EpochKeyed(Dataset):
    """Wraps a dataset so items are fetched by ``(epoch, index)``; tells it the epoch (for flips)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)
        return self.dataset[index]


def batch_stream(
    dataset: Dataset, batch: int, seed: int, start: int, num_workers: int = 0, rank: int = 0, world: int = 1
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless iterator of (uint8 images (B, 3, H, W), labels (B,)) for this rank, from ``start``."""
    sampler = StreamSampler(len(dataset), seed, start, rank, world)  # type: ignore[arg-type]
    loader = DataLoader(
        EpochKeyed(dataset),
        batch_size=batch,
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
    )
    for images, labels in loader:
        yield images, torch.as_tensor(labels, dtype=torch.long)
