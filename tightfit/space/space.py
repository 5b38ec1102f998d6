"""The ProxylessNAS search space (SPEC section 1), adapted to the input resolution.

At 224x224 it is the ProxylessNAS backbone: a 32-channel stride-2 stem, a fixed MBConv1 3x3 to 16
channels, six searchable stages of widths (24, 40, 80, 96, 192, 320) and depths (4, 4, 4, 4, 4, 1), a
1280-channel head. Every searchable block chooses MBConv {3,5,7} x {3,6}, and also `skip` wherever it has
stride 1 and equal in/out channels (so the residual carries the input): every block but the first of its
stage, and a first block too where width rounding gives two stages the same width.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property

from tightfit.errors import TightfitError
from tightfit.space.arch import Arch, Block, MBConvChoice
from tightfit.space.plan import MBConvSpec, NetworkPlan, downsample_positions, make_divisible


@dataclass(frozen=True)
class SearchSpace:
    """The fixed parts of the space plus the menu of choices per block position."""

    resolution: int
    in_channels: int = 3
    num_classes: int = 10
    width_mult: float = 1.0
    kernels: tuple[int, ...] = (3, 5, 7)
    expands: tuple[int, ...] = (3, 6)
    stem_channels: int = 32
    first_block_channels: int = 16
    stage_widths: tuple[int, ...] = (24, 40, 80, 96, 192, 320)
    stage_depths: tuple[int, ...] = (4, 4, 4, 4, 4, 1)
    stage_downsamples: tuple[bool, ...] = (True, True, True, False, True, False)  # at 224x224
    head_channels: int = 1280

    def __post_init__(self) -> None:
        if self.resolution < 1:
            raise TightfitError(f"resolution {self.resolution} must be a positive number of pixels")
        if not (len(self.stage_widths) == len(self.stage_depths) == len(self.stage_downsamples)):
            raise TightfitError("stage_widths, stage_depths and stage_downsamples must have equal lengths")

    # -- strides and widths ------------------------------------------------------------------------------

    def strides(self) -> tuple[int, tuple[int, ...]]:
        """(stem stride, per-stage first-block stride) at this space's resolution."""
        slots = 1 + sum(self.stage_downsamples)  # the stem, then every stage that downsamples at 224
        active = iter(downsample_positions(self.resolution, slots, max_stride2=slots))
        stem = 2 if next(active) else 1
        stages = tuple((2 if next(active) else 1) if down else 1 for down in self.stage_downsamples)
        return stem, stages

    def _width(self, channels: int) -> int:
        return make_divisible(channels * self.width_mult)

    # -- the menu -----------------------------------------------------------------------------------------

    def candidates(self, stage: int, index: int) -> tuple[Block, ...]:
        """The ops offered at a block position; `skip` only where stride is 1 and channels are equal."""
        ops: list[Block] = [MBConvChoice(k, e) for k in self.kernels for e in self.expands]
        if self._skippable[self.positions().index((stage, index))]:
            ops.append(None)
        return tuple(ops)

    @cached_property
    def _skippable(self) -> tuple[bool, ...]:
        return tuple(spec.residual for spec in self.position_specs())

    def positions(self) -> tuple[tuple[int, int], ...]:
        return tuple((s, i) for s, depth in enumerate(self.stage_depths) for i in range(depth))

    def position_specs(self) -> tuple[MBConvSpec, ...]:
        """Per block position, in order, its shapes (as an MBConv of the first kernel and expand ratio).

        `skip` keeps a block's shape, so every position has the same input and output whatever is chosen
        before it; a candidate is `replace(spec, kernel=k, expand=e)`.
        """
        return self._build(self.uniform_arch(self.kernels[0], self.expands[0])).blocks[1:]

    def random_arch(self, rng: random.Random) -> Arch:
        stages = [[rng.choice(self.candidates(s, i)) for i in range(d)] for s, d in enumerate(self.stage_depths)]
        return Arch(tuple(tuple(stage) for stage in stages))

    def uniform_arch(self, kernel: int, expand: int) -> Arch:
        """Every block the same MBConv, nothing skipped (for example the largest network)."""
        return Arch(tuple(tuple(MBConvChoice(kernel, expand) for _ in range(d)) for d in self.stage_depths))

    def validate(self, arch: Arch) -> Arch:
        depths = tuple(len(stage) for stage in arch.stages)
        if depths != self.stage_depths:
            raise TightfitError(
                f"architecture {arch} has stage depths {depths}, but the search space needs "
                f"{self.stage_depths}; write one block (or 'skip') per position"
            )
        for s, stage in enumerate(arch.stages):
            for i, block in enumerate(stage):
                if block not in self.candidates(s, i):
                    why = "it cannot be skipped, as it changes stride or width" if block is None else (
                        f"kernels are {self.kernels} and expand ratios {self.expands}"
                    )
                    raise TightfitError(f"architecture {arch}: block {i} of stage {s} is {block}; {why}")
        return arch

    # -- the plain network ---------------------------------------------------------------------------------

    def plan(self, arch: Arch) -> NetworkPlan:
        """The plain network of `arch`: skipped blocks vanish."""
        return self._build(self.validate(arch))

    def _build(self, arch: Arch) -> NetworkPlan:
        stem_stride, stage_strides = self.strides()
        resolution = (self.resolution + stem_stride - 1) // stem_stride
        stem = self._width(self.stem_channels)
        first = MBConvSpec(stem, self._width(self.first_block_channels), 3, 1, 1, resolution)
        blocks = [first]
        channels = first.out_channels
        for s, stage in enumerate(arch.stages):
            out = self._width(self.stage_widths[s])
            for i, block in enumerate(stage):
                if block is None:
                    continue
                spec = MBConvSpec(channels, out, block.kernel, block.expand,
                                  stage_strides[s] if i == 0 else 1, resolution)
                blocks.append(spec)
                channels, resolution = out, spec.out_resolution
        head = max(self.head_channels, self._width(self.head_channels))
        return NetworkPlan(self.in_channels, self.resolution, stem, stem_stride, tuple(blocks), head,
                           self.num_classes)
