"""Deployable artifacts: ONNX export with ONNX Runtime checks, and safetensors weights."""

from tightfit.export.onnx import Parity, check_parity, export_onnx, onnx_accuracy, ort_session
from tightfit.export.weights import load_weights, save_weights

__all__ = [
    "Parity",
    "check_parity",
    "export_onnx",
    "load_weights",
    "onnx_accuracy",
    "ort_session",
    "save_weights",
]
