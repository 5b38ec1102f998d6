"""A network as a flat list of typed operators: what the builder builds and cost models price."""

from __future__ import annotations

import math
from dataclasses import dataclass


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a width-scaled channel count to a multiple of `divisor`, never dropping below 90% of it."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def downsample_positions(resolution: int, candidates: int, max_stride2: int) -> tuple[bool, ...]:
    """Which of `candidates` possible stride-2 positions really downsample at this input resolution.

    Down-sampling by 2^k with k = floor(log2(resolution / 4)), capped, leaves a final feature map of
    about 4x4 (7x7 at 224). The earliest positions lose their stride first, as in the usual CIFAR
    adaptations of ImageNet networks, so that small inputs keep spatial detail in the early layers.
    """
    k = max(0, min(max_stride2, candidates, int(math.floor(math.log2(max(resolution, 1) / 4)))))
    return tuple(i >= candidates - k for i in range(candidates))


@dataclass(frozen=True)
class MBConvSpec:
    """An inverted-residual block: 1x1 expand (if expand > 1), kxk depthwise, 1x1 project."""

    in_channels: int
    out_channels: int
    kernel: int
    expand: int
    stride: int
    in_resolution: int
    hidden: int | None = None  # pruned blocks override in_channels * expand

    @property
    def hidden_channels(self) -> int:
        return self.hidden if self.hidden is not None else self.in_channels * self.expand

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels

    @property
    def out_resolution(self) -> int:
        return (self.in_resolution + self.stride - 1) // self.stride


@dataclass(frozen=True)
class NetworkPlan:
    """Stem conv, a sequence of MBConv blocks, a 1x1 head conv, global pooling and a classifier."""

    in_channels: int
    resolution: int
    stem_channels: int
    stem_stride: int
    blocks: tuple[MBConvSpec, ...]
    head_channels: int
    num_classes: int
