"""In-memory data sets: uint8 images (N, C, H, W) and int64 labels, plus how to normalise and augment them."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TensorSet:
    """Images as uint8 (N, C, H, W) and labels as int64 (N,)."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        assert self.x.dtype == torch.uint8 and self.x.dim() == 4, "images must be uint8 (N, C, H, W)"
        assert self.y.dtype == torch.int64 and len(self.y) == len(self.x), "labels must be int64 (N,)"

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: torch.Tensor) -> TensorSet:
        return TensorSet(self.x[index], self.y[index])


@dataclass(frozen=True)
class Augment:
    """Random crop after zero padding by `pad` pixels, and a random horizontal flip if `flip`."""

    pad: int = 0
    flip: bool = False


@dataclass(frozen=True)
class DataBundle:
    """A labelled image data set with its fixed train/test split."""

    name: str
    train: TensorSet
    test: TensorSet
    classes: tuple[str, ...]
    augment: Augment

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return self.train.x.shape[1]

    @property
    def resolution(self) -> int:
        return self.train.x.shape[-1]

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the training images in [0, 1], for normalisation."""
        x = self.train.x.float().div_(255).transpose(0, 1).flatten(1)  # (C, N*H*W)
        std = x.std(dim=1).clamp_min(1e-3)
        return tuple(x.mean(dim=1).tolist()), tuple(std.tolist())

    def summary(self) -> dict:
        return {
            "name": self.name, "train": len(self.train), "test": len(self.test), "classes": list(self.classes),
            "shape": [self.in_channels, self.resolution, self.resolution],
        }
