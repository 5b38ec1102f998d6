"""F(o_j^i): what every candidate op at every block position costs on the target, for E[latency].

Because `skip` keeps shapes, a position's input shape does not depend on earlier choices, so one table
entry per (position, candidate) prices every architecture: cost(arch) = fixed + sum of its blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from tightfit.hardware.cost import CostModel
from tightfit.hardware.ops import plan_ops
from tightfit.space.arch import Arch
from tightfit.space.space import SearchSpace

UNITS = {"latency": "ms", "energy": "mJ"}


@dataclass(frozen=True)
class SpaceCosts:
    """Per position, the cost of each candidate in `space.candidates` order (`zero` costs 0), plus the fixed
    parts (stem, first block, head, per-call overhead)."""

    metric: str
    target: str
    fixed: float
    per_position: tuple[tuple[float, ...], ...]

    @property
    def unit(self) -> str:
        return UNITS[self.metric]

    def expected(self, probs: Sequence[torch.Tensor]) -> torch.Tensor:
        """E[cost] = fixed + sum_i sum_j p_j^i F(o_j^i); differentiable in p, with dE/dp_j^i = F(o_j^i)."""
        total = probs[0].new_tensor(self.fixed)
        for p, costs in zip(probs, self.per_position, strict=True):
            total = total + (p * p.new_tensor(costs)).sum()
        return total

    def cheapest(self) -> float:
        """The cost of the cheapest network of the space: no target below it can be met."""
        return self.fixed + sum(min(c) for c in self.per_position)

    def dearest(self) -> float:
        """The cost of the dearest network of the space (every position at its costliest candidate)."""
        return self.fixed + sum(max(c) for c in self.per_position)

    def of_indices(self, indices: Sequence[int]) -> float:
        return self.fixed + sum(c[i] for c, i in zip(self.per_position, indices, strict=True))

    def of_arch(self, space: SearchSpace, arch: Arch) -> float:
        indices = [space.candidates(s, i).index(b) for (s, i), b in zip(space.positions(), arch.blocks, strict=True)]
        return self.of_indices(indices)

    def to_json(self) -> dict:
        return asdict(self)


def space_costs(cost: CostModel, space: SearchSpace, metric: str = "latency") -> SpaceCosts:
    """Price every (position, candidate) of `space` on `cost`'s target (profiling the space if needed)."""
    cost.profile_space(space, precisions=(32,))  # the search prices fp32 networks
    candidates = [space.candidates(s, i) for s, i in space.positions()]
    keys_of = {}  # (kernel, expand) -> keys of the uniform network: stem, first block, positions..., head
    for block in {b for options in candidates for b in options if b is not None}:
        keys_of[block] = plan_ops(space.plan(space.uniform_arch(block.kernel, block.expand)))
    wanted = sorted({k for keys in keys_of.values() for k in keys})
    values, once = cost.op_costs(wanted, metric)
    price = dict(zip(wanted, values, strict=True))
    any_keys = next(iter(keys_of.values()))
    fixed = once + price[any_keys[0]] + price[any_keys[1]] + price[any_keys[-1]]
    per_position = tuple(
        tuple(0.0 if b is None else price[keys_of[b][2 + pos]] for b in options)
        for pos, options in enumerate(candidates))
    return SpaceCosts(metric, cost.target.name, fixed, per_position)
