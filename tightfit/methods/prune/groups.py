"""What is coupled: channel groups of any CNN, from Torch-Pruning's dependency graph, and what they cost.

A group is a set of channels that must be removed together: a conv's outputs with the BatchNorm after it
and the inputs of every layer that reads them; across a residual add, every block of the stage; through a
depthwise conv, its input and output. AMC's agent decides how many channels each group keeps; this module
says which layers each group shrinks, so that FLOPs and parameters of any keep vector are exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch_pruning as tp
from torch import nn

from tightfit.errors import TightfitError
from tightfit.hardware.layers import LayerOp, extract_layers
from tightfit.metrics.memory import example_input


@dataclass(frozen=True)
class ChannelGroup:
    """Coupled channels; `layer` is the first layer (in execution order) whose outputs they are."""

    index: int
    root: str  # the conv Torch-Pruning roots the group at
    layer: LayerOp
    channels: int


@dataclass(frozen=True)
class GroupedLayer:
    """A conv or linear layer and the groups that shrink its output and input channels (None: fixed)."""

    op: LayerOp
    out_group: int | None
    in_group: int | None

    def fraction(self, keep: Sequence[int], groups: Sequence[ChannelGroup]) -> float:
        """Share of the layer's FLOPs (and weights) left when every group g keeps keep[g] channels."""
        frac = 1.0
        if self.out_group is not None:
            frac *= keep[self.out_group] / groups[self.out_group].channels
        if self.in_group is not None and self.op.kind != "depthwise":  # a depthwise conv shrinks once
            frac *= keep[self.in_group] / groups[self.in_group].channels
        return frac


class PruningUnits(Protocol):
    """What the AMC environment walks: units (channel groups, or layers for fine-grained pruning), each
    with a size and the layer its state describes, and the exact cost of any number kept per unit."""

    groups: tuple[ChannelGroup, ...]
    layers: tuple[GroupedLayer, ...]
    flops: float
    params: float

    def full(self) -> list[int]: ...

    def cost(self, keep: Sequence[int], metric: str = "flops") -> float: ...

    def group_flops(self, g: int) -> float: ...


class PrunableNetwork:
    """A model's channel groups in execution order, and exact FLOPs / parameters of any keep vector.

    The classifier's outputs (the classes) and the network's input are never pruned.
    """

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...]):
        self.model = model.eval()
        self.input_shape = input_shape
        ops = extract_layers(model, input_shape)
        order = {op.name: i for i, op in enumerate(ops)}
        names = {m: n for n, m in model.named_modules()}
        graph = build_graph(model, input_shape)
        raw: list[tuple[str, list[str], list[str]]] = []  # root, out-pruned layers, in-pruned layers
        for group in graph.get_all_groups(ignored_layers=_outputs(model), root_module_types=[nn.Conv2d, nn.Linear]):
            outs, ins = [], []
            for dep, _ in group:
                name = names.get(dep.target.module)
                if name not in order:
                    continue
                (outs if graph.is_out_channel_pruning_fn(dep.handler) else ins).append(name)
            if outs:
                raw.append((names[group[0].dep.target.module], outs, ins))
        raw.sort(key=lambda r: min(order[n] for n in r[1]))
        by_name = {op.name: op for op in ops}
        self.groups: tuple[ChannelGroup, ...] = tuple(
            ChannelGroup(i, root, by_name[min(outs, key=order.get)], by_name[min(outs, key=order.get)].out_channels)
            for i, (root, outs, _) in enumerate(raw))
        out_of = {n: g for g, (_, outs, _) in enumerate(raw) for n in outs}
        in_of = {n: g for g, (_, _, ins) in enumerate(raw) for n in ins}
        self.layers: tuple[GroupedLayer, ...] = tuple(GroupedLayer(op, out_of.get(op.name), in_of.get(op.name))
                                                      for op in ops)
        self.flops = self.cost(self.full(), "flops")
        self.params = self.cost(self.full(), "params")

    def full(self) -> list[int]:
        return [g.channels for g in self.groups]

    def cost(self, keep: Sequence[int], metric: str = "flops") -> float:
        """FLOPs (2 per MAC) or conv/linear weights of the network pruned to `keep` channels per group."""
        if metric not in ("flops", "params"):
            raise TightfitError(f"pruning budget metric {metric!r}: use 'flops' or 'params'")
        unit = (lambda op: 2 * op.macs) if metric == "flops" else (lambda op: op.weight_count)
        return sum(unit(layer.op) * layer.fraction(keep, self.groups) for layer in self.layers)

    def group_flops(self, g: int) -> float:
        """FLOPs of the layers whose channels group g shrinks (FLOPs[t] of AMC's state)."""
        return sum(2 * layer.op.macs for layer in self.layers if g in (layer.out_group, layer.in_group))


def keep_channels(channels: int, remove: float, multiple: int = 8) -> int:
    """Channels kept when a fraction `remove` is removed: rounded to `multiple` (if the layer is wider than
    that), and at least one (or one multiple)."""
    kept = channels * (1.0 - remove)
    if multiple > 1 and channels > multiple:
        return max(multiple, min(channels, int(math.floor(kept / multiple + 0.5)) * multiple))
    return max(1, min(channels, int(math.floor(kept + 0.5))))


def _outputs(model: nn.Module) -> list[nn.Module]:
    """The last Linear (the classifier): its outputs are the classes."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1:]


def build_graph(model: nn.Module, input_shape: tuple[int, ...]) -> tp.DependencyGraph:
    try:
        with torch.enable_grad():  # Torch-Pruning traces through autograd
            return tp.DependencyGraph().build_dependency(model, example_input(model, input_shape), verbose=False)
    except Exception as err:  # tracing failures come in many types
        raise TightfitError(f"the model could not be traced for pruning ({type(err).__name__}: {err}); "
                            "give a CNN whose forward takes one image tensor") from err

