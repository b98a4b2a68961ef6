"""Samplers that make crops depend only on (seed, epoch, item), whatever the number of processes or workers.

Both subclass ``DistributedSampler`` so that Lightning keeps them as they are under DDP (it only replaces
samplers that are not distributed) and calls ``set_epoch`` on them every epoch. The rank and world size are
read from ``torch.distributed`` when the sampler is built (Lightning builds dataloaders after the process
group exists); tests and tools may pass ``rank``/``world_size`` explicitly.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from scoresep.errors import SettingsError


def _rank_and_world(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        if not 0 <= rank < world_size:
            raise SettingsError(f"rank {rank} is outside world size {world_size}")
        return rank, world_size
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class TrainCropSampler(DistributedSampler):
    """Yields ``(epoch, slot)`` keys: a seeded permutation of ``n_slots`` per epoch, split across ranks.

    The dataset turns a key into a random crop drawn from ``np.random.default_rng((seed, epoch, slot))``,
    so a crop never depends on which worker or process draws it. Ranks get equal shares (the permutation
    wraps around when ``n_slots`` does not divide), as DDP training needs.
    """

    def __init__(self, n_slots: int, seed: int = 0, rank: int | None = None, world_size: int | None = None):
        if n_slots <= 0:
            raise SettingsError(f"TrainCropSampler: n_slots must be positive, got {n_slots}")
        self.n_slots, self.seed, self.epoch = n_slots, seed, 0  # no super().__init__: it needs a dataset
        self.rank, self.num_replicas = _rank_and_world(rank, world_size)
        self.num_samples = -(-n_slots // self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        self.shuffle, self.drop_last = True, False

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = np.random.default_rng([self.seed, self.epoch, 7]).permutation(self.n_slots)
        order = np.resize(order, self.total_size)
        for slot in order[self.rank : self.total_size : self.num_replicas]:
            yield self.epoch, int(slot)

    def __len__(self) -> int:
        return self.num_samples


class EvalShardSampler(DistributedSampler):
    """Deterministic evaluation order split across ranks with no padding: every item seen exactly once.

    Rank ``r`` of ``w`` takes a contiguous block of items; blocks differ by at most one item.
    """

    def __init__(self, n_items: int, rank: int | None = None, world_size: int | None = None):
        self.n_items, self.epoch = n_items, 0  # no super().__init__: it needs a dataset
        self.rank, self.num_replicas = _rank_and_world(rank, world_size)
        bounds = np.linspace(0, n_items, self.num_replicas + 1).round().astype(int)
        self.first, self.stop = int(bounds[self.rank]), int(bounds[self.rank + 1])
        self.num_samples = self.total_size = self.stop - self.first
        self.shuffle, self.drop_last = False, False

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.first, self.stop))

    def __len__(self) -> int:
        return self.stop - self.first
