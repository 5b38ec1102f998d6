"""Batches straight from in-memory uint8 tensors: augmentation and normalisation done on whole batches.

A per-image Dataset/DataLoader pipeline spends more time in Python than a small network spends computing
on the CPU; indexing one tensor per batch does not.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.nn import functional as F

from tightfit.data.tensors import Augment, TensorSet


def augment_batch(x: torch.Tensor, aug: Augment, gen: torch.Generator) -> torch.Tensor:
    """Random crop after zero padding, and random horizontal flip, of a uint8 (B, C, H, W) batch."""
    b, _, h, w = x.shape
    if aug.pad > 0:
        padded = F.pad(x, (aug.pad,) * 4)
        oy = torch.randint(0, 2 * aug.pad + 1, (b, 1), generator=gen)
        ox = torch.randint(0, 2 * aug.pad + 1, (b, 1), generator=gen)
        rows = (oy + torch.arange(h))[:, :, None]  # (B, H, 1)
        cols = (ox + torch.arange(w))[:, None, :]  # (B, 1, W)
        x = padded[torch.arange(b)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)  # (B, C, H, W)
    if aug.flip:
        flip = torch.rand(b, generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


class Normalize:
    """uint8 -> float, then (x / 255 - mean) / std per channel."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        self.mean = mean
        self.std = std
        self._scale = torch.tensor([1.0 / (255.0 * s) for s in std]).view(1, -1, 1, 1)
        self._shift = torch.tensor([-m / s for m, s in zip(mean, std, strict=True)]).view(1, -1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self._shift, x.float(), self._scale)


class BatchLoader:
    """Iterates (x float, y) batches; seeded per epoch, and sharded across ranks for DDP.

    For training (`shuffle=True`) every rank gets the same number of batches, wrapping around like
    DistributedSampler, so that collective ops stay in step. Evaluation shards are disjoint and exact.
    """

    def __init__(self, data: TensorSet, batch_size: int, normalize: Normalize, *, augment: Augment | None = None,
                 shuffle: bool = False, seed: int = 0, rank: int = 0, world_size: int = 1,
                 channels_last: bool = False):
        self.data = data
        self.batch_size = batch_size
        self.normalize = normalize
        self.augment = augment
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.channels_last = channels_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> torch.Tensor:
        n = len(self.data)
        if not self.shuffle:
            return torch.arange(n)[self.rank::self.world_size]  # empty, not an error, when rank >= n
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(n, generator=gen)
        per_rank = -(-n // self.world_size)
        extra = per_rank * self.world_size - n  # may exceed n when n < world_size: wrap around repeatedly
        perm = torch.cat([perm, perm.repeat(-(-extra // n) if n else 0)[:extra]])
        return perm[self.rank::self.world_size]

    def __len__(self) -> int:
        n = len(self.data)
        per_rank = -(-n // self.world_size) if self.shuffle else len(range(self.rank, n, self.world_size))
        return -(-per_rank // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        idx = self._indices()
        gen = torch.Generator().manual_seed(self.seed * 7_919 + self.epoch * 31 + self.rank)
        for start in range(0, len(idx), self.batch_size):
            batch = idx[start:start + self.batch_size]
            x = self.data.x[batch]
            if self.augment is not None:
                x = augment_batch(x, self.augment, gen)
            x = self.normalize(x)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.data.y[batch]
