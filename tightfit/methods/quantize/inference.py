"""An inference copy of a fake-quantized network, for scoring it many times (HAQ's rewards).

`QuantLayer` re-quantizes its weights on every forward and keeps its batch norm apart, because fine-tuning
needs both. Once the weights stop changing, `inference_copy` quantizes each layer's weights once and folds
the batch norm that follows into them, after the rounding: conv(x, q(W)) then BN equals
conv(x, q(W) * gamma / sigma) + (beta - mu * gamma / sigma). The quantized network computed is the same one;
only float rounding differs, which a downstream activation quantizer can turn into a one-level flip.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from tightfit.methods.quantize.policy import FP, QuantLayer
from tightfit.methods.quantize.quantizers import linear_quantize


class FrozenQuantLayer(nn.Module):
    """Fixed quantized (and batch-norm-folded) weights behind the layer's input activation quantizer."""

    def __init__(self, quant: QuantLayer, bn: nn.BatchNorm2d | None):
        super().__init__()
        layer = quant.layer
        with torch.no_grad():
            weight = quant.weight().detach()
            bias = layer.bias.detach() if layer.bias is not None else None
            if bn is not None:
                gamma = bn.weight if bn.weight is not None else torch.ones_like(bn.running_var)
                beta = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_var)
                scale = gamma / torch.sqrt(bn.running_var + bn.eps)
                weight = weight * scale.view(-1, *([1] * (weight.dim() - 1)))
                bias = beta - bn.running_mean * scale + (0.0 if bias is None else bias * scale)
        self.layer = layer
        # empty_like keeps the original weight's memory format (channels_last convolutions stay fast)
        self.register_buffer("frozen_weight", torch.empty_like(layer.weight).copy_(weight))
        self.register_buffer("frozen_bias", None if bias is None else bias.detach().clone())
        self.a_bits, self.a_clip, self.a_signed = quant.bits.a_bits, float(quant.a_clip), quant.a_signed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.a_bits < FP:
            x = linear_quantize(x, self.a_bits, self.a_clip, self.a_signed)
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, self.frozen_weight, self.frozen_bias)
        return self.layer._conv_forward(x, self.frozen_weight, self.frozen_bias)


def inference_copy(model: nn.Module) -> nn.Module:
    """An eval-only copy of a `quantize_model` network: every QuantLayer frozen, with the batch norm that
    directly follows it (inside one nn.Sequential, as ConvBNAct) folded in and replaced by an identity."""
    model = copy.deepcopy(model).eval()
    for parent in list(model.modules()):
        children = list(parent.named_children())
        for i, (name, child) in enumerate(children):
            if not isinstance(child, QuantLayer):
                continue
            after = children[i + 1] if i + 1 < len(children) else None
            bn = after[1] if (isinstance(parent, nn.Sequential) and after is not None
                              and isinstance(after[1], nn.BatchNorm2d) and after[1].running_var is not None) else None
            setattr(parent, name, FrozenQuantLayer(child, bn))
            if bn is not None:
                setattr(parent, after[0], nn.Identity())
    return model
