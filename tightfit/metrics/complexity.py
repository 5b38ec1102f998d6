"""Model cost numbers for a batch-1 inference: parameters, MACs/FLOPs, weight and activation bytes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from tightfit.metrics.memory import example_input, peak_activation_bytes


@dataclass(frozen=True)
class Complexity:
    """Cost of one batch-1 inference of a model.

    Attributes:
        params: number of trainable and frozen parameters (buffers excluded).
        macs: multiply-accumulates, `flops // 2`.
        flops: floating-point operations as counted by `FlopCounterMode` (2 per multiply-add).
        peak_activation_bytes: most activation bytes alive at once, input included.
        weight_bytes: bytes of parameters and buffers at their stored dtype.
    """

    params: int
    macs: int
    flops: int
    peak_activation_bytes: int
    weight_bytes: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Complexity:
        return cls(**{f.name: int(d[f.name]) for f in fields(cls)})


def count_params(model: nn.Module) -> int:
    """Number of parameter elements (buffers such as BatchNorm running stats are not parameters)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one batch-1 eval-mode forward; `input_shape` excludes the batch dimension.

    Only ops FlopCounterMode knows (conv, matmul/linear, attention, ...) are counted; elementwise ops
    such as ReLU or BatchNorm add nothing, which matches how MACs are usually reported.
    """
    was_training = model.training
    model.eval()
    try:
        x = example_input(model, input_shape)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
        return int(counter.get_total_flops())
    finally:
        model.train(was_training)


def weight_bytes(model: nn.Module) -> int:
    """Bytes of all parameters and buffers at their dtype: what the stored model weighs.

    `parameters()`/`buffers()` already yield a tied tensor once, so tied weights count once.
    """
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def measure_complexity(model: nn.Module, input_shape: tuple[int, ...]) -> Complexity:
    """All cost numbers of `model` for one batch-1 input of shape `input_shape` (batch excluded)."""
    flops = count_flops(model, input_shape)
    return Complexity(
        params=count_params(model),
        macs=flops // 2,
        flops=flops,
        peak_activation_bytes=peak_activation_bytes(model, input_shape),
        weight_bytes=weight_bytes(model),
    )
