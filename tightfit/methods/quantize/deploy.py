"""From a quantized PyTorch network to what runs: an ONNX model with int8 operators for ONNX Runtime.

ONNX Runtime's own static quantization (QDQ) quantizes the operators the policy puts at 8 bits and
leaves the others fp32. Weights are quantized per tensor with the maximum as clipping, activations with
min/max over the calibration images: at 8 bits that is the grid the PyTorch fake-quantized model was
fine-tuned on (HAQ clips by KL only below 5 bits), so the two agree up to where ONNX Runtime also
quantizes what PyTorch keeps in float (operator outputs, residual adds).
"""

from __future__ import annotations

import copy
import io
import warnings

import numpy as np
import torch
from torch import nn

from tightfit.hardware.cost import operator_index
from tightfit.hardware.runtime_ort import Int8Quantizer
from tightfit.methods.quantize.policy import FP, LayerBits, QuantLayer, QuantPolicy


def float_model(quantized: nn.Module) -> nn.Module:
    """The network with every `QuantLayer` replaced by its float layer (weights as fine-tuned)."""
    model = copy.deepcopy(quantized)
    for name, m in list(model.named_modules()):
        if isinstance(m, QuantLayer):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, m.layer)
    return model.eval()


def quantized_values_model(quantized: nn.Module) -> nn.Module:
    """The float network whose weights are the quantized values (what the packed file decodes to): a plain
    network that saves, reloads and exports like the original."""
    model = copy.deepcopy(quantized)
    for name, m in list(model.named_modules()):
        if isinstance(m, QuantLayer):
            with torch.no_grad():
                m.layer.weight.copy_(m.weight().detach())
            m.layer.weight.requires_grad_(True)
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, m.layer)
    return model.eval()


class _NoCalibration:
    """Stands in for a Calibration when every clipping value is already known."""

    inputs: dict = {}


def with_activation_quantizers(model: nn.Module, policy: QuantPolicy,
                               clips: dict[str, tuple[float, bool]]) -> nn.Module:
    """A copy of `quantized_values_model(q)` that computes what `q` does: the weights already hold their
    quantized values, so only the inputs are quantized again, with their recorded (clip, signed)."""
    model = copy.deepcopy(model).eval()
    for name, bits in policy.bits.items():
        if bits.a_bits >= FP:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        layer = QuantLayer(getattr(parent, child), LayerBits(FP, bits.a_bits), "linear", name, _NoCalibration())
        layer.a_clip.fill_(clips[name][0])
        layer.a_signed = clips[name][1]
        setattr(parent, child, layer)
    return model


def module_path(node_name: str) -> str:
    """The module an exported node came from: "/blocks/blocks.3/conv/conv.0/conv.0.0/Conv" -> blocks.3.conv.0.0
    (the TorchScript exporter names each scope by its parent's attribute and the child's)."""
    scopes = node_name.strip("/").split("/")[:-1]
    return ".".join(s.rsplit(".", 1)[-1] for s in scopes)


def mixed_int8_onnx(quantized: nn.Module, precisions: list[int], input_shape: tuple[int, ...],
                    calibration: list[np.ndarray]) -> bytes:
    """ONNX model (any batch size) of a MobileNet-family network whose operator i (stem, blocks, head) runs
    int8 where precisions[i] == 8 and fp32 otherwise; `calibration` holds batches of normalised images.

    Weights are int8 per output channel: the exporter folds batch norm into the conv, which scales every
    channel differently, and one scale per tensor then cost MobileNetV2-w0.5 on CIFAR-10 36 points (58.4%
    per channel, 22-28% per tensor). PyTorch's fake quantization is per tensor, but before folding."""
    return quantize_operators(float_onnx(quantized, input_shape), precisions, input_shape, calibration)


def quantize_operators(fp32_onnx: bytes, precisions: list[int], input_shape: tuple[int, ...],
                       calibration: list[np.ndarray] | None) -> bytes:
    """`mixed_int8_onnx` from the network's `float_onnx` export."""
    return MixedInt8(fp32_onnx, input_shape, calibration)(precisions)


class MixedInt8:
    """`quantize_operators` for many policies of one network (HAQ's episodes, OrtCost's timings): one export,
    and ONNX Runtime's pre-processing and calibration once."""

    def __init__(self, fp32_onnx: bytes, input_shape: tuple[int, ...], calibration: list[np.ndarray] | None):
        self.quantizer = Int8Quantizer(fp32_onnx, input_shape, calibration=calibration)

    def __call__(self, precisions: list[int]) -> bytes:
        n_ops = len(precisions)

        def keep_fp32(node: str) -> bool:
            path = module_path(node)
            return precisions[operator_index(path, n_ops)] != 8 if path else False

        return self.quantizer(keep_fp32)


def float_onnx(quantized: nn.Module, input_shape: tuple[int, ...]) -> bytes:
    """fp32 ONNX bytes of `float_model(quantized)` with a dynamic batch axis, named as the pipeline's exported
    models (input, logits)."""
    model = float_model(quantized)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.randn(1, *input_shape),), buf, dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return buf.getvalue()
