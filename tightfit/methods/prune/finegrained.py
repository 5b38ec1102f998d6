"""Fine-grained pruning for model size (AMC, section 3.4 and Table 3): per-layer sparsity by magnitude.

Each conv or linear layer keeps its largest-magnitude weights; `sparsity` = zeros / elements. The agent
decides one sparsity per layer with the same DDPG and state (t, n, c, h, w, stride, k, FLOPs[t], reduced,
rest, a_{t-1}), where reduced and rest count weights instead of FLOPs, under a budget on the non-zero
weights. The size is that of the packed artifact: non-zero values at 32 bits plus a 1-bit mask per weight.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

from tightfit.hardware.layers import LayerOp, extract_layers
from tightfit.methods.prune.amc import Evaluate
from tightfit.methods.prune.groups import ChannelGroup, GroupedLayer


class SparseNetwork:
    """The pruning environment's view of a model for fine-grained pruning: one unit per conv or linear
    layer, its size the layer's weight count; `keep[i]` is how many weights layer i keeps (its density times
    its size), and a layer's FLOPs scale with its density. Same interface as `PrunableNetwork`."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...]):
        self.model = model.eval()
        self.input_shape = input_shape
        ops = extract_layers(model, input_shape)
        first: dict[str, LayerOp] = {}
        for op in ops:
            first.setdefault(op.name, op)
        index = {name: i for i, name in enumerate(first)}
        self.groups = tuple(ChannelGroup(i, name, op, op.weight_count) for i, (name, op) in enumerate(first.items()))
        self.layers = tuple(GroupedLayer(op, index[op.name], None) for op in ops)
        self.flops = self.cost(self.full(), "flops")
        self.params = self.cost(self.full(), "params")

    def full(self) -> list[int]:
        return [g.channels for g in self.groups]

    def cost(self, keep: Sequence[int], metric: str = "params") -> float:
        """Non-zero weights ("params"), or FLOPs counting only non-zero weights ("flops")."""
        if metric == "params":
            return float(sum(keep))
        return sum(2 * layer.op.macs * layer.fraction(keep, self.groups) for layer in self.layers)

    def group_flops(self, g: int) -> float:
        return sum(2 * layer.op.macs for layer in self.layers if layer.out_group == g)

    def sparsity(self, keep: Sequence[int]) -> dict[str, float]:
        return {g.root: 1.0 - k / g.channels for g, k in zip(self.groups, keep, strict=True)}


@torch.no_grad()
def sparsify(model: nn.Module, sparsity: dict[str, float]) -> nn.Module:
    """A deep copy in which layer `name` has `sparsity[name]` of its weights (the smallest) set to zero."""
    model = copy.deepcopy(model)
    modules = dict(model.named_modules())
    for name, s in sparsity.items():
        w = modules[name].weight
        k = int(round(s * w.numel()))
        if k <= 0:
            continue
        threshold = w.abs().flatten().kthvalue(k).values
        w.mul_(w.abs() > threshold)
    return model


def sparse_accuracy_of(net: SparseNetwork, evaluate_model: Callable[[nn.Module], float]) -> Evaluate:
    """keep -> (accuracy of the sparsified network without fine-tuning, the network)."""

    def evaluate(keep: list[int]) -> tuple[float, nn.Module]:
        model = sparsify(net.model, net.sparsity(keep))
        return evaluate_model(model), model

    return evaluate


def nonzero_weights(model: nn.Module) -> int:
    return sum(int((m.weight != 0).sum()) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def packed_bytes(model: nn.Module) -> int:
    """Bytes of the sparse weights when stored as non-zero fp32 values plus a bitmask per layer."""
    total = 0
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            total += 4 * int((m.weight != 0).sum()) + -(-m.weight.numel() // 8)
    return total


def freeze_zeros(model: nn.Module) -> list:
    """Keep pruned weights at zero while fine-tuning: their gradients are masked (weight decay and
    momentum then leave them at zero too). Returns the hook handles."""
    handles = []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            mask = (m.weight != 0).to(m.weight.dtype)
            handles.append(m.weight.register_hook(lambda g, mask=mask: g * mask))
    return handles
