"""Which samples each rank sees, in which order, with which random seed: identical whether a job
ran straight through or resumed, whatever the number of DataLoader workers."""

from __future__ import annotations

import math
import random
from typing import Iterator

import torch
from torch.utils.data import Dataset, Sampler


class EpochSampler(Sampler):
    """Shards indices across ranks like DistributedSampler (shuffled by seed + epoch) and
    yields (epoch, index) pairs, so that a sample's augmentation can be seeded by
    (seed, epoch, index): identical whether the job ran straight through or resumed, and
    whatever the number of DataLoader workers. ``skip`` drops the first batches of an
    epoch (resuming after a preemption mid-epoch)."""

    def __init__(self, size: int, rank: int, world: int, seed: int, shuffle: bool, pad: bool):
        self.size, self.rank, self.world, self.seed = size, rank, world, seed
        self.shuffle, self.pad = shuffle, pad
        self.epoch = 0
        self.skip = 0

    def indices(self) -> list[int]:
        if self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        else:
            order = list(range(self.size))
        if self.pad:  # equal shards, as DDP needs the same number of steps on every rank
            per_rank = math.ceil(self.size / self.world)
            order += order[: per_rank * self.world - len(order)]
        return order[self.rank::self.world][self.skip:]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(self.epoch, i) for i in self.indices()])

    def __len__(self) -> int:
        return len(self.indices())


class Seeded(Dataset):
    """Takes (epoch, index) from ``EpochSampler``; seeds the RNG per sample when the
    dataset's transforms are random."""

    def __init__(self, dataset: Dataset, seed: int, random_transforms: bool):
        self.dataset, self.seed, self.random_transforms = dataset, seed, random_transforms

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        if self.random_transforms:
            sample_seed = (self.seed * 1_000_003 + epoch * 100_003 + index) % (2**63)
            torch.manual_seed(sample_seed)
            random.seed(sample_seed)
        return self.dataset[index]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % (2**32))
    except ImportError:  # pragma: no cover
        pass
