"""HAQ's accuracy feedback on cpu-ort from the network as ONNX Runtime runs it, not as PyTorch simulates it.

On cpu-ort an operator runs ONNX Runtime's int8 kernels, with ORT's own calibration, per-channel weights
after batch-norm folding, and quantized operator outputs and residual adds. PyTorch's fake quantization
models none of that. On the CIFAR-10 reference all-int8 lost 0.05 points simulated and 0.36 deployed
against fp32, after the same fine-tune (bench/results/haq_cifar-split60b.json, rows `int8` and `fp32`:
`test_acc` simulated, `onnx_test_acc` deployed). A reward from the simulation cannot tell which operators
the deployed int8 hurts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from tightfit.export.onnx import onnx_accuracy
from tightfit.hardware.runtime_ort import OrtRuntime
from tightfit.methods.quantize.deploy import MixedInt8, float_onnx
from tightfit.methods.quantize.policy import LayerBits, QuantPolicy


def deployed_accuracy(model: nn.Module, input_shape: tuple[int, ...], calibration: list[np.ndarray],
                      batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                      precisions_of: Callable[[Mapping[str, LayerBits]], list[int]]) -> Callable[[QuantPolicy], float]:
    """policy -> top-1 of `model` on `batches`, its operators int8 where `precisions_of(policy.bits)` says 8,
    quantized and run by ONNX Runtime as the deployed model is (`mixed_int8_onnx`, the same calibration).

    No fine-tuning: int8 needs little recovery, and a fine-tune would be simulated again. The network is
    exported once and calibrated once, so an episode costs ORT's graph rewrite and the evaluation."""
    mixed = MixedInt8(float_onnx(model, input_shape), input_shape, calibration)
    runtime = OrtRuntime(threads=torch.get_num_threads())
    fixed = list(batches)

    def evaluate(policy: QuantPolicy) -> float:
        return onnx_accuracy(runtime.session(mixed(precisions_of(policy.bits))), fixed)

    return evaluate
