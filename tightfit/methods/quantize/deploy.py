"""From a quantized PyTorch network to what runs: an ONNX model with int8 operators for ONNX Runtime.

ONNX Runtime's own static quantization (QDQ) quantizes the operators the policy puts at 8 bits and
leaves the others fp32. Weights are quantized per tensor with the maximum as clipping, activations with
min/max over the calibration images: at 8 bits that is the grid the PyTorch fake-quantized model was
fine-tuned on (HAQ clips by KL only below 5 bits), so the two agree up to where ONNX Runtime also
quantizes what PyTorch keeps in float (operator outputs, residual adds).
"""

from __future__ import annotations

import copy

import numpy as np
from torch import nn

from tightfit.hardware.cost import operator_index
from tightfit.hardware.runtime_ort import export_bytes, quantize_int8
from tightfit.methods.quantize.policy import QuantLayer


def float_model(quantized: nn.Module) -> nn.Module:
    """The network with every `QuantLayer` replaced by its float layer (weights as fine-tuned)."""
    model = copy.deepcopy(quantized)
    for name, m in list(model.named_modules()):
        if isinstance(m, QuantLayer):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, m.layer)
    return model.eval()


def module_path(node_name: str) -> str:
    """The module an exported node came from: "/blocks/blocks.3/conv/conv.0/conv.0.0/Conv" -> blocks.3.conv.0.0
    (the TorchScript exporter names each scope by its parent's attribute and the child's)."""
    scopes = node_name.strip("/").split("/")[:-1]
    return ".".join(s.rsplit(".", 1)[-1] for s in scopes)


def mixed_int8_onnx(quantized: nn.Module, precisions: list[int], input_shape: tuple[int, ...],
                    calibration: list[np.ndarray]) -> bytes:
    """ONNX model (batch 1) of a MobileNet-family network whose operator i (stem, blocks, head) runs int8
    where precisions[i] == 8 and fp32 otherwise; `calibration` holds batches of normalised images."""
    n_ops = len(precisions)

    def keep_fp32(node: str) -> bool:
        path = module_path(node)
        return precisions[operator_index(path, n_ops)] != 8 if path else False

    onnx_fp32 = export_bytes(float_model(quantized), input_shape)
    images = [x[i:i + 1] for x in calibration for i in range(len(x))]  # the model takes batch 1
    return quantize_int8(onnx_fp32, input_shape, calibration=images, keep_fp32=keep_fp32, per_channel=False)
