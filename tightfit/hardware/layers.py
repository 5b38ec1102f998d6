"""The compute layers of a network as plain shapes, for analytic cost models that price layer by layer.

An analytic accelerator (SPEC section 0, `bitfusion`) needs, per conv or linear layer, its MACs, its
weight count and its input/output activation sizes. Reading them from one real forward pass, rather
than from the module definitions, gets the spatial sizes right for any CNN, whatever its padding,
strides or pooling in between.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from tightfit.errors import TightfitError
from tightfit.metrics.memory import example_input

KINDS = ("conv", "depthwise", "linear")


@dataclass(frozen=True)
class LayerOp:
    """One executed Conv2d or Linear, batch 1.

    Attributes:
        name: the module's name in `model.named_modules()`.
        kind: "conv", "depthwise" (groups == in_channels > 1) or "linear".
        in_channels, out_channels: channels (features for linear).
        kernel: square kernel side (1 for linear).
        stride: stride (1 for linear).
        groups: conv groups (1 for linear).
        in_h, in_w, out_h, out_w: spatial sizes; a linear layer has out_h = rows it was applied to, widths 1.
    """

    name: str
    kind: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    groups: int
    in_h: int
    in_w: int
    out_h: int
    out_w: int

    @property
    def macs(self) -> int:
        """Multiply-accumulates: every output element sums kernel^2 * in_channels/groups products."""
        per_output = self.kernel * self.kernel * (self.in_channels // self.groups)
        return self.out_elements * per_output

    @property
    def weight_count(self) -> int:
        """Weight elements (bias excluded: it adds one term per output channel, not a multiply)."""
        return self.out_channels * (self.in_channels // self.groups) * self.kernel * self.kernel

    @property
    def in_elements(self) -> int:
        return self.in_channels * self.in_h * self.in_w

    @property
    def out_elements(self) -> int:
        return self.out_channels * self.out_h * self.out_w

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LayerOp:
        return cls(**d)


def _conv_op(name: str, m: nn.Conv2d, x: torch.Tensor, y: torch.Tensor) -> LayerOp:
    kh, kw = m.kernel_size
    sh, sw = m.stride
    if kh != kw or sh != sw:
        raise TightfitError(f"layer {name!r}: kernel {m.kernel_size} / stride {m.stride} are not square; "
                            "the analytic layer model supports square Conv2d kernels and strides only")
    groups = m.groups
    kind = "depthwise" if groups > 1 and groups == m.in_channels else "conv"
    return LayerOp(name, kind, m.in_channels, m.out_channels, kh, sh, groups,
                   int(x.shape[-2]), int(x.shape[-1]), int(y.shape[-2]), int(y.shape[-1]))


def _linear_op(name: str, m: nn.Linear, x: torch.Tensor) -> LayerOp:
    rows = math.prod(int(s) for s in x.shape[1:-1])  # tokens per sample; 1 for a CNN classifier head
    return LayerOp(name, "linear", m.in_features, m.out_features, 1, 1, 1, rows, 1, rows, 1)


def extract_layers(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerOp]:
    """Every Conv2d and Linear call of one batch-1 eval forward, in execution order.

    Args:
        model: any network; each module's train/eval mode is restored and the hooks removed afterwards.
        input_shape: one sample's shape without the batch dimension, e.g. (3, 32, 32).

    A module called twice appears twice, so the list prices what actually runs.
    """
    ops: list[LayerOp] = []

    def hook_for(name: str):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            x = args[0]
            if isinstance(module, nn.Conv2d):
                ops.append(_conv_op(name, module, x, output))
            else:
                ops.append(_linear_op(name, module, x))
        return hook

    modes = {m: m.training for m in model.modules()}
    handles = [m.register_forward_hook(hook_for(name)) for name, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        model.eval()
        with torch.no_grad():
            model(example_input(model, input_shape))
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training
    return ops
