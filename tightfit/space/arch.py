"""A point in the MobileNetV2-like search space (SPEC section 1): per block, an MBConv choice or a skip.

The compact string form reads left to right, stages separated by "_" and blocks by "-":
``k3e6-k5e3-skip-skip_k7e6-...``. ``skip`` is ProxylessNAS's `zero` op: the residual carries the input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tightfit.errors import TightfitError

_BLOCK_RE = re.compile(r"^k(\d+)e(\d+)$")


@dataclass(frozen=True)
class MBConvChoice:
    """One MBConv candidate: depthwise kernel size and expand ratio."""

    kernel: int
    expand: int

    def __str__(self) -> str:
        return f"k{self.kernel}e{self.expand}"


Block = MBConvChoice | None  # None is the `zero` op: the block is skipped


def _block_str(block: Block) -> str:
    return "skip" if block is None else str(block)


def _parse_block(text: str, whole: str) -> Block:
    if text == "skip":
        return None
    match = _BLOCK_RE.match(text)
    if not match:
        raise TightfitError(
            f"architecture {whole!r}: block {text!r} is neither 'skip' nor of the form k<kernel>e<expand>, "
            "for example k3e6"
        )
    return MBConvChoice(kernel=int(match.group(1)), expand=int(match.group(2)))


@dataclass(frozen=True)
class Arch:
    """Per stage, a tuple of blocks. Validity against a space is `SearchSpace.validate`'s job."""

    stages: tuple[tuple[Block, ...], ...]

    def __str__(self) -> str:
        return "_".join("-".join(_block_str(b) for b in stage) for stage in self.stages)

    @classmethod
    def parse(cls, text: str) -> Arch:
        text = text.strip()
        if not text:
            raise TightfitError("architecture string is empty; give blocks like k3e6-skip_k5e3-k7e6")
        return cls(tuple(tuple(_parse_block(b, text) for b in stage.split("-")) for stage in text.split("_")))

    @property
    def blocks(self) -> tuple[Block, ...]:
        return tuple(b for stage in self.stages for b in stage)

    @property
    def depth(self) -> int:
        """Number of blocks that are not skipped."""
        return sum(b is not None for b in self.blocks)

    def to_json(self) -> dict:
        return {"arch": str(self)}

    @classmethod
    def from_json(cls, obj: dict) -> Arch:
        return cls.parse(obj["arch"])
